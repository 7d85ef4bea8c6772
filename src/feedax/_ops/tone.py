"""Tone operators: Grayscale, RandomGrayscale, Solarize, Posterize, Equalize, AutoContrast, Invert.

All are colour operators: uint8 in, uint8 out (rounded); floats in [0, 1] keep their
dtype. Except RandomGrayscale they are deterministic (wrap them in ``RandomApply`` to
apply them to a fraction of the records).
"""

from __future__ import annotations

from typing import ClassVar

import jax
import jax.numpy as jnp
from flax import nnx

from feedax._context import RecordContext
from feedax._operator import Operator, RandomOperator
from feedax._ops import _color_fn as C
from feedax._ops._common import (
    channels_1_or_3,
    check_int,
    check_number,
    check_probability,
    fail,
)


class Grayscale(Operator):
    """Converts RGB to luma ``0.299 R + 0.587 G + 0.114 B`` (PIL ``convert("L")``).

    Args:
      num_output_channels: 1, or 3 (the luma repeated, for RGB models).
      field: the record field to transform.

    Example:
      >>> import jax.numpy as jnp, feedax as fx
      >>> ctx = fx.RecordContext(jnp.int32(0), jnp.int32(0), jnp.bool_(True))
      >>> op = fx.Grayscale()
      >>> op({"image": jnp.array([[[255, 0, 0]]], jnp.uint8)}, ctx)["image"].tolist()
      [[[76]]]
    """

    def __init__(self, num_output_channels: int = 1, *, field: str = "image"):
        super().__init__(field=field)
        if num_output_channels not in (1, 3):
            raise fail(type(self).__name__, "num_output_channels", "1 or 3", num_output_channels)
        self.num_output_channels = num_output_channels

    def apply(self, x: jax.Array, ctx: RecordContext) -> jax.Array:
        """Converts one HWC image (1 or 3 channels)."""
        channels_1_or_3(type(self).__name__, x)
        return C.to_grayscale(x, self.num_output_channels)


class RandomGrayscale(RandomOperator):
    """Converts a record to grey with probability ``p``, keeping its channel count.

    Identity in eval mode.

    Args:
      p: probability of converting a record.
      rngs: the RNG streams; the operator draws its key from ``stream``.
      stream: the name of the stream in ``rngs`` (default ``"augment"``).
      field: the record field to transform.

    Example:
      >>> import jax.numpy as jnp, feedax as fx
      >>> from flax import nnx
      >>> op = fx.RandomGrayscale(p=1.0, rngs=nnx.Rngs(augment=0))
      >>> ctx = fx.RecordContext(jnp.int32(0), jnp.int32(0), jnp.bool_(True))
      >>> op({"image": jnp.array([[[255, 0, 0]]], jnp.uint8)}, ctx)["image"].tolist()
      [[[76, 76, 76]]]
    """

    def __init__(
        self, p: float = 0.1, *, rngs: nnx.Rngs, stream: str = "augment", field: str = "image"
    ):
        super().__init__(rngs=rngs, stream=stream, field=field)
        self.p = check_probability(type(self).__name__, "p", p)

    def apply(self, x: jax.Array, ctx: RecordContext) -> jax.Array:
        """Converts one HWC image, or returns it."""
        channels_1_or_3(type(self).__name__, x)
        coin = self.record_uniforms(ctx, 1)[0] < self.p
        return jnp.where(coin, C.to_grayscale(x, x.shape[-1]), x)


class Solarize(Operator):
    """Inverts the pixels at or above ``threshold`` (PIL ``ImageOps.solarize``).

    Differentiable w.r.t. the input (slope +-1), not w.r.t. the threshold.

    Args:
      threshold: on the unit scale (0.5 is level 127.5 of uint8: levels >= 128 invert).
      field: the record field to transform.

    Example:
      >>> import jax.numpy as jnp, feedax as fx
      >>> ctx = fx.RecordContext(jnp.int32(0), jnp.int32(0), jnp.bool_(True))
      >>> fx.Solarize(0.5)({"image": jnp.array([[[10, 200]]], jnp.uint8)}, ctx)["image"].tolist()
      [[[10, 55]]]
    """

    unit_range = True

    def __init__(self, threshold: float = 0.5, *, field: str = "image"):
        super().__init__(field=field)
        self.threshold = check_number(type(self).__name__, "threshold", threshold, 0.0, 1.0)

    def apply(self, x: jax.Array, ctx: RecordContext) -> jax.Array:
        """Solarizes one image."""
        return C.solarize(x, self.threshold)


class Posterize(Operator):
    """Keeps the top ``bits`` bits of each 8-bit level (PIL ``ImageOps.posterize``).

    Float input is quantised to 256 levels first. Not differentiable (piecewise constant).

    Args:
      bits: 0..8 bits to keep.
      field: the record field to transform.

    Example:
      >>> import jax.numpy as jnp, feedax as fx
      >>> ctx = fx.RecordContext(jnp.int32(0), jnp.int32(0), jnp.bool_(True))
      >>> fx.Posterize(2)({"image": jnp.array([[[255, 100]]], jnp.uint8)}, ctx)["image"].tolist()
      [[[192, 64]]]
    """

    kinds: ClassVar[tuple[str, ...]] = ("uint8", "float")  # 8-bit levels (as PIL)
    unit_range = True

    differentiable: ClassVar[bool] = False

    def __init__(self, bits: int = 4, *, field: str = "image"):
        super().__init__(field=field)
        self.bits = check_int(type(self).__name__, "bits", bits, 0, 8)

    def apply(self, x: jax.Array, ctx: RecordContext) -> jax.Array:
        """Posterizes one image."""
        return C.posterize(x, self.bits)


class Equalize(Operator):
    """Histogram equalisation per channel, exactly as PIL's ``ImageOps.equalize``.

    Float input is quantised to 256 levels first. Not differentiable (a lookup table).

    Args:
      field: the record field to transform.

    Example:
      >>> import jax.numpy as jnp, feedax as fx
      >>> x = jnp.repeat(jnp.arange(0, 40, 10, dtype=jnp.uint8), 100).reshape(1, 1, 400, 1)
      >>> out = fx.apply_operators(fx.Equalize(), {"image": x}, indices=[0])
      >>> jnp.unique(out["image"]).tolist()
      [0, 100, 200, 255]
    """

    kinds: ClassVar[tuple[str, ...]] = ("uint8", "float")  # 8-bit levels (as PIL)
    unit_range = True

    differentiable: ClassVar[bool] = False

    def apply(self, x: jax.Array, ctx: RecordContext) -> jax.Array:
        """Equalizes one image."""
        return C.equalize(x)


class AutoContrast(Operator):
    """Stretches each channel to the full range (PIL ``ImageOps.autocontrast``, cutoff 0).

    Constant channels are unchanged.

    Args:
      field: the record field to transform.

    Example:
      >>> import jax.numpy as jnp, feedax as fx
      >>> ctx = fx.RecordContext(jnp.int32(0), jnp.int32(0), jnp.bool_(True))
      >>> x = jnp.array([[[0.25], [0.75]]])
      >>> fx.AutoContrast()({"image": x}, ctx)["image"][..., 0].tolist()
      [[0.0, 1.0]]
    """

    unit_range = True

    def apply(self, x: jax.Array, ctx: RecordContext) -> jax.Array:
        """Stretches one image."""
        return C.autocontrast(x)


class Invert(Operator):
    """``1 - x`` (``255 - x`` for uint8), PIL ``ImageOps.invert``.

    Args:
      field: the record field to transform.

    Example:
      >>> import jax.numpy as jnp, feedax as fx
      >>> ctx = fx.RecordContext(jnp.int32(0), jnp.int32(0), jnp.bool_(True))
      >>> fx.Invert()({"image": jnp.array([[[0, 200]]], jnp.uint8)}, ctx)["image"].tolist()
      [[[255, 55]]]
    """

    unit_range = True

    def apply(self, x: jax.Array, ctx: RecordContext) -> jax.Array:
        """Inverts one image."""
        return C.invert(x)
