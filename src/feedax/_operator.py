"""The operator contract: an NNX module that transforms one record on the device."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from flax import nnx

from feedax._context import RecordContext
from feedax._errors import OperatorError

Record = Mapping[str, Any]


class Operator(nnx.Module, abc.ABC):
    """Base of operators: a transform of one named field of one record.

    Subclasses implement :meth:`apply` for one value (no batch axis). The pipeline vmaps
    them over the batch and jits all operators together; other fields pass through
    unchanged. ``ranks`` and ``kinds`` declare what the operator accepts so that a wrong
    record is rejected with a clear message when the pipeline is built.

    Attributes:
      field: the record field this operator transforms.
      differentiable: whether gradients flow through it w.r.t. float inputs and Params.
    """

    field: str
    ranks: ClassVar[tuple[int, ...]] = (3,)
    kinds: ClassVar[tuple[str, ...]] = ("uint8", "float")
    differentiable: ClassVar[bool] = True

    def __init__(self, *, field: str = "image"):
        if not isinstance(field, str) or not field:
            raise OperatorError(
                f"{type(self).__name__}: field must be a non-empty string naming a record "
                f"field, got {field!r}."
            )
        self.field = field

    def __call__(self, record: Record, ctx: RecordContext) -> dict[str, Any]:
        """Returns ``record`` with ``record[self.field]`` transformed by :meth:`apply`."""
        name = type(self).__name__
        if self.field not in record:
            raise OperatorError(
                f"{name}: the record has no field {self.field!r}; its fields are "
                f"{sorted(record)}. Pass field=<one of those> to {name}(...)."
            )
        x = record[self.field]
        self._check(x)
        out = dict(record)
        out[self.field] = self.apply(x, ctx)
        return out

    def _check(self, x: jax.Array) -> None:
        name = type(self).__name__
        if x.ndim not in self.ranks:
            layout = " or ".join(_LAYOUTS.get(r, f"rank {r}") for r in self.ranks)
            raise OperatorError(
                f"{name}: field {self.field!r} of one record must be {layout}, got shape "
                f"{tuple(x.shape)}. Reshape the source field (images are HWC, e.g. add a "
                "trailing channel axis to grey images) or point the operator at another field."
            )
        kind = _kind(x.dtype)
        if kind not in self.kinds:
            raise OperatorError(
                f"{name}: field {self.field!r} has dtype {x.dtype}, expected "
                f"{' or '.join(self.kinds)}. Convert the field first (e.g. with Normalize or a "
                "cast in the source)."
            )

    @abc.abstractmethod
    def apply(self, x: jax.Array, ctx: RecordContext) -> jax.Array:
        """Transforms one value ``x`` of the record identified by ``ctx``."""


class RandomOperator(Operator):
    """Base of random operators: per-record draws, and the identity in eval mode.

    The operator draws its own stream key from ``rngs`` once, eagerly. For a record it
    draws with :meth:`record_uniforms` (``n`` uniforms, counter-based: see
    :meth:`RecordContext.uniforms`) or from :meth:`record_key`
    (``fold_in(fold_in(stream_key, epoch), index)``), both functions of (stream, epoch,
    index) only. ``module.eval()`` sets ``deterministic=True``, which makes the operator
    the identity.
    """

    def __init__(self, *, rngs: nnx.Rngs, stream: str = "augment", field: str = "image"):
        super().__init__(field=field)
        if not isinstance(rngs, nnx.Rngs):
            raise OperatorError(
                f"{type(self).__name__}: rngs must be an nnx.Rngs, got {type(rngs).__name__}. "
                "Pass rngs=nnx.Rngs(augment=0)."
            )
        self.stream_key = nnx.RngKey(rngs[stream]())
        self.deterministic = False

    def __call__(self, record: Record, ctx: RecordContext) -> dict[str, Any]:
        """Returns ``record`` transformed, or unchanged in eval mode."""
        if self.deterministic:
            if self.field in record:
                self._check(record[self.field])
            return dict(record)
        return super().__call__(record, ctx)

    def record_key(self, ctx: RecordContext) -> jax.Array:
        """This operator's key for the record identified by ``ctx``."""
        return ctx.key(self.stream_key[...])

    def record_uniforms(self, ctx: RecordContext, n: int) -> jax.Array:
        """This operator's ``n`` U[0, 1) draws for the record (see ``RecordContext.uniforms``)."""
        return ctx.uniforms(self.stream_key[...], n)


class BatchOperator(nnx.Module, abc.ABC):
    """Base of operators that act on a whole batch at once (e.g. MixUp, CutMix).

    The pipeline calls them on the batch (not vmapped), between the vmapped runs of
    one-record operators, inside the same jitted function. ``ctx`` holds the epoch and
    the batch's record indices and valid mask (shape ``(B,)``), so draws can still be
    keyed per record: ``jax.vmap(ctx.key, in_axes=...)`` or :meth:`record_keys`. Random
    batch operators take ``rngs``, hold ``deterministic``, and are the identity in eval.
    """

    differentiable: ClassVar[bool] = True

    @abc.abstractmethod
    def __call__(self, batch: Record, ctx: RecordContext) -> dict[str, Any]:
        """Transforms the whole ``batch``; ``ctx`` fields have a leading batch axis."""

    @staticmethod
    def record_keys(stream_key: jax.Array, ctx: RecordContext) -> jax.Array:
        """One key per record of the batch, from (stream, epoch, record index) only."""
        epochs = jnp.broadcast_to(ctx.epoch, ctx.index.shape)
        return jax.vmap(lambda e, i: RecordContext(e, i, jnp.bool_(True)).key(stream_key))(
            epochs, ctx.index
        )

    @staticmethod
    def record_uniforms(stream_key: jax.Array, ctx: RecordContext, n: int) -> jax.Array:
        """``(B, n)`` U[0, 1) draws, ``n`` per record (see ``RecordContext.uniforms``)."""
        epochs = jnp.broadcast_to(ctx.epoch, ctx.index.shape)
        return jax.vmap(lambda e, i: RecordContext(e, i, jnp.bool_(True)).uniforms(stream_key, n))(
            epochs, ctx.index
        )


_LAYOUTS = {2: "HW (rank 2)", 3: "HWC (rank 3)", 1: "a vector (rank 1)", 0: "a scalar"}


def _kind(dtype: Any) -> str:
    if jnp.issubdtype(dtype, jnp.floating):
        return "float"
    if jnp.issubdtype(dtype, jnp.integer):
        return "uint8" if dtype == jnp.uint8 else "integer"
    return str(dtype)


def to_float(x: jax.Array) -> jax.Array:
    """Casts integer input to float32 and keeps floating input's dtype."""
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)
