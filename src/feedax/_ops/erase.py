"""Occlusion: RandomErasing (torchvision / Zhong et al.) and Cutout (DeVries & Taylor)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from feedax._context import RecordContext
from feedax._operator import RandomOperator
from feedax._ops import _color_fn as C
from feedax._ops._common import (
    below,
    box_sides,
    check_interval,
    check_number,
    check_probability,
    check_size,
    fail,
    pixel_fill,
)

ATTEMPTS = 10
"""Candidate boxes RandomErasing draws at once per record (torchvision's retries)."""


def _value(owner: str, value: Any) -> float | tuple[float, ...] | str:
    if value == "random":
        return "random"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return check_number(owner, "value", value)
    expected = 'a number, one number per channel, or "random" (unit scale)'
    if isinstance(value, str) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in _iterable(value)
    ):
        raise fail(owner, "value", expected, value)
    return tuple(float(v) for v in value)


def _iterable(value: Any) -> tuple[Any, ...]:
    try:
        return tuple(value)
    except TypeError:
        return (None,)


def _fill(
    value: float | tuple[float, ...] | str, x: jax.Array, key: Callable[[], jax.Array]
) -> jax.Array:
    """The erase value(s) on the unit scale; ``key()`` (the record's key) only for noise."""
    if value == "random":
        # Drawn flat: XLA compiles a 1-D draw much faster than an HWC-shaped one.
        return jax.random.uniform(key(), (x.size,)).reshape(x.shape)
    pixel_fill(value, x.dtype, "value")  # an integer image stores only [0, 1]
    return jnp.asarray(value, jnp.float32)


class RandomErasing(RandomOperator):
    """Erases a random box with probability ``p`` (torchvision's ``RandomErasing``).

    The box area is uniform in ``scale`` times the image area and its aspect log-uniform
    in ``ratio``; torchvision's 10 retries are drawn at once per record and the first
    that fits (sides smaller than the image) is used; if none fits the record is kept.
    Keeps dtype and shape. Identity in eval mode. Fixed-box version:
    ``feedax.functional.erase``.

    Args:
      p: probability of erasing a record.
      scale: range of the box area, as a fraction of the image area.
      ratio: range of the box aspect (height / width, as torchvision).
      value: the fill on the unit scale: a number, one per channel, or ``"random"``
        (uniform noise per pixel in [0, 1]; torchvision draws normal noise, meant for
        normalised tensors).
      rngs: the RNG streams; the operator draws its key from ``stream``.
      stream: the name of the stream in ``rngs`` (default ``"augment"``).
      field: the record field to transform.

    Example:
      >>> import jax.numpy as jnp, feedax as fx
      >>> from flax import nnx
      >>> op = fx.RandomErasing(p=1.0, scale=(0.25, 0.25), ratio=(1.0, 1.0),
      ...                       rngs=nnx.Rngs(augment=0))
      >>> out = fx.apply_operators(op, {"image": jnp.ones((1, 8, 8, 1))}, indices=[0])
      >>> int((out["image"] == 0).sum())
      16
    """

    def __init__(
        self,
        p: float = 0.5,
        *,
        scale: tuple[float, float] = (0.02, 0.33),
        ratio: tuple[float, float] = (0.3, 3.3),
        value: float | Sequence[float] | str = 0.0,
        rngs: nnx.Rngs,
        stream: str = "augment",
        field: str = "image",
    ):
        super().__init__(rngs=rngs, stream=stream, field=field)
        self.p = check_probability(type(self).__name__, "p", p)
        self.scale = check_interval(type(self).__name__, "scale", scale, 0.0, 1.0)
        self.ratio = check_interval(type(self).__name__, "ratio", ratio, 1e-3, 1e3)
        self.value = _value(type(self).__name__, value)

    def apply(self, x: jax.Array, ctx: RecordContext) -> jax.Array:
        """Erases a box of one HWC image, or returns it."""
        height, width = x.shape[0], x.shape[1]
        u = self.record_uniforms(ctx, 2 * ATTEMPTS + 3)
        h, w = box_sides(u[: 2 * ATTEMPTS], height, width, self.scale, self.ratio)
        fits = (h < height) & (w < width)
        first = jnp.argmax(fits)
        erase = (u[-3] < self.p) & jnp.any(fits)
        h = jnp.where(erase, h[first], 0)
        w = jnp.where(erase, w[first], 0)
        top, left = below(u[-2], height - h + 1), below(u[-1], width - w + 1)
        return C.erase(x, top, left, h, w, _fill(self.value, x, lambda: self.record_key(ctx)))


class Cutout(RandomOperator):
    """Erases a ``size`` box centred at a uniformly random pixel, clipped at the border.

    As DeVries & Taylor (2017): the centre may lie near the border, so the erased area
    varies. Keeps dtype and shape. Identity in eval mode. The box is exactly ``size``
    (``size // 2`` rows above the centre); the paper's reference code spans
    ``centre +- size // 2`` and so erases ``(size - 1)`` rows and columns for an odd size:
    give ``size - 1`` to reproduce that.

    Args:
      size: box (height, width), or one int for a square.
      value: the fill on the unit scale: a number, one per channel, or ``"random"``.
      rngs: the RNG streams; the operator draws its key from ``stream``.
      stream: the name of the stream in ``rngs`` (default ``"augment"``).
      field: the record field to transform.

    Example:
      >>> import jax.numpy as jnp, feedax as fx
      >>> from flax import nnx
      >>> op = fx.Cutout(4, rngs=nnx.Rngs(augment=0))
      >>> out = fx.apply_operators(op, {"image": jnp.ones((1, 8, 8, 1))}, indices=[0])
      >>> int((out["image"] == 0).sum()) <= 16
      True
    """

    def __init__(
        self,
        size: int | tuple[int, int],
        *,
        value: float | Sequence[float] | str = 0.0,
        rngs: nnx.Rngs,
        stream: str = "augment",
        field: str = "image",
    ):
        super().__init__(rngs=rngs, stream=stream, field=field)
        self.size = check_size(type(self).__name__, "size", size)
        self.value = _value(type(self).__name__, value)

    def apply(self, x: jax.Array, ctx: RecordContext) -> jax.Array:
        """Erases a box of one HWC image."""
        u = self.record_uniforms(ctx, 2)
        cy, cx = below(u[0], x.shape[0]), below(u[1], x.shape[1])
        h, w = self.size
        fill = _fill(self.value, x, lambda: self.record_key(ctx))
        return C.erase(x, cy - h // 2, cx - w // 2, h, w, fill)
