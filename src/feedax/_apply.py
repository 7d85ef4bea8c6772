"""Applying one-record operators to a batch: vmap over records, fused into one function."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from feedax._context import BATCH_AXIS, RecordContext
from feedax._operator import BatchOperator, Operator

AnyOperator = Operator | BatchOperator


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
    runs: list[list[AnyOperator]] = []
    for op in operators:
        if isinstance(op, BatchOperator) or not runs or isinstance(runs[-1][0], BatchOperator):
            runs.append([op])
        else:
            runs[-1].append(op)
    for run in runs:
        if isinstance(run[0], BatchOperator):
            batch = run[0](batch, RecordContext(epoch, indices, valid))
        else:
            batch = _vmap_run(nnx.List(run), batch, epoch, indices, valid)  # type: ignore[arg-type]
    return batch, nnx.state(operators)


def _vmap_run(
    ops: nnx.List[Operator],
    batch: dict[str, jax.Array],
    epoch: jax.Array,
    indices: jax.Array,
    valid: jax.Array,
) -> dict[str, jax.Array]:
    graphdef, state = nnx.split(ops)

    def one(state: nnx.State, record: dict[str, jax.Array], index: jax.Array, ok: jax.Array) -> Any:
        run = nnx.merge(graphdef, state)
        ctx = RecordContext(epoch, index, ok)
        for op in run:
            record = op(record, ctx)
        return record, nnx.state(run)

    vmapped = jax.vmap(one, in_axes=(None, 0, 0, 0), out_axes=(0, None), axis_name=BATCH_AXIS)
    out, new_state = vmapped(state, batch, indices, valid)
    nnx.update(ops, new_state)
    return out


_apply_jit = jax.jit(apply_batch, static_argnums=0)


class BoundOperators:
    """Operators prepared for repeated application: their graph is traversed once.

    Each call runs :func:`apply_batch` compiled (once per graph and batch shapes) on the
    operators' current state, then writes the state they changed (running statistics)
    back into their Variables. Rebuild it after a change of structure or mode.
    """

    def __init__(self, operators: nnx.List[AnyOperator]):
        self.graphdef = nnx.graphdef(operators)
        # nnx.state returns the live Variables: each call reads their current values.
        self.state = nnx.state(operators)
        self.variables = jax.tree.leaves(self.state, is_leaf=lambda x: isinstance(x, nnx.Variable))

    def __call__(
        self, batch: dict[str, jax.Array], epoch: Any, indices: jax.Array, valid: jax.Array
    ) -> dict[str, jax.Array]:
        """Applies the operators to ``batch``; updates their state in place."""
        out, new_state = _apply_jit(self.graphdef, self.state, batch, epoch, indices, valid)
        for variable, value in zip(self.variables, jax.tree.leaves(new_state), strict=True):
            variable.set_value(value)
        return out


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
