"""Pad: add a border to an image."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import jax

from feedax._operator import SpatialOperator
from feedax._ops import _geometry_fn as G
from feedax._ops._common import (
    check_choice,
    check_fields,
    check_number,
    check_padding,
)


class Pad(SpatialOperator):
    """Pads the height and width of an HWC image.

    Deterministic: applies in train and eval mode. Keeps the dtype.

    Args:
      padding: an int for every side, a pair (left/right, top/bottom) or a 4-tuple
        (left, top, right, bottom), as torchvision.
      padding_mode: ``"constant"`` (``fill``), ``"edge"`` (repeat the border),
        ``"reflect"`` (mirror without the border pixel) or ``"symmetric"`` (mirror with
        it); torchvision's name and values.
      fill: the constant, on the unit scale (1.0 is 255 for uint8).
      fields: extra fields (e.g. ``("mask",)``) padded alike; constant mode fills them
        with 0.
      field: the record field to pad.

    Example:
      >>> import jax.numpy as jnp, feedax as fx
      >>> ctx = fx.RecordContext(jnp.int32(0), jnp.int32(0), jnp.bool_(True))
      >>> x = jnp.array([[[1], [2]]], jnp.uint8)
      >>> out = fx.Pad((1, 0), padding_mode="edge")({"image": x}, ctx)
      >>> out["image"][..., 0].tolist()
      [[1, 1, 2, 2]]
    """

    def __init__(
        self,
        padding: int | Sequence[int],
        *,
        padding_mode: Literal["constant", "edge", "reflect", "symmetric"] = "constant",
        fill: float = 0.0,
        fields: Sequence[str] = (),
        field: str = "image",
    ):
        super().__init__(field=field)
        self.padding = check_padding(type(self).__name__, padding)
        name = type(self).__name__
        self.padding_mode = check_choice(name, "padding_mode", padding_mode, G.PAD_MODES)
        self.fill = check_number(type(self).__name__, "fill", fill)
        self.fields = check_fields(type(self).__name__, fields, field)

    def warp(self, x: jax.Array, params: Any, main: bool) -> jax.Array:
        """Pads one HWC value."""
        return G.pad(x, self.padding, self.padding_mode, self.fill if main else 0.0)
