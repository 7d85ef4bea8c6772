"""Composition: Sequential, RandomApply and RandomChoice (alias OneOf).

Composites are operators themselves; they hold their parts in an ``nnx.List`` (so the
parts' Params, RNG keys and statistics are part of the composite's state) and act on
the whole record, so parts may transform different fields. Part ``i`` is called with a
context whose key is the record key folded with ``i`` (nested composites fold their
whole path), so every part draws independently per record, even two parts built with
the same seed or the same instance used twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from flax import nnx

from feedax._context import RecordContext
from feedax._errors import OperatorError
from feedax._operator import BatchOperator, Operator, RandomOperator, Record
from feedax._ops._common import check_probability, child, fail


def _parts(owner: str, ops: Any) -> list[Operator]:
    parts: list[Any] = [ops] if isinstance(ops, Operator | BatchOperator) else list(ops)
    for i, op in enumerate(parts):
        if isinstance(op, BatchOperator):
            raise OperatorError(
                f"{owner}: part {i} ({type(op).__name__}) is a batch operator; composites hold "
                "one-record operators. Put batch operators directly in the pipeline's list."
            )
        if not isinstance(op, Operator):
            raise fail(owner, f"part {i}", "a feedax Operator", op)
    if not parts:
        raise fail(owner, "ops", "a non-empty sequence of operators", ops)
    return parts


def _run(ops: nnx.List[Operator], record: Record, ctx: RecordContext) -> dict[str, Any]:
    out = dict(record)
    for i, op in enumerate(ops):
        out = op(out, child(ctx, i))
    return out


def _same_layout(owner: str, before: Record, after: Record) -> None:
    """Raises unless ``after`` has the fields, shapes and dtypes of ``before``."""
    layout_in = {k: (tuple(v.shape), jnp.dtype(v.dtype)) for k, v in before.items()}
    layout_out = {k: (tuple(v.shape), jnp.dtype(v.dtype)) for k, v in after.items()}
    if layout_in != layout_out:
        changed = sorted(
            k for k in layout_in.keys() | layout_out.keys() if layout_in.get(k) != layout_out.get(k)
        )
        raise OperatorError(
            f"{owner}: its parts must keep every field's shape and dtype (a record either "
            f"gets them or not), but they change {changed}: {layout_in} -> {layout_out}. "
            "Keep shape-changing operators (crops, resizes, OneHot) outside it."
        )


class Sequential(Operator):
    """Applies operators in order, as one operator.

    Deterministic itself; each part keeps its own behaviour (random parts are the
    identity in eval mode). Differentiable where its parts are.

    Args:
      ops: the operators, applied in order (one-record operators only).

    Example:
      >>> import jax.numpy as jnp, feedax as fx
      >>> from flax import nnx
      >>> rngs = nnx.Rngs(augment=0)
      >>> op = fx.Sequential([fx.RandomCrop(4, rngs=rngs), fx.ToFloat()])
      >>> ctx = fx.RecordContext(jnp.int32(0), jnp.int32(0), jnp.bool_(True))
      >>> op({"image": jnp.zeros((6, 6, 3), jnp.uint8)}, ctx)["image"].dtype
      dtype('float32')
    """

    def __init__(self, ops: Sequence[Operator]):
        parts = _parts(type(self).__name__, ops)
        super().__init__(field=parts[0].field)
        self.ops = nnx.List(parts)

    ranks: ClassVar[tuple[int, ...]] = ()
    kinds: ClassVar[tuple[str, ...]] = ()

    def transform(self, record: Record, ctx: RecordContext) -> dict[str, Any]:
        """Returns ``record`` transformed by every part in order."""
        return _run(self.ops, record, ctx)

    def apply(self, x: jax.Array, ctx: RecordContext) -> jax.Array:
        """Applies the parts to a record holding only ``x`` in ``field``."""
        return self({self.field: x}, ctx)[self.field]


class RandomApply(RandomOperator):
    """Applies ``ops`` (in order) to a record with probability ``p``, else keeps it.

    The parts must keep every field's shape and dtype. Under ``vmap`` both outcomes are
    computed and selected per record. State the parts update (running statistics) is
    updated for every record. The identity in eval mode.

    Args:
      ops: an operator or a sequence of operators.
      p: probability of applying them to a record.
      rngs: the RNG streams; the operator draws its coin's key from ``stream``.
      stream: the name of the stream in ``rngs`` (default ``"augment"``).

    Example:
      >>> import jax.numpy as jnp, feedax as fx
      >>> from flax import nnx
      >>> op = fx.RandomApply(fx.Invert(), p=1.0, rngs=nnx.Rngs(augment=0))
      >>> ctx = fx.RecordContext(jnp.int32(0), jnp.int32(0), jnp.bool_(True))
      >>> op({"image": jnp.zeros((1, 1, 1), jnp.uint8)}, ctx)["image"].item()
      255
    """

    def __init__(
        self,
        ops: Operator | Sequence[Operator],
        p: float = 0.5,
        *,
        rngs: nnx.Rngs,
        stream: str = "augment",
    ):
        parts = _parts(type(self).__name__, ops)
        super().__init__(rngs=rngs, stream=stream, field=parts[0].field)
        self.ops = nnx.List(parts)
        self.p = check_probability(type(self).__name__, "p", p)

    ranks: ClassVar[tuple[int, ...]] = ()
    kinds: ClassVar[tuple[str, ...]] = ()

    def transform(self, record: Record, ctx: RecordContext) -> dict[str, Any]:
        """Returns ``record`` transformed with probability ``p``."""
        out = _run(self.ops, record, ctx)
        _same_layout(type(self).__name__, record, out)
        coin = self.record_uniforms(ctx, 1)[0] < self.p
        return {k: jnp.where(coin, out[k], record[k]) for k in record}

    def apply(self, x: jax.Array, ctx: RecordContext) -> jax.Array:
        """Applies to a record holding only ``x`` in ``field``."""
        return self({self.field: x}, ctx)[self.field]


class RandomChoice(RandomOperator):
    """Applies one of ``ops`` per record, chosen with probabilities ``weights``.

    The choice is a ``lax.switch`` on the record's traced index (under ``vmap`` every
    part runs and the chosen output is selected). All parts must give each field the
    same shape and dtype, and hold no running statistics. The identity in eval mode.

    Args:
      ops: the operators to choose from.
      weights: relative probabilities (normalised), or None for uniform.
      rngs: the RNG streams; the operator draws its choice's key from ``stream``.
      stream: the name of the stream in ``rngs`` (default ``"augment"``).

    Example:
      >>> import jax.numpy as jnp, feedax as fx
      >>> from flax import nnx
      >>> op = fx.RandomChoice([fx.Invert(), fx.Solarize(0.0)], weights=[1, 0],
      ...                      rngs=nnx.Rngs(augment=0))
      >>> ctx = fx.RecordContext(jnp.int32(0), jnp.int32(0), jnp.bool_(True))
      >>> op({"image": jnp.zeros((1, 1, 1), jnp.uint8)}, ctx)["image"].item()
      255
    """

    def __init__(
        self,
        ops: Sequence[Operator],
        weights: Sequence[float] | None = None,
        *,
        rngs: nnx.Rngs,
        stream: str = "augment",
    ):
        name = type(self).__name__
        parts = _parts(name, ops)
        super().__init__(rngs=rngs, stream=stream, field=parts[0].field)
        for i, op in enumerate(parts):
            if jax.tree.leaves(nnx.state(op, nnx.BatchStat)):
                raise OperatorError(
                    f"{name}: part {i} ({type(op).__name__}) holds running statistics, which "
                    "cannot be updated inside a per-record choice. Put it outside the choice."
                )
        self.ops = nnx.List(parts)
        if weights is None:
            weights = [1.0] * len(parts)
        w = [float(v) for v in weights]
        if len(w) != len(parts) or min(w) < 0 or sum(w) <= 0:
            raise fail(name, "weights", f"{len(parts)} non-negative numbers, not all zero", weights)
        self.weights = tuple(v / sum(w) for v in w)

    ranks: ClassVar[tuple[int, ...]] = ()
    kinds: ClassVar[tuple[str, ...]] = ()

    def transform(self, record: Record, ctx: RecordContext) -> dict[str, Any]:
        """Returns ``record`` transformed by one part, chosen per record."""
        edges = jnp.cumsum(jnp.asarray(self.weights[:-1], jnp.float32))
        choice = jnp.searchsorted(edges, self.record_uniforms(ctx, 1)[0], side="right")
        record = dict(record)
        branches = [(lambda r, i=i, op=op: op(r, child(ctx, i))) for i, op in enumerate(self.ops)]
        try:
            return jax.lax.switch(choice, branches, record)
        except TypeError as error:
            raise OperatorError(
                f"{type(self).__name__}: every part must give the record the same fields, "
                f"shapes and dtypes ({error}). Make the parts agree (e.g. crop to one size)."
            ) from error

    def apply(self, x: jax.Array, ctx: RecordContext) -> jax.Array:
        """Applies to a record holding only ``x`` in ``field``."""
        return self({self.field: x}, ctx)[self.field]


OneOf = RandomChoice
"""Albumentations' name for :class:`RandomChoice`."""
