"""Random affine warps: RandomAffine (rotate, translate, scale, shear) and RandomRotation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from feedax._context import RecordContext
from feedax._operator import RandomOperator, SpatialOperator
from feedax._ops import _geometry_fn as G
from feedax._ops._common import (
    check_choice,
    check_fields,
    check_interval,
    check_number,
    check_spread,
    fail,
    lerp,
)


def _shear(owner: str, value: Any) -> tuple[float, float, float, float]:
    """Torchvision's shear: ``s``, ``(a, b)`` (x only) or ``(a, b, c, d)`` (x and y)."""
    if value is None:
        return 0.0, 0.0, 0.0, 0.0
    if isinstance(value, int | float) or len(value) == 2:
        return (*check_spread(owner, "shear", value, -89.0, 89.0), 0.0, 0.0)
    if len(value) == 4:
        x = check_interval(owner, "shear", value[:2], -89.0, 89.0)
        y = check_interval(owner, "shear", value[2:], -89.0, 89.0)
        return (*x, *y)
    raise fail(owner, "shear", "a number, a pair or a 4-tuple of degrees", value)


def _translate(owner: str, value: Any) -> tuple[float, float]:
    if value is None:
        return 0.0, 0.0
    try:
        a, b = value
    except (TypeError, ValueError):
        raise fail(owner, "translate", "a pair (a, b) of fractions in [0, 1]", value) from None
    return check_number(owner, "translate[0]", a, 0, 1), check_number(
        owner, "translate[1]", b, 0, 1
    )


class RandomAffine(SpatialOperator, RandomOperator):
    """A random affine warp about the image centre: rotate, translate, scale and shear.

    torchvision's ``RandomAffine``. Per record: angle uniform in ``degrees`` (clockwise,
    as torchvision's ``F.affine``), translation uniform in ``+-translate`` times the
    width/height (in pixels, not rounded), scale uniform in ``scale``, shears uniform in
    ``shear`` (degrees; ``x -= tan(sx) y`` then ``y -= tan(sy) x``, torchvision's signs).
    The output keeps the input size; pixels from outside get ``fill``. Sampling matches
    PIL's ``Image.transform(..., Image.AFFINE)``; the default ``interpolation`` is
    ``"nearest"``, as torchvision's. uint8 stays uint8 (rounded). The identity in eval
    mode. The fixed-parameter version is ``feedax.functional.affine``.

    Args:
      degrees: ``d`` for ``(-d, d)``, or a range ``(min, max)``.
      translate: maximal fractions ``(a, b)`` of width and height, or None.
      scale: range ``(min, max)`` of the scale factor, or None for 1.
      shear: ``s`` for x-shear in ``(-s, s)``, ``(a, b)`` for x-shear, ``(a, b, c, d)``
        for x- and y-shear, in degrees; or None.
      interpolation: ``"nearest"`` (default, as torchvision) or ``"bilinear"``.
      fill: the value of uncovered pixels, on the unit scale (1.0 is 255 for uint8).
      fields: extra fields (e.g. ``("mask",)``) warped alike, nearest-neighbour, fill 0.
      rngs: the RNG streams; the operator draws its key from ``stream``.
      stream: the name of the stream in ``rngs`` (default ``"augment"``).
      field: the record field to transform.

    Example:
      >>> import jax.numpy as jnp, feedax as fx
      >>> from flax import nnx
      >>> op = fx.RandomAffine(15, translate=(0.1, 0.1), scale=(0.9, 1.1), shear=5,
      ...                      rngs=nnx.Rngs(augment=0))
      >>> x = jnp.zeros((8, 8, 3), jnp.uint8)[None]
      >>> out = fx.apply_operators(op, {"image": x}, indices=[0])
      >>> out["image"][0].shape
      (8, 8, 3)
    """

    def __init__(
        self,
        degrees: float | tuple[float, float] = 0.0,
        *,
        translate: tuple[float, float] | None = None,
        scale: tuple[float, float] | None = None,
        shear: float | Sequence[float] | None = None,
        interpolation: str = "nearest",
        fill: float = 0.0,
        fields: Sequence[str] = (),
        rngs: nnx.Rngs,
        stream: str = "augment",
        field: str = "image",
    ):
        super().__init__(rngs=rngs, stream=stream, field=field)
        name = type(self).__name__
        self.degrees = check_spread(name, "degrees", degrees, -360.0, 360.0)
        self.translate = _translate(name, translate)
        self.scale = (1.0, 1.0) if scale is None else check_interval(name, "scale", scale, 1e-3)
        self.shear = _shear(name, shear)
        self.interpolation = check_choice(name, "interpolation", interpolation, G.WARP_METHODS)
        self.fill = check_number(name, "fill", fill)
        self.fields = check_fields(name, fields, field)

    def draw(self, shape: tuple[int, ...], ctx: RecordContext) -> Any:
        """The inverse 2x3 matrix of the record's warp."""
        u = self.record_uniforms(ctx, 6)
        height, width = shape[0], shape[1]
        angle = lerp(u[0], *self.degrees)
        tx = lerp(u[1], -self.translate[0] * width, self.translate[0] * width)
        ty = lerp(u[2], -self.translate[1] * height, self.translate[1] * height)
        scale = lerp(u[3], *self.scale)
        shear = (lerp(u[4], *self.shear[:2]), lerp(u[5], *self.shear[2:]))
        center = (width * 0.5, height * 0.5)
        return G.affine_matrix(angle, jnp.stack([tx, ty]), scale, shear, center)

    def warp(self, x: jax.Array, params: Any, main: bool) -> jax.Array:
        """Resamples one HWC value through the inverse matrix ``params``."""
        if main:
            return G.warp_affine(x, params, self.interpolation, self.fill)
        return G.warp_affine(x, params, "nearest", 0.0)


class RandomRotation(RandomAffine):
    """Turns an image by a random angle about its centre (counter-clockwise, degrees).

    torchvision's ``RandomRotation`` (counter-clockwise, unlike ``RandomAffine``): a
    :class:`RandomAffine` with rotation only; the output keeps the input size.

    Args:
      degrees: ``d`` for ``(-d, d)``, or a range ``(min, max)``.
      interpolation: ``"nearest"`` (default, as torchvision) or ``"bilinear"``.
      fill: the value of uncovered pixels, on the unit scale (1.0 is 255 for uint8).
      fields: extra fields (e.g. ``("mask",)``) turned alike, nearest-neighbour, fill 0.
      rngs: the RNG streams; the operator draws its key from ``stream``.
      stream: the name of the stream in ``rngs`` (default ``"augment"``).
      field: the record field to transform.

    Example:
      >>> import jax.numpy as jnp, feedax as fx
      >>> from flax import nnx
      >>> op = fx.RandomRotation((90, 90), rngs=nnx.Rngs(augment=0))
      >>> x = jnp.arange(4.0).reshape(2, 2, 1)[None]
      >>> out = fx.apply_operators(op, {"image": x}, indices=[0])
      >>> out["image"][0][..., 0].tolist()
      [[1.0, 3.0], [0.0, 2.0]]
    """

    def __init__(
        self,
        degrees: float | tuple[float, float],
        *,
        interpolation: str = "nearest",
        fill: float = 0.0,
        fields: Sequence[str] = (),
        rngs: nnx.Rngs,
        stream: str = "augment",
        field: str = "image",
    ):
        super().__init__(
            degrees,
            interpolation=interpolation,
            fill=fill,
            fields=fields,
            rngs=rngs,
            stream=stream,
            field=field,
        )

    def draw(self, shape: tuple[int, ...], ctx: RecordContext) -> Any:
        """The inverse 2x3 matrix of the record's counter-clockwise turn."""
        angle = lerp(self.record_uniforms(ctx, 6)[0], *self.degrees)
        return G.affine_matrix(-angle, center=(shape[1] * 0.5, shape[0] * 0.5))
