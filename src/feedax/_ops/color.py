"""Learnable colour operators."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from feedax._context import RecordContext
from feedax._operator import Operator, to_float


class BrightnessContrast(Operator):
    """A learnable brightness and contrast: ``(x - m) * contrast + m + brightness``.

    ``m`` is the mean of the image. ``brightness`` and ``contrast`` are ``nnx.Param``s,
    so ``nnx.grad`` of a loss through the pipeline reaches them (learned preprocessing).
    The operator is deterministic: it applies in train and eval mode alike. Integer
    input is cast to float32.

    Args:
      brightness: initial additive offset, in the units of the input.
      contrast: initial contrast factor (1 keeps the image).
      field: the record field to transform.

    Example:
      >>> import jax.numpy as jnp, feedax as fx
      >>> op = fx.BrightnessContrast(brightness=1.0, contrast=2.0)
      >>> ctx = fx.RecordContext(jnp.int32(0), jnp.int32(0), jnp.bool_(True))
      >>> op({"image": jnp.array([[[0.0], [2.0]]])}, ctx)["image"].ravel().tolist()
      [0.0, 4.0]
    """

    unit_range = True

    def __init__(self, brightness: float = 0.0, contrast: float = 1.0, *, field: str = "image"):
        super().__init__(field=field)
        self.brightness = nnx.Param(jnp.asarray(brightness, jnp.float32))
        self.contrast = nnx.Param(jnp.asarray(contrast, jnp.float32))

    def apply(self, x: jax.Array, ctx: RecordContext) -> jax.Array:
        """Transforms one image."""
        x = to_float(x)
        m = jnp.mean(x)
        return (x - m) * self.contrast[...] + m + self.brightness[...]
