"""Filters and noise: GaussianBlur (random sigma) and GaussianNoise."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from feedax._context import RecordContext
from feedax._operator import RandomOperator
from feedax._ops import _color_fn as C
from feedax._ops._common import (
    check_interval,
    check_number,
    fail,
    from_unit,
    hyperparameter,
    lerp,
    to_unit,
    value_of,
)


def _kernel_size(value: Any) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else value
    try:
        w, h = pair
    except (TypeError, ValueError):
        raise fail(
            "GaussianBlur", "kernel_size", "an odd int or a pair of odd ints", value
        ) from None
    if not all(isinstance(v, int) and v > 0 and v % 2 == 1 for v in (w, h)):
        raise fail("GaussianBlur", "kernel_size", "an odd int or a pair of odd ints > 0", value)
    return w, h


class GaussianBlur(RandomOperator):
    """Gaussian blur with a random ``sigma`` per record (torchvision's ``GaussianBlur``).

    Separable taps ``exp(-t^2 / (2 sigma^2))`` over ``kernel_size``, mirrored borders
    (``scipy.ndimage`` mode ``"mirror"``). Colour-op dtype rule: uint8 in, uint8 out;
    floats in [0, 1]. Identity in eval mode. Fixed-sigma version:
    ``feedax.functional.gaussian_blur``.

    Args:
      kernel_size: odd taps, an int or ``(width, height)`` (torchvision's order: x first).
      sigma: a fixed sigma, or a range ``(min, max)`` (uniform per record), in pixels.
      rngs: the RNG streams; the operator draws its key from ``stream``.
      stream: the name of the stream in ``rngs`` (default ``"augment"``).
      field: the record field to transform.

    Example:
      >>> import jax.numpy as jnp, feedax as fx
      >>> from flax import nnx
      >>> op = fx.GaussianBlur(5, sigma=(0.1, 2.0), rngs=nnx.Rngs(augment=0))
      >>> x = jnp.full((8, 8, 3), 7, jnp.uint8)[None]
      >>> out = fx.apply_operators(op, {"image": x}, indices=[0])
      >>> out["image"][0][0, 0].tolist()
      [7, 7, 7]
    """

    unit_range = True

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        *,
        sigma: float | tuple[float, float] = (0.1, 2.0),
        rngs: nnx.Rngs,
        stream: str = "augment",
        field: str = "image",
    ):
        super().__init__(rngs=rngs, stream=stream, field=field)
        self.kernel_size = _kernel_size(kernel_size)
        if isinstance(sigma, int | float):
            s = check_number(type(self).__name__, "sigma", sigma, 1e-3)
            self.sigma = (s, s)
        else:
            self.sigma = check_interval(type(self).__name__, "sigma", sigma, 1e-3)

    def apply(self, x: jax.Array, ctx: RecordContext) -> jax.Array:
        """Blurs one HWC image."""
        s = lerp(self.record_uniforms(ctx, 1)[0], *self.sigma)
        return C.gaussian_blur(x, self.kernel_size, (s, s))


class GaussianNoise(RandomOperator):
    """Adds independent Gaussian noise ``std * N(0, 1)`` to every pixel, then clips to [0, 1].

    ``std`` is on the unit scale (0.1 is 25.5 levels of uint8). Colour-op dtype rule:
    uint8 in, uint8 out (rounded). With ``learnable=True`` ``std`` is an ``nnx.Param``
    (the noise is reparameterised, so gradients reach it). Identity in eval mode.

    Args:
      std: standard deviation of the noise, unit scale (default 0.1, torchvision's
        ``GaussianNoise(sigma=0.1)``).
      learnable: make ``std`` an ``nnx.Param``.
      rngs: the RNG streams; the operator draws its key from ``stream``.
      stream: the name of the stream in ``rngs`` (default ``"augment"``).
      field: the record field to transform.

    Example:
      >>> import jax.numpy as jnp, feedax as fx
      >>> from flax import nnx
      >>> op = fx.GaussianNoise(0.1, rngs=nnx.Rngs(augment=0))
      >>> x = jnp.full((4, 4, 3), 0.5)[None]
      >>> out = fx.apply_operators(op, {"image": x}, indices=[0])
      >>> out["image"][0].std() > 0
      Array(True, dtype=bool)
    """

    unit_range = True

    def __init__(
        self,
        std: float = 0.1,
        *,
        learnable: bool = False,
        rngs: nnx.Rngs,
        stream: str = "augment",
        field: str = "image",
    ):
        super().__init__(rngs=rngs, stream=stream, field=field)
        value = check_number(type(self).__name__, "std", std, 0.0)
        self.learnable = bool(learnable)
        self.std = hyperparameter(value, self.learnable)

    def apply(self, x: jax.Array, ctx: RecordContext) -> jax.Array:
        """Adds noise to one image."""
        y = to_unit(x)
        # Drawn flat: XLA compiles a 1-D draw much faster than an HWC-shaped one.
        noise = jax.random.normal(self.record_key(ctx), (y.size,), jnp.float32).reshape(y.shape)
        return from_unit(y + (value_of(self.std) * noise).astype(y.dtype), x.dtype)
