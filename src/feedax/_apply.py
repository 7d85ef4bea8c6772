"""Applying one-record operators to a batch: vmap over records, fused into one function."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, Literal, cast

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from feedax._chain import run_chain
from feedax._context import BATCH_AXIS, RecordContext
from feedax._operator import BatchOperator, Operator
from feedax._order import permute
from feedax._recycle import Recycler, recyclable

AnyOperator = Operator | BatchOperator
Batch = dict[str, jax.Array]


def apply_batch(
    graphdef: nnx.GraphDef[Any],
    state: nnx.State,
    batch: dict[str, jax.Array],
    epoch: jax.Array,
    indices: jax.Array,
    valid: jax.Array,
) -> tuple[dict[str, jax.Array], nnx.State]:
    """Applies the operators to ``batch``; returns it and the operators' new state.

    Consecutive one-record operators run together under one vmap; batch operators run
    on the whole batch between them. State that one-record operators write (running
    statistics) must be the same for every record, i.e. computed with collectives over
    ``BATCH_AXIS``; vmap rejects anything else.
    """
    operators = nnx.merge(graphdef, state)
    # A mixture's records each carry their own source's epoch; otherwise the epoch stays
    # one scalar, so what operators derive from it alone (the epoch's key of each random
    # stream) is computed once per batch, not per record.
    epoch = jnp.asarray(epoch, jnp.int32)
    per_record = jnp.broadcast_to(epoch, indices.shape)
    runs: list[list[AnyOperator]] = []
    for op in operators:
        if isinstance(op, BatchOperator) or not runs or isinstance(runs[-1][0], BatchOperator):
            runs.append([op])
        else:
            runs[-1].append(op)
    for run in runs:
        if isinstance(run[0], BatchOperator):
            batch = run[0](batch, RecordContext(per_record, indices, valid))
        else:
            batch = _vmap_run(nnx.List(run), batch, epoch, indices, valid)  # type: ignore[arg-type]
    return batch, nnx.state(operators)


def traced_spec(
    operators: nnx.List[AnyOperator],
    spec: dict[str, jax.ShapeDtypeStruct],
    batch_size: int,
    *,
    mode: Literal["current", "train", "eval"] = "current",
) -> dict[str, jax.ShapeDtypeStruct]:
    """The shapes and dtypes of a batch of ``spec`` records after the operators.

    Traced only (nothing runs); ``mode`` ``"train"`` / ``"eval"`` traces a copy switched
    to that mode, leaving the operators as they are. Raises what the operators raise for
    records they cannot handle.
    """
    b = batch_size
    batch = {
        k: jax.ShapeDtypeStruct((b, *v.shape), jax.dtypes.canonicalize_dtype(v.dtype))
        for k, v in spec.items()
    }
    graphdef, state = nnx.split(operators)

    def run(state: nnx.State, batch: Batch, index: jax.Array, valid: jax.Array) -> Batch:
        ops = nnx.merge(graphdef, state)
        if mode == "train":
            ops.train()
        elif mode == "eval":
            ops.eval()
        out, _ = apply_batch(*nnx.split(ops), batch, jnp.int32(0), index, valid)
        return out

    index = jax.ShapeDtypeStruct((b,), jnp.int32)
    valid = jax.ShapeDtypeStruct((b,), jnp.bool_)
    return cast(dict[str, jax.ShapeDtypeStruct], jax.eval_shape(run, state, batch, index, valid))


def _vmap_run(
    ops: nnx.List[Operator],
    batch: dict[str, jax.Array],
    epoch: jax.Array,
    indices: jax.Array,
    valid: jax.Array,
) -> dict[str, jax.Array]:
    graphdef, state = nnx.split(ops)

    def one(
        state: nnx.State,
        record: dict[str, jax.Array],
        epoch: jax.Array,
        index: jax.Array,
        ok: jax.Array,
    ) -> Any:
        run = nnx.merge(graphdef, state)
        ctx = RecordContext(epoch, index, ok)
        record = run_chain(run, record, ctx)
        return record, nnx.state(run)

    epoch_axis = None if epoch.ndim == 0 else 0
    vmapped = jax.vmap(
        one, in_axes=(None, 0, epoch_axis, 0, 0), out_axes=(0, None), axis_name=BATCH_AXIS
    )
    out, new_state = vmapped(state, batch, epoch, indices, valid)
    nnx.update(ops, new_state)
    return out


class _Layout:
    """Static arguments of the compiled step, hashed once.

    A jitted call hashes its static arguments on every call; hashing an NNX graph
    definition costs tens of microseconds, so the pipeline's hot loop passes this
    instead, whose hash is computed when it is built.
    """

    __slots__ = ("_hash", "extra", "graphdef", "treedef")

    def __init__(self, graphdef: nnx.GraphDef[Any], treedef: Any, extra: tuple[Any, ...] = ()):
        self.graphdef = graphdef
        self.treedef = treedef
        self.extra = extra
        self._hash = hash((graphdef, treedef, extra))

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return self is other or (
            isinstance(other, _Layout)
            and self._hash == other._hash
            and (self.graphdef, self.treedef, self.extra)
            == (other.graphdef, other.treedef, other.extra)
        )


def _run(
    layout: _Layout,
    values: list[jax.Array],
    batch: dict[str, jax.Array],
    epoch: jax.Array,
    indices: jax.Array,
    valid: jax.Array,
) -> tuple[dict[str, jax.Array], dict[int, jax.Array]]:
    """:func:`apply_batch` on flat state values; returns only the values it changed.

    Most operators only read their state (RNG keys, parameters): returning just what
    changed (running statistics) spares copying the rest out and writing it back.
    """
    state = jax.tree.unflatten(layout.treedef, values)
    out, new_state = apply_batch(layout.graphdef, state, batch, epoch, indices, valid)
    pairs = enumerate(zip(values, jax.tree.leaves(new_state), strict=True))
    return out, {i: new for i, (old, new) in pairs if new is not old}


def _apply_donating(
    layout: _Layout,
    values: list[jax.Array],
    donated: dict[str, jax.Array],
    kept: dict[str, jax.Array],
    epoch: jax.Array,
    indices: jax.Array,
    valid: jax.Array,
    spares: list[jax.Array | None],
) -> tuple[list[dict[str, jax.Array]], list[jax.Array], dict[int, jax.Array]]:
    """``layout.extra`` is ``(parts,)``: the batch holds that many steps (``feedax._groups``).

    ``spares``: per output leaf, a donated buffer to write it into, or None (``_recycle``).
    """
    (parts,) = layout.extra
    out, changed = _run(layout, values, {**kept, **donated}, epoch, indices, valid)
    return _written_into(spares, _split(out, parts)), _split(valid, parts), changed


def _written_into(spares: list[jax.Array | None], tree: Any) -> Any:
    """``tree`` with each leaf that has a spare written into it (the output then lives there)."""
    if not spares:
        return tree
    leaves, treedef = jax.tree.flatten(tree)
    leaves = [
        leaf if spare is None else jax.lax.dynamic_update_slice(spare, leaf, (0,) * leaf.ndim)
        for leaf, spare in zip(leaves, spares, strict=True)
    ]
    return jax.tree.unflatten(treedef, leaves)


def _split(tree: Any, parts: int) -> list[Any]:
    """``tree``'s leaves cut into ``parts`` equal blocks of rows, as separate outputs."""
    if parts == 1:
        return [tree]
    rows = jax.tree.leaves(tree)[0].shape[0] // parts
    return [jax.tree.map(lambda v, k=k: v[k * rows : (k + 1) * rows], tree) for k in range(parts)]


# The batch's buffers belong to the pipeline and are not used after the step, so those
# that can hold an output (same shape and dtype) are donated to it.
_apply_jit = jax.jit(_apply_donating, static_argnums=0, donate_argnums=(2, 7))


@functools.partial(jax.jit, static_argnums=0)
def _gather_apply_jit(
    layout: _Layout,
    values: list[jax.Array],
    columns: dict[str, jax.Array],
    keys: jax.Array,
    start: jax.Array,
    epoch: jax.Array,
) -> tuple[list[Batch], dict[int, jax.Array], jax.Array, list[jax.Array]]:
    """Order, gather and operators in one program, for data held on the device.

    ``layout.extra`` is ``(n, batch_size, sharding or None, shuffle, parts)``: ``parts``
    consecutive steps from ``start`` (``feedax._groups``), returned as separate batches.
    """
    n, batch_size, sharding, shuffle, parts = layout.extra
    offsets = jnp.arange(parts * batch_size, dtype=jnp.uint32)
    positions = start.astype(jnp.uint32) + offsets
    valid = positions < n
    # Padding rows repeat their step's row 0, as on the host (see feedax._plan); a step of
    # a group's padding, wholly past the end, repeats the group's first row.
    first = start.astype(jnp.uint32) + offsets // batch_size * batch_size
    first = jnp.where(first < n, first, start.astype(jnp.uint32))
    positions = jnp.where(valid, positions, first)
    indices = (permute(jnp, positions, keys, n) if shuffle else positions).astype(jnp.int32)
    batch = {k: jnp.take(v, indices, axis=0) for k, v in columns.items()}
    if sharding is not None:
        batch, indices, valid = jax.lax.with_sharding_constraint((batch, indices, valid), sharding)
    out, changed = _run(layout, values, batch, epoch, indices, valid)
    return _split(out, parts), changed, indices, _split(valid, parts)


class BoundOperators:
    """Operators prepared for repeated application: their graph is traversed once.

    Each call runs :func:`apply_batch` compiled (once per graph and batch shapes) on the
    operators' current state, then writes the state they changed (running statistics)
    back into their Variables. Rebuild it after a change of structure or mode. Pipelines
    pass ``donate=True``: their batches are used once, and ``recycle=True`` where nothing
    but the returned arrays refers to an output's buffer (``feedax._recycle``).
    """

    def __init__(
        self, operators: nnx.List[AnyOperator], *, donate: bool = False, recycle: bool = False
    ):
        self.graphdef = nnx.graphdef(operators)
        # nnx.state returns the live Variables: each call reads their current values.
        self.state = nnx.state(operators)
        self.variables = jax.tree.leaves(self.state, is_leaf=lambda x: isinstance(x, nnx.Variable))
        self.layout = _Layout(self.graphdef, jax.tree.structure(self.state))
        self._donatable: frozenset[str] | None = None if donate else frozenset()
        self._layouts: dict[int, _Layout] = {}
        self._recycle = recycle and donate  # it reuses the output shapes donation traces
        self._recyclers: dict[int, Recycler | None] = {}

    def __call__(
        self, batch: dict[str, jax.Array], epoch: Any, indices: jax.Array, valid: jax.Array
    ) -> dict[str, jax.Array]:
        """Applies the operators to ``batch``; updates their state in place.

        With ``donate=True`` the batch is consumed: buffers that can hold an output of the
        same shape and dtype are reused for it.
        """
        return self.parts(batch, epoch, indices, valid, 1)[0][0]

    def parts(
        self,
        batch: dict[str, jax.Array],
        epoch: Any,
        indices: jax.Array,
        valid: jax.Array,
        parts: int,
    ) -> tuple[list[dict[str, jax.Array]], list[jax.Array]]:
        """As a call, on a batch of ``parts`` steps' rows: each one's output and valid mask."""
        if self._donatable is None:
            self._outputs = jax.eval_shape(
                apply_batch, self.graphdef, self.state, batch, epoch, indices, valid
            )[0]
            shapes = {(o.shape, o.dtype) for o in jax.tree.leaves(self._outputs)}
            self._donatable = frozenset(k for k, v in batch.items() if (v.shape, v.dtype) in shapes)
        # A group's outputs are slices of its rows: no input buffer could hold one.
        donatable = self._donatable if parts == 1 else frozenset()
        donated = {k: v for k, v in batch.items() if k in donatable}
        kept = {k: v for k, v in batch.items() if k not in donatable}
        values = jax.tree.leaves(self.state)
        if parts not in self._layouts:
            self._layouts[parts] = _Layout(self.graphdef, self.layout.treedef, (parts,))
            self._recyclers[parts] = self._recycler(batch, donated, parts)
        layout, recycler = self._layouts[parts], self._recyclers[parts]
        spares = [] if recycler is None else recycler.spares()
        out, valids, changed = _apply_jit(
            layout, values, donated, kept, epoch, indices, valid, spares
        )
        if recycler is not None:
            recycler.keep(jax.tree.leaves(out))
        self._write_back(changed)
        return out, valids

    def _recycler(
        self, batch: dict[str, jax.Array], donated: dict[str, jax.Array], parts: int
    ) -> Recycler | None:
        """A holder of earlier outputs to write new ones into, where that pays (a CPU)."""
        if not self._recycle or not recyclable(list(batch.values())):
            return None
        outputs = jax.eval_shape(functools.partial(_split, parts=parts), self._outputs)
        (device,) = next(iter(batch.values())).sharding.device_set
        skip = frozenset((v.shape, v.dtype) for v in donated.values())
        recycler = Recycler(jax.tree.leaves(outputs), device, skip)
        return recycler if any(a is not None for a in recycler.avals) else None

    def gathering(
        self, *, n: int, batch_size: int, sharding: Any, shuffle: bool, parts: int = 1
    ) -> Callable[[dict[str, jax.Array], np.ndarray, int, Any], tuple[list[Batch], list[Any]]]:
        """A function ``(columns, keys, start, epoch) -> (batches, valids)`` for on-device data.

        Each call is one compiled program: order, gather and operators; it returns the
        ``parts`` batches from order ``start`` of ``columns`` (``n`` records) with their
        valid masks, and writes back the state the operators changed. ``keys`` are the
        epoch's order keys (see ``feedax._order.round_keys``).
        """
        layout = self._gather_layout(n, batch_size, sharding, shuffle, parts)

        def gathered(
            columns: dict[str, jax.Array], keys: np.ndarray, start: int, epoch: Any
        ) -> tuple[list[Batch], list[Any]]:
            values = jax.tree.leaves(self.state)
            out, changed, _, valid = _gather_apply_jit(
                layout, values, columns, keys, np.int32(start), epoch
            )
            self._write_back(changed)
            return out, valid

        return gathered

    def trace_gathering(
        self,
        values: list[Any],
        columns: dict[str, Any],
        keys: np.ndarray,
        *,
        n: int,
        batch_size: int,
        sharding: Any,
        shuffle: bool,
        parts: int = 1,
    ) -> Any:
        """Traces the program of :meth:`gathering` (``jax.stages.Traced``), to compile early.

        Arguments may be ``jax.ShapeDtypeStruct``s; with the same shapes and placements as
        the later calls, compiling the result fills the cache those calls look in.
        """
        layout = self._gather_layout(n, batch_size, sharding, shuffle, parts)
        return _gather_apply_jit.trace(layout, values, columns, keys, np.int32(0), np.int32(0))

    def _gather_layout(
        self, n: int, batch_size: int, sharding: Any, shuffle: bool, parts: int
    ) -> _Layout:
        extra = (n, batch_size, sharding, shuffle, parts)
        return _Layout(self.graphdef, self.layout.treedef, extra)

    def _write_back(self, changed: dict[int, jax.Array]) -> None:
        for i, value in changed.items():
            self.variables[i].set_value(value)


def apply_operators(
    operators: AnyOperator | Sequence[AnyOperator],
    batch: dict[str, Any],
    *,
    indices: Any,
    epoch: int | jax.Array = 0,
    valid: Any = None,
) -> dict[str, jax.Array]:
    """Applies operators to a batch exactly as a pipeline does, updating them in place.

    Each record is transformed with its own key from (operator stream, ``epoch``, its
    index). Differentiable; in train mode running statistics are updated. Use it inside
    ``nnx.grad`` / ``nnx.jit`` for learned preprocessing, or to test an operator.

    Args:
      operators: one operator or a sequence, applied in order.
      batch: field -> array with a leading batch axis.
      indices: the records' indices in their source (their identity), shape ``(B,)``.
      epoch: the epoch whose random draws to use.
      valid: optional bool mask of real (non-padding) records, shape ``(B,)``.

    Example:
      >>> import jax.numpy as jnp, feedax as fx
      >>> from flax import nnx
      >>> flip = fx.RandomFlip(p=1.0, rngs=nnx.Rngs(augment=0))
      >>> out = fx.apply_operators(flip, {"image": jnp.arange(2.0).reshape(1, 1, 2, 1)},
      ...                          indices=jnp.arange(1))
      >>> out["image"].ravel().tolist()
      [1.0, 0.0]
    """
    if isinstance(operators, Operator | BatchOperator):
        operators = [operators]
    ops = nnx.List(list(operators))
    indices = jnp.asarray(indices, jnp.int32)
    valid = jnp.ones(indices.shape, jnp.bool_) if valid is None else jnp.asarray(valid, jnp.bool_)
    return BoundOperators(ops)(dict(batch), jnp.asarray(epoch, jnp.int32), indices, valid)
