"""ToFloat: uint8 pixels to float32 on the unit scale."""

from __future__ import annotations

from typing import ClassVar

import jax

from feedax._context import RecordContext
from feedax._operator import Operator
from feedax._ops._common import to_unit


class ToFloat(Operator):
    """Integer images to float32 in [0, 1], as torchvision's ``ToDtype(..., scale=True)``.

    uint8 is ``x / 255``, uint16 ``x / 65535``, int16 ``x / 32767``; bfloat16 and float16
    become float32; float32 is returned unchanged.

    Put it before float-only steps (or to hand floats in [0, 1] to colour ops, which
    then skip their integer rounding). Deterministic.

    Args:
      field: the record field to convert.

    Example:
      >>> import jax.numpy as jnp, feedax as fx
      >>> ctx = fx.RecordContext(jnp.int32(0), jnp.int32(0), jnp.bool_(True))
      >>> fx.ToFloat()({"image": jnp.array([[[0, 255]]], jnp.uint8)}, ctx)["image"].tolist()
      [[[0.0, 1.0]]]
    """

    ranks: ClassVar[tuple[int, ...]] = (2, 3)

    def apply(self, x: jax.Array, ctx: RecordContext) -> jax.Array:
        """Converts one image."""
        return to_unit(x)
