"""The operator contract, in one place: what an operator is and how it behaves per mode.

- :class:`Operator` transforms one named field of one record (``apply``), or the whole
  record (``transform``); the pipeline vmaps it over the batch.
- :class:`RandomOperator` draws per record from its own stream and is the identity in
  eval mode, unless it says what it does there (``eval_transform``).
- :class:`SpatialOperator` splits a geometric transform into a draw of parameters and a
  warp at those parameters (torchvision's ``make_params`` / ``transform``), so extra
  fields (masks) move with the image and eval mode can use fixed parameters.
- :class:`BatchOperator` / :class:`RandomBatchOperator` act on the whole batch.

Eval mode is NNX's: ``module.eval()`` sets ``deterministic=True`` on every random
operator. The choice between :meth:`Operator.transform` and
:meth:`Operator.eval_transform` is made once, in ``__call__``.
"""

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
Mirror = tuple[Any, Any]
"""Whether to mirror the rows and the columns of an image (traced booleans)."""


def in_eval(module: nnx.Module) -> bool:
    """Whether ``module`` is a random operator switched to eval mode (``.eval()``)."""
    return bool(getattr(module, "deterministic", False))


def stream_key(owner: object, rngs: Any, stream: str) -> nnx.RngKey:
    """The operator's own stream key, drawn once from ``rngs[stream]``."""
    name = type(owner).__name__
    if not isinstance(rngs, nnx.Rngs):
        raise OperatorError(
            f"{name}: rngs must be an nnx.Rngs, got {type(rngs).__name__}. "
            "Pass rngs=nnx.Rngs(augment=0)."
        )
    try:
        draw = rngs[stream]
    except (KeyError, AttributeError):
        have = sorted(k for k, v in vars(rngs).items() if isinstance(v, nnx.RngStream))
        raise OperatorError(
            f"{name}: rngs has no stream {stream!r} (nor 'default'); it has {have}. Pass "
            f"rngs=nnx.Rngs({stream}=0), or stream=<one of those> to {name}(...)."
        ) from None
    return nnx.RngKey(draw())


class Operator(nnx.Module, abc.ABC):
    """Base of operators: a transform of one named field of one record.

    Subclasses implement :meth:`apply` for one value (no batch axis), or override
    :meth:`transform` to act on the whole record. The pipeline vmaps them over the batch
    and jits all operators together; other fields pass through unchanged. ``ranks`` and
    ``kinds`` declare what the operator accepts (empty: anything), so that a wrong record
    is rejected with a clear message when the pipeline is built.

    Attributes:
      field: the record field this operator transforms.
      differentiable: whether gradients flow through it w.r.t. float inputs and Params.
      unit_range: whether it reads float images as values in [0, 1] (the colour rules,
        which clip to it): a pipeline checks its first batch of such a field once.
    """

    field: str
    ranks: ClassVar[tuple[int, ...]] = (3,)
    kinds: ClassVar[tuple[str, ...]] = ("uint8", "uint16", "int16", "float")
    differentiable: ClassVar[bool] = True
    unit_range: ClassVar[bool] = False

    def __init__(self, *, field: str = "image"):
        if not isinstance(field, str) or not field:
            raise OperatorError(
                f"{type(self).__name__}: field must be a non-empty string naming a record "
                f"field, got {field!r}."
            )
        self.field = field

    def __call__(self, record: Record, ctx: RecordContext) -> dict[str, Any]:
        """Returns ``record`` transformed (in eval mode by :meth:`eval_transform`)."""
        if in_eval(self):
            return self.eval_transform(record, ctx)
        return self.transform(record, ctx)

    def transform(self, record: Record, ctx: RecordContext) -> dict[str, Any]:
        """Returns ``record`` with ``record[self.field]`` transformed by :meth:`apply`."""
        x = self.checked(record)
        out = dict(record)
        out[self.field] = self.apply(x, ctx)
        return out

    def eval_transform(self, record: Record, ctx: RecordContext) -> dict[str, Any]:
        """The transform in eval mode: the same as in train mode for a deterministic operator."""
        return self.transform(record, ctx)

    def checked(self, record: Record, field: str | None = None) -> Any:
        """``record[field]`` (default: ``self.field``), checked against ``ranks`` and ``kinds``."""
        name = type(self).__name__
        field = self.field if field is None else field
        if field not in record:
            raise OperatorError(
                f"{name}: the record has no field {field!r}; its fields are "
                f"{sorted(record)}. Pass field=<one of those> to {name}(...)."
            )
        x = record[field]
        self.check(x)
        return x

    def check(self, x: jax.Array) -> None:
        """Raises an ``OperatorError`` if ``x`` is not a value this operator accepts."""
        name = type(self).__name__
        if self.ranks and x.ndim not in self.ranks:
            layout = " or ".join(_LAYOUTS.get(r, f"rank {r}") for r in self.ranks)
            raise OperatorError(
                f"{name}: field {self.field!r} of one record must be {layout}, got shape "
                f"{tuple(x.shape)}. Reshape the source field (images are HWC, e.g. add a "
                "trailing channel axis to grey images) or point the operator at another field."
            )
        if self.ranks and 0 in x.shape:
            raise OperatorError(
                f"{name}: field {self.field!r} of one record has the empty shape "
                f"{tuple(x.shape)}; an image needs at least one pixel and channel. Drop such "
                "records (a filter on their size) or fix the source."
            )
        kind = _kind(x.dtype)
        if self.kinds and kind not in self.kinds:
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
    index) only. ``module.eval()`` sets ``deterministic=True``: the operator then runs
    :meth:`eval_transform`, the identity unless a subclass says otherwise.
    """

    def __init__(self, *, rngs: nnx.Rngs, stream: str = "augment", field: str = "image"):
        super().__init__(field=field)
        self.stream_key = stream_key(self, rngs, stream)
        self.deterministic = False

    def eval_transform(self, record: Record, ctx: RecordContext) -> dict[str, Any]:
        """The identity (the record is still checked, so eval rejects what train rejects)."""
        if self.field in record:
            self.checked(record)
        return dict(record)

    def record_key(self, ctx: RecordContext) -> jax.Array:
        """This operator's key for the record identified by ``ctx``."""
        return ctx.key(self.stream_key[...])

    def record_uniforms(self, ctx: RecordContext, n: int) -> jax.Array:
        """This operator's ``n`` U[0, 1) draws for the record (see ``RecordContext.uniforms``)."""
        return ctx.uniforms(self.stream_key[...], n)


class SpatialOperator(Operator):
    """Base of geometry operators: one draw applied to the main field and ``fields``.

    Subclasses implement :meth:`draw` (the random or fixed parameters, from the main
    field's shape) and :meth:`warp` (the transform of one HWC value at those parameters).
    Extra fields (e.g. segmentation masks, HW or HWC with the same height and width) get
    the same draw with nearest-neighbour interpolation and zero fill, so image and mask
    stay aligned. In eval mode a random spatial operator warps at :meth:`eval_params`
    (e.g. a central crop), or is the identity where those are None.
    """

    fields: tuple[str, ...] = ()
    mirrorable: ClassVar[bool] = False
    """Whether :meth:`warp` takes ``mirror=(rows, cols)`` (traced flags) and mirrors its
    output along those axes in the same pass, so a flip after it costs nothing."""

    def draw(self, shape: tuple[int, ...], ctx: RecordContext) -> Any:
        """The parameters of the transform for one record whose main field has ``shape``."""
        return None

    def mirror(self, ctx: RecordContext) -> Mirror | None:
        """For an operator that only mirrors: the record's ``(rows, cols)`` flags, else None."""
        return None

    def eval_params(self, shape: tuple[int, ...]) -> Any:
        """Fixed parameters to warp at in eval mode, or None for the identity."""
        return None

    @abc.abstractmethod
    def warp(self, x: jax.Array, params: Any, main: bool) -> jax.Array:
        """Transforms one HWC value; ``main`` is False for the extra ``fields``."""

    def apply(self, x: jax.Array, ctx: RecordContext) -> jax.Array:
        """Transforms one HWC image."""
        return self.warp(x, self.draw(tuple(x.shape), ctx), True)

    def transform(self, record: Record, ctx: RecordContext) -> dict[str, Any]:
        """Returns ``record`` with the main field and ``fields`` transformed alike."""
        x = self.checked(record)
        return self._warp_all(record, self.draw(tuple(x.shape), ctx))

    def eval_transform(self, record: Record, ctx: RecordContext) -> dict[str, Any]:
        """Warps every field at :meth:`eval_params`; else as the base class does in eval."""
        params = self.eval_params(tuple(self.checked(record).shape))
        if params is None:
            return super().eval_transform(record, ctx)
        return self._warp_all(record, params)

    def params(self, shape: tuple[int, ...], ctx: RecordContext) -> Any:
        """The parameters the operator warps at in its current mode (None: the identity)."""
        return self.eval_params(shape) if in_eval(self) else self.draw(shape, ctx)

    def mirrored(self, record: Record, ctx: RecordContext, mirror: Mirror) -> dict[str, Any] | None:
        """:meth:`transform` followed by ``mirror``, in one pass; None if it is the identity."""
        params = self.params(tuple(self.checked(record).shape), ctx)
        return None if params is None else self._warp_all(record, params, mirror)

    def _warp_all(
        self, record: Record, params: Any, mirror: Mirror | None = None
    ) -> dict[str, Any]:
        name = type(self).__name__
        x = record[self.field]
        out = dict(record)
        kw = {} if mirror is None else {"mirror": mirror}
        out[self.field] = self.warp(x, params, True, **kw)
        for f in self.fields:
            if f not in record:
                raise OperatorError(
                    f"{name}: the record has no field {f!r}; its fields are {sorted(record)}. "
                    f"Pass field=/fields= naming fields of the record to {name}(...)."
                )
            y = record[f]
            if y.ndim not in (2, 3) or y.shape[:2] != x.shape[:2]:
                raise OperatorError(
                    f"{name}: extra field {f!r} must be HW or HWC with the height and width of "
                    f"{self.field!r} {tuple(x.shape[:2])}, got shape {tuple(y.shape)}. Resize it "
                    "in the source or drop it from fields=."
                )
            y3 = y if y.ndim == 3 else y[..., None]
            y3 = self.warp(y3, params, False, **kw)
            out[f] = y3 if y.ndim == 3 else y3[..., 0]
        return out


class BatchOperator(nnx.Module, abc.ABC):
    """Base of operators that act on a whole batch at once (e.g. MixUp, CutMix).

    The pipeline calls them on the batch (not vmapped), between the vmapped runs of
    one-record operators, inside the same jitted function. ``ctx`` holds the epoch and
    the batch's record indices and valid mask (shape ``(B,)``), so draws can still be
    keyed per record (:meth:`record_keys`, :meth:`record_uniforms`). Subclasses implement
    :meth:`transform`; random ones derive from :class:`RandomBatchOperator`.
    """

    differentiable: ClassVar[bool] = True

    def __call__(self, batch: Record, ctx: RecordContext) -> dict[str, Any]:
        """Returns ``batch`` transformed (in eval mode by :meth:`eval_transform`)."""
        if in_eval(self):
            return self.eval_transform(batch, ctx)
        return self.transform(batch, ctx)

    @abc.abstractmethod
    def transform(self, batch: Record, ctx: RecordContext) -> dict[str, Any]:
        """Transforms the whole ``batch``; ``ctx`` fields have a leading batch axis."""

    def eval_transform(self, batch: Record, ctx: RecordContext) -> dict[str, Any]:
        """The transform in eval mode: the same as in train mode unless random."""
        return self.transform(batch, ctx)

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


class RandomBatchOperator(BatchOperator):
    """Base of random batch operators: a stream key of their own, the identity in eval.

    :meth:`validate` runs in both modes, so eval rejects the batches train rejects.
    """

    def __init__(self, *, rngs: nnx.Rngs, stream: str = "augment"):
        self.stream_key = stream_key(self, rngs, stream)
        self.deterministic = False

    def validate(self, batch: Record) -> None:
        """Raises an ``OperatorError`` if the batch cannot be transformed (default: accepts)."""

    def eval_transform(self, batch: Record, ctx: RecordContext) -> dict[str, Any]:
        """The identity, after :meth:`validate`."""
        self.validate(batch)
        return dict(batch)


_LAYOUTS = {2: "HW (rank 2)", 3: "HWC (rank 3)", 1: "a vector (rank 1)", 0: "a scalar"}


def _kind(dtype: Any) -> str:
    if jnp.issubdtype(dtype, jnp.floating):
        return "float"
    if jnp.issubdtype(dtype, jnp.integer):
        image_kinds = {jnp.uint8: "uint8", jnp.uint16: "uint16", jnp.int16: "int16"}
        return next((k for d, k in image_kinds.items() if dtype == d), "integer")
    return str(dtype)


def to_float(x: jax.Array) -> jax.Array:
    """Casts integer and half-precision input to float32; float32 and float64 stay."""
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))
