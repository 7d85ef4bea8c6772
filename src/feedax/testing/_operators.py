"""The contract of an operator, checked on a batch of the user's own records."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from feedax._apply import apply_operators, traced_spec
from feedax._context import RecordContext
from feedax._operator import BatchOperator, Operator, RandomOperator, SpatialOperator
from feedax.testing._common import expect


def check_operator(
    make: Callable[[], Operator],
    batch: Mapping[str, Any],
    *,
    field: str = "image",
    touches: Sequence[str] = (),
    one_record: bool = True,
    gradients: bool | None = None,
) -> None:
    """Checks a one-record operator against the contract every feedax operator meets.

    - Two operators from ``make()`` give the same output (same key, same output), and
      fields other than ``field`` and ``touches`` pass through unchanged.
    - Outputs are finite and have the shapes and dtypes that tracing predicts, the same
      in eval mode.
    - A random operator (one holding an RNG key) gives identical records different
      draws, draws anew each epoch, and draws by record index, not batch position; in
      eval mode it is deterministic and keeps the train shape. A ``RandomOperator`` is
      then the identity, unless it is a spatial operator with a central window (crops,
      resizes); a composite (``Sequential``) applies its children's eval modes.
    - With ``one_record``: the operator called on one record under ``jax.jit``, without
      vmap, gives that record's row of the batch (up to one level of rounding).
    - Gradients (default: when ``op.differentiable`` and ``field`` is floating): finite
      and not all zero, w.r.t. the input and every ``nnx.Param``.

    Args:
      make: builds the operator (call it with fixed ``rngs`` so that it is reproducible).
      batch: field -> array with a leading axis of at least 4 records; edge cases (all
        zeros, all max) are welcome.
      field: the field the operator transforms.
      touches: other fields it may change (e.g. a mask moved with ``fields=``).
      one_record: also run the one-record check (one more compilation).
      gradients: force (True) or skip (False) the gradient check.

    Example:
      >>> import numpy as np, feedax as fx
      >>> from feedax.testing import check_operator
      >>> batch = {"image": np.linspace(0, 1, 4 * 27, dtype=np.float32).reshape(4, 3, 3, 3)}
      >>> check_operator(lambda: fx.Solarize(0.5), batch)
    """
    batch = {k: jnp.asarray(v) for k, v in batch.items()}
    n = len(batch[field]) if field in batch else 0
    op, out = _same_key_same_output(make, batch, field, touches)
    name = type(op).__name__
    _check_spec(op, batch, out, name)
    _check_finite(out, name)
    if nnx.state(op, nnx.RngState):
        _check_draws(op, batch, field, n, out, name)
    if one_record:
        _check_one_record(make, batch, field, out, name)
    if gradients or (gradients is None and op.differentiable and _floating(batch[field])):
        _check_gradients(make(), batch, field, name)


def check_batch_operator(
    make: Callable[[], BatchOperator],
    batch: Mapping[str, Any],
    *,
    field: str = "image",
    label: str = "label",
    gradients: bool | None = None,
) -> None:
    """Checks a batch operator (one that mixes records, as MixUp and CutMix do).

    Same key same output; new draws each epoch; the identity in eval mode; shapes and
    dtypes kept; fields other than ``field`` and ``label`` unchanged; finite outputs;
    gradients w.r.t. the input (default: when ``op.differentiable`` and ``field`` is
    floating).

    Args:
      make: builds the operator, with fixed ``rngs``.
      batch: field -> array with a leading axis of at least 4 records; ``label`` one-hot.
      field: the mixed image field.
      label: the mixed label field.
      gradients: force (True) or skip (False) the gradient check.

    Example:
      >>> import numpy as np, jax, feedax as fx
      >>> from flax import nnx
      >>> from feedax.testing import check_batch_operator
      >>> batch = {"image": np.random.default_rng(0).random((8, 4, 4, 3), np.float32),
      ...          "label": np.eye(4, dtype=np.float32)[np.arange(8) % 4]}
      >>> check_batch_operator(lambda: fx.MixUp(0.4, rngs=nnx.Rngs(augment=0)), batch)
    """
    batch = {k: jnp.asarray(v) for k, v in batch.items()}
    op, out = _same_key_same_output(make, batch, field, (label,))
    name = type(op).__name__
    for f in out:
        expect(out[f].shape == batch[f].shape, f"{name}: {f!r} changed shape")
        expect(out[f].dtype == batch[f].dtype, f"{name}: {f!r} changed dtype")
    _check_finite(out, name)
    later = _run(op, batch, epoch=1)
    expect(
        not all(np.array_equal(out[f], later[f]) for f in (field, label)),
        f"{name}: epoch 1 drew exactly what epoch 0 did",
    )
    op.eval()
    try:
        held = _run(op, batch)
        for f in batch:
            expect(np.array_equal(held[f], batch[f]), f"{name}: not the identity in eval mode")
    finally:
        op.train()
    if gradients or (gradients is None and op.differentiable and _floating(batch[field])):
        _check_gradients(make(), batch, field, name)


def _run(op: Any, batch: dict[str, jax.Array], epoch: int = 0, indices: Any = None) -> Any:
    n = len(next(iter(batch.values())))
    indices = np.arange(n) if indices is None else indices
    return {
        k: np.asarray(v)
        for k, v in apply_operators(op, batch, indices=indices, epoch=epoch).items()
    }


def _same_key_same_output(
    make: Callable[[], Any], batch: dict[str, jax.Array], field: str, touches: Sequence[str]
) -> tuple[Any, dict[str, np.ndarray]]:
    """A fresh operator and its output, checked equal to a second one's; other fields kept."""
    expect(field in batch, f"check: the batch has no field {field!r}; it has {sorted(batch)}")
    n = len(batch[field])
    expect(n >= 4, f"check: give at least 4 records (identical-record draws), got {n}")
    op = make()
    name = type(op).__name__
    out = _run(op, batch)
    again = _run(make(), batch)
    for f in out:
        expect(np.array_equal(out[f], again[f]), f"{name}: same key, different output in {f!r}")
    for f in set(batch) - {field, *touches, *getattr(op, "fields", ())}:
        expect(np.array_equal(out[f], batch[f]), f"{name}: changed field {f!r}, not its own")
    return op, out


def _floating(x: jax.Array) -> bool:
    return bool(jnp.issubdtype(x.dtype, jnp.floating))


def _check_spec(
    op: Any, batch: dict[str, jax.Array], out: dict[str, np.ndarray], name: str
) -> None:
    spec = {k: jax.ShapeDtypeStruct(v.shape[1:], v.dtype) for k, v in batch.items()}
    n = len(next(iter(batch.values())))
    for mode in ("train", "eval"):
        traced = traced_spec(nnx.List([op]), spec, n, mode=mode)
        for f, s in traced.items():
            expect(
                (out[f].shape, out[f].dtype) == (s.shape, s.dtype),
                f"{name}: {f!r} is {out[f].dtype}{list(out[f].shape)}, but tracing in {mode} "
                f"mode gives {s.dtype}{list(s.shape)}",
            )


def _check_finite(out: dict[str, np.ndarray], name: str) -> None:
    for f, v in out.items():
        if np.issubdtype(v.dtype, np.floating):
            expect(np.isfinite(v).all(), f"{name}: non-finite values in {f!r}")


def _check_draws(
    op: Any, batch: dict[str, jax.Array], field: str, n: int, out: Any, name: str
) -> None:
    identical = {**batch, field: jnp.broadcast_to(batch[field][:1], batch[field].shape)}
    drawn = _run(op, identical)[field]
    expect(len({r.tobytes() for r in drawn}) > 1, f"{name}: identical records, identical draws")
    expect(
        not np.array_equal(_run(op, batch, epoch=1)[field], out[field]),
        f"{name}: epoch 1 drew exactly what epoch 0 did",
    )
    perm = np.random.default_rng(0).permutation(n)
    shuffled = {k: v[perm] for k, v in batch.items()}
    expect(
        np.array_equal(_run(op, shuffled, indices=perm)[field], out[field][perm]),
        f"{name}: a record's draw depends on its position in the batch, not its index",
    )
    op.eval()
    try:
        held = _run(op, batch)[field]
        expect(np.array_equal(_run(op, batch, epoch=1)[field], held), f"{name}: eval is random")
        expect(held.shape == out[field].shape, f"{name}: eval mode changes the shape")
        x = batch[field]
        central = isinstance(op, SpatialOperator) and op.eval_params(tuple(x.shape[1:]))
        if isinstance(op, RandomOperator) and not central:
            expect(np.array_equal(held, np.asarray(x)), f"{name}: not the identity in eval mode")
    finally:
        op.train()


def _check_one_record(
    make: Callable[[], Operator], batch: dict[str, jax.Array], field: str, out: Any, name: str
) -> None:
    graphdef, state = nnx.split(make())

    @jax.jit
    def one(state: nnx.State, record: dict[str, jax.Array], index: jax.Array) -> Any:
        ctx = RecordContext(jnp.int32(0), index, jnp.bool_(True))
        return nnx.merge(graphdef, state)(record, ctx)

    n = len(batch[field])
    for i in (0, n - 1):
        got = np.asarray(one(state, {k: v[i] for k, v in batch.items()}, jnp.int32(i))[field])
        want = out[field][i]
        expect(got.shape == want.shape and got.dtype == want.dtype, f"{name}: one record's shape")
        # Fused (vmapped) and unfused code may round a .5 differently: one level, rarely.
        diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
        scale = 1.0 if np.issubdtype(want.dtype, np.integer) else 1e-4
        expect(
            diff.max() <= scale and (diff > 0).mean() < 0.02,
            f"{name}: record {i} called alone differs from its row of the batch",
        )


def _check_gradients(op: Any, batch: dict[str, jax.Array], field: str, name: str) -> None:
    x = batch[field]

    def loss(x: jax.Array, op: Any) -> jax.Array:
        n = len(x)
        y = apply_operators(op, {**batch, field: x}, indices=jnp.arange(n))[field]
        weights = jnp.linspace(-1.0, 1.0, y[0].size).reshape(y.shape[1:])
        return jnp.sum(y * weights)

    gx, gop = nnx.grad(loss, argnums=(0, nnx.DiffState(1, nnx.Param)))(x, op)
    expect(np.isfinite(gx).all() and np.abs(gx).max() > 0, f"{name}: no gradient w.r.t. input")
    for g in jax.tree.leaves(gop):
        expect(np.isfinite(g).all() and np.abs(g).max() > 0, f"{name}: a Param gets no gradient")
