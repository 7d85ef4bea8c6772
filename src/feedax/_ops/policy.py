"""Automatic augmentation policies: RandAugment and TrivialAugment (wide).

Both follow torchvision's op space and magnitude tables: Identity, ShearX/Y,
TranslateX/Y, Rotate, Brightness, Color (saturation), Contrast, Sharpness, Posterize,
Solarize, AutoContrast, Equalize, with a random sign for the signed ones. The op of a
record is chosen with ``lax.switch`` on its traced index (under ``vmap`` every op runs
and the chosen output is selected). Differences from torchvision: shears turn about the
image centre (torchvision: the top-left corner), and uint8 images are rounded once at
the end rather than after every op.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from feedax._context import RecordContext
from feedax._operator import RandomOperator
from feedax._ops import _color_fn as C
from feedax._ops import _geometry_fn as G
from feedax._ops._common import (
    below,
    channels_1_or_3,
    check_choice,
    check_int,
    check_number,
    from_unit,
    to_unit,
)

OPS = (
    "Identity",
    "ShearX",
    "ShearY",
    "TranslateX",
    "TranslateY",
    "Rotate",
    "Brightness",
    "Color",
    "Contrast",
    "Sharpness",
    "Posterize",
    "Solarize",
    "AutoContrast",
    "Equalize",
)
SIGNED = np.array([op in OPS[1:10] for op in OPS])


def magnitude_table(wide: bool, bins: int, shape: tuple[int, ...]) -> np.ndarray:
    """Torchvision's magnitudes, shape ``(len(OPS), bins)``; solarize on the unit scale."""
    height, width = shape[0], shape[1]
    steps = np.linspace(0.0, 1.0, bins)
    shear, rotate, colour = (0.99, 135.0, 0.99) if wide else (0.3, 30.0, 0.9)
    tx, ty = (32.0, 32.0) if wide else (150.0 / 331.0 * width, 150.0 / 331.0 * height)
    bits = 8 - np.round(np.arange(bins) / ((bins - 1) / (6 if wide else 4)))
    rows = {
        "ShearX": shear * steps,
        "ShearY": shear * steps,
        "TranslateX": tx * steps,
        "TranslateY": ty * steps,
        "Rotate": rotate * steps,
        "Brightness": colour * steps,
        "Color": colour * steps,
        "Contrast": colour * steps,
        "Sharpness": colour * steps,
        "Posterize": bits,
        "Solarize": 1.0 - steps,
    }
    return np.stack([rows.get(op, np.zeros(bins)) for op in OPS]).astype(np.float32)


def policy_op(
    x: jax.Array,
    index: Any,
    magnitude: Any,
    interpolation: str = "nearest",
    fill: float = 0.0,
    rounded: bool = False,
) -> jax.Array:
    """Applies op ``OPS[index]`` at ``magnitude`` to a unit-scale float image (both traced).

    The five geometric ops are one affine warp whose matrix is selected by ``index`` (the
    identity matrix otherwise, which warps exactly); the others are chosen with
    ``lax.switch``. ``rounded`` rounds Sharpness's smoothed image as PIL does for uint8.
    The result is clipped to [0, 1].
    """
    m = jnp.asarray(magnitude, jnp.float32)
    center = (x.shape[1] * 0.5, x.shape[0] * 0.5)
    shear = jnp.rad2deg(jnp.arctan(m))
    t = jnp.trunc(m)
    zero = jnp.zeros_like(m)
    matrices = jnp.stack(
        [
            G.affine_matrix(0.0, center=center),
            G.affine_matrix(0.0, shear=(shear, zero), center=center),
            G.affine_matrix(0.0, shear=(zero, shear), center=center),
            G.affine_matrix(0.0, translate=jnp.stack([t, zero]), center=center),
            G.affine_matrix(0.0, translate=jnp.stack([zero, t]), center=center),
            G.affine_matrix(-m, center=center),  # Rotate: counter-clockwise, as F.rotate
        ]
    )
    index = jnp.asarray(index, jnp.int32)
    matrix = matrices[jnp.where(index < 6, index, 0)]
    branches: list[Callable[[jax.Array, jax.Array], jax.Array]] = [
        lambda x, m: G.warp_affine(x, matrix, interpolation, fill),  # Identity and geometry
        lambda x, m: C.brightness_unit(x, 1.0 + m),
        lambda x, m: C.saturation_unit(x, 1.0 + m),  # "Color"
        lambda x, m: C.contrast_unit(x, 1.0 + m),
        lambda x, m: C.sharpness_unit(x, 1.0 + m, rounded),
        lambda x, m: C.posterize(x, m.astype(jnp.int32)),
        lambda x, m: C.solarize(x, m),
        lambda x, m: C.autocontrast(x),
        lambda x, m: C.equalize(x),
    ]
    branch = jnp.where(index < 6, 0, index - 5)
    out = jax.lax.switch(branch, branches, x, m)
    return jnp.clip(out, 0.0, 1.0).astype(x.dtype)


class _Policy(RandomOperator):
    """Shared machinery: ``num_ops`` ops per record, each at a magnitude bin."""

    kinds: ClassVar[tuple[str, ...]] = ("uint8", "float")  # 8-bit levels (as PIL)
    unit_range = True

    wide: ClassVar[bool] = False
    differentiable: ClassVar[bool] = False

    def _setup(self, num_magnitude_bins: int, interpolation: str, fill: float) -> None:
        name = type(self).__name__
        self.num_magnitude_bins = check_int(name, "num_magnitude_bins", num_magnitude_bins, 2)
        self.interpolation = check_choice(name, "interpolation", interpolation, G.WARP_METHODS)
        self.fill = check_number(name, "fill", fill)

    def _bin(self, u: jax.Array) -> jax.Array:
        """The magnitude bin from a U[0, 1) draw."""
        raise NotImplementedError

    def _augment(self, x: jax.Array, ctx: RecordContext, num_ops: int) -> jax.Array:
        channels_1_or_3(type(self).__name__, x)
        table = jnp.asarray(magnitude_table(self.wide, self.num_magnitude_bins, x.shape))
        signed = jnp.asarray(SIGNED)
        rounded = not jnp.issubdtype(x.dtype, jnp.floating)
        y = to_unit(x).astype(jnp.float32)
        u = self.record_uniforms(ctx, 3 * num_ops).reshape(num_ops, 3)

        def step(y: jax.Array, u: jax.Array) -> tuple[jax.Array, None]:
            index = below(u[0], len(OPS))
            sign = jnp.where(signed[index] & (u[2] < 0.5), -1.0, 1.0)
            magnitude = table[index, self._bin(u[1])] * sign
            return policy_op(y, index, magnitude, self.interpolation, self.fill, rounded), None

        # A scan over the ops compiles the op switch once, whatever num_ops.
        y, _ = jax.lax.scan(step, y, u)
        return from_unit(y, x.dtype)


class RandAugment(_Policy):
    """RandAugment (Cubuk et al., 2020): ``num_ops`` random ops at a fixed ``magnitude``.

    Per record and op: one of the 14 ops uniformly, at bin ``magnitude`` of
    ``num_magnitude_bins`` of torchvision's table (random sign where signed). Colour-op
    dtype rule: uint8 in, uint8 out; floats in [0, 1]. Not differentiable (Posterize and
    Equalize are piecewise constant). The identity in eval mode.

    Args:
      num_ops: ops applied in sequence per record.
      magnitude: the magnitude bin, in ``[0, num_magnitude_bins)``.
      num_magnitude_bins: the number of magnitude bins (>= 2).
      interpolation: ``"nearest"`` (torchvision's default) or ``"bilinear"`` for warps.
      fill: the value of pixels uncovered by warps, on the unit scale.
      rngs: the RNG streams; the operator draws its key from ``stream``.
      stream: the name of the stream in ``rngs`` (default ``"augment"``).
      field: the record field to transform.

    Example:
      >>> import jax.numpy as jnp, feedax as fx
      >>> from flax import nnx
      >>> op = fx.RandAugment(num_ops=2, magnitude=9, rngs=nnx.Rngs(augment=0))
      >>> x = jnp.zeros((8, 8, 3), jnp.uint8)[None]
      >>> out = fx.apply_operators(op, {"image": x}, indices=[0])
      >>> out["image"][0].shape
      (8, 8, 3)
    """

    def __init__(
        self,
        num_ops: int = 2,
        magnitude: int = 9,
        num_magnitude_bins: int = 31,
        *,
        interpolation: str = "nearest",
        fill: float = 0.0,
        rngs: nnx.Rngs,
        stream: str = "augment",
        field: str = "image",
    ):
        super().__init__(rngs=rngs, stream=stream, field=field)
        self._setup(num_magnitude_bins, interpolation, fill)
        self.num_ops = check_int(type(self).__name__, "num_ops", num_ops, 1)
        self.magnitude = check_int(
            "RandAugment", "magnitude", magnitude, 0, self.num_magnitude_bins - 1
        )

    def _bin(self, u: jax.Array) -> jax.Array:
        return jnp.asarray(self.magnitude)

    def apply(self, x: jax.Array, ctx: RecordContext) -> jax.Array:
        """Augments one HWC image (1 or 3 channels)."""
        return self._augment(x, ctx, self.num_ops)


class TrivialAugment(_Policy):
    """TrivialAugment wide (Müller & Hutter, 2021): one random op at a random magnitude.

    Per record: one of the 14 ops uniformly, at a uniform bin of torchvision's "wide"
    table (random sign where signed). Colour-op dtype rule. Not differentiable. The
    identity in eval mode.

    Args:
      num_magnitude_bins: the number of magnitude bins (>= 2).
      interpolation: ``"nearest"`` (torchvision's default) or ``"bilinear"`` for warps.
      fill: the value of pixels uncovered by warps, on the unit scale.
      rngs: the RNG streams; the operator draws its key from ``stream``.
      stream: the name of the stream in ``rngs`` (default ``"augment"``).
      field: the record field to transform.

    Example:
      >>> import jax.numpy as jnp, feedax as fx
      >>> from flax import nnx
      >>> op = fx.TrivialAugment(rngs=nnx.Rngs(augment=0))
      >>> x = jnp.zeros((8, 8, 3), jnp.uint8)[None]
      >>> out = fx.apply_operators(op, {"image": x}, indices=[0])
      >>> out["image"][0].dtype
      dtype('uint8')
    """

    wide: ClassVar[bool] = True

    def __init__(
        self,
        num_magnitude_bins: int = 31,
        *,
        interpolation: str = "nearest",
        fill: float = 0.0,
        rngs: nnx.Rngs,
        stream: str = "augment",
        field: str = "image",
    ):
        super().__init__(rngs=rngs, stream=stream, field=field)
        self._setup(num_magnitude_bins, interpolation, fill)

    def _bin(self, u: jax.Array) -> jax.Array:
        return below(u, self.num_magnitude_bins)

    def apply(self, x: jax.Array, ctx: RecordContext) -> jax.Array:
        """Augments one HWC image (1 or 3 channels)."""
        return self._augment(x, ctx, 1)
