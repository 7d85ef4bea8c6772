"""Crops: RandomCrop (a random window of the padded image) and CenterCrop."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
from flax import nnx

from feedax._context import RecordContext
from feedax._errors import OperatorError
from feedax._operator import RandomOperator, SpatialOperator
from feedax._ops import _geometry_fn as G
from feedax._ops._common import (
    below,
    check_choice,
    check_fields,
    check_number,
    check_padding,
    check_size,
)


class RandomCrop(SpatialOperator, RandomOperator):
    """Crops a random ``size`` window from an HWC image padded by ``padding``.

    The offset is drawn uniformly per record; dtype and channels are kept. In eval mode
    it takes the central window of the padded image (with the usual ``RandomCrop(size,
    padding=p)`` on an image of side ``size``: the image itself), so eval batches have
    the train shape, as torchvision users get with ``CenterCrop(size)`` in eval.

    Args:
      size: output (height, width), or one int for a square.
      padding: added before cropping: an int for every side, a pair (left/right,
        top/bottom) or a 4-tuple (left, top, right, bottom), as torchvision.
      padding_mode: ``"constant"`` (``fill``), ``"edge"``, ``"reflect"`` or ``"symmetric"``.
      fill: the constant of ``"constant"`` padding, on the unit scale (1.0 is 255 for uint8).
      fields: extra fields (e.g. ``("mask",)``) cropped at the same offset; constant
        padding fills them with 0.
      rngs: the RNG streams; the operator draws its key from ``stream``.
      stream: the name of the stream in ``rngs`` (default ``"augment"``).
      field: the record field to crop.

    Example:
      >>> import jax.numpy as jnp, feedax as fx
      >>> from flax import nnx
      >>> crop = fx.RandomCrop(32, padding=4, rngs=nnx.Rngs(augment=0))
      >>> ctx = fx.RecordContext(jnp.int32(0), jnp.int32(7), jnp.bool_(True))
      >>> crop({"image": jnp.zeros((32, 32, 3), jnp.uint8)}, ctx)["image"].shape
      (32, 32, 3)
    """

    def __init__(
        self,
        size: int | tuple[int, int],
        *,
        padding: int | Sequence[int] = 0,
        padding_mode: str = "constant",
        fill: float = 0.0,
        fields: Sequence[str] = (),
        rngs: nnx.Rngs,
        stream: str = "augment",
        field: str = "image",
    ):
        super().__init__(rngs=rngs, stream=stream, field=field)
        self.size = check_size(type(self).__name__, "size", size)
        self.padding = check_padding(type(self).__name__, padding)
        self.padding_mode = check_choice(
            type(self).__name__, "padding_mode", padding_mode, G.PAD_MODES
        )
        self.fill = check_number(type(self).__name__, "fill", fill)
        self.fields = check_fields(type(self).__name__, fields, field)

    def _padded(self, shape: tuple[int, ...]) -> tuple[int, int]:
        """The (height, width) of the padded image; raises if the crop does not fit."""
        top_pad, bottom_pad, left_pad, right_pad = self.padding
        height, width = shape[0] + top_pad + bottom_pad, shape[1] + left_pad + right_pad
        h, w = self.size
        if h > height or w > width:
            raise OperatorError(
                f"{type(self).__name__}: crop size {self.size} is larger than the padded image "
                f"({height}, {width}) of field {self.field!r} (shape {shape}, padding "
                f"(top, bottom, left, right) = {self.padding}). Use a smaller size or more "
                "padding."
            )
        return height, width

    def draw(self, shape: tuple[int, ...], ctx: RecordContext) -> Any:
        """The (top, left) of the window in the padded image."""
        height, width = self._padded(shape)
        h, w = self.size
        u = self.record_uniforms(ctx, 2)
        return below(u[0], height - h + 1), below(u[1], width - w + 1)

    def eval_params(self, shape: tuple[int, ...]) -> Any:
        """The central window of the padded image."""
        return G.center_crop_offsets(self._padded(shape), self.size)

    def warp(self, x: jax.Array, params: Any, main: bool) -> jax.Array:
        """Crops the window at ``params`` of ``x`` padded (without building the pad)."""
        fill = self.fill if main else 0.0
        top, left = params
        return G.padded_crop(x, self.padding, self.padding_mode, fill, top, left, *self.size)


class CenterCrop(SpatialOperator):
    """Crops the central ``size`` window (offsets rounded as torchvision).

    Deterministic: applies in train and eval mode. Keeps dtype and channels.

    Args:
      size: output (height, width), or one int for a square; at most the image size.
      fields: extra fields (e.g. ``("mask",)``) cropped alike.
      field: the record field to crop.

    Example:
      >>> import jax.numpy as jnp, feedax as fx
      >>> ctx = fx.RecordContext(jnp.int32(0), jnp.int32(0), jnp.bool_(True))
      >>> x = jnp.arange(16, dtype=jnp.uint8).reshape(4, 4, 1)
      >>> fx.CenterCrop(2)({"image": x}, ctx)["image"][..., 0].tolist()
      [[5, 6], [9, 10]]
    """

    def __init__(
        self, size: int | tuple[int, int], *, fields: Sequence[str] = (), field: str = "image"
    ):
        super().__init__(field=field)
        self.size = check_size(type(self).__name__, "size", size)
        self.fields = check_fields(type(self).__name__, fields, field)

    def draw(self, shape: tuple[int, ...], ctx: RecordContext) -> Any:
        """The fixed (top, left) of the central window."""
        if self.size[0] > shape[0] or self.size[1] > shape[1]:
            raise OperatorError(
                f"{type(self).__name__}: crop size {self.size} is larger than field {self.field!r} "
                f"(shape {shape}). Use a smaller size, or Pad / Resize first."
            )
        return G.center_crop_offsets(shape, self.size)

    def warp(self, x: jax.Array, params: Any, main: bool) -> jax.Array:
        """Crops the central window."""
        top, left = params
        return x[top : top + self.size[0], left : left + self.size[1]]
