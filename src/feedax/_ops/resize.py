"""Resizing: Resize (fixed) and RandomResizedCrop (Inception-style random box)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from feedax._context import RecordContext
from feedax._operator import Mirror, RandomOperator, SpatialOperator
from feedax._ops import _geometry_fn as G
from feedax._ops._common import (
    below,
    box_sides,
    check_choice,
    check_fields,
    check_interval,
    check_size,
)
from feedax._ops._crop_box import ATTEMPTS, central_box, fallback_sides


class Resize(SpatialOperator):
    """Resizes an HWC image as PIL does (antialiased when downscaling).

    Deterministic: applies in train and eval mode. uint8 stays uint8 (rounded).

    Args:
      size: a pair (height, width), or one int: the smaller edge becomes ``size`` and the
        other keeps the aspect ratio (``int(size * long / short)``, as torchvision).
      method: ``"nearest"`` (torchvision's rule), ``"nearest_exact"`` (PIL's),
        ``"bilinear"``, ``"bicubic"``, ``"lanczos3"`` or ``"lanczos5"`` (see
        ``feedax.functional.resize``).
      antialias: widen the kernel when downscaling (ignored by ``"nearest"``).
      fields: extra fields (e.g. ``("mask",)``) resized alike, nearest-neighbour.
      field: the record field to resize.

    Example:
      >>> import jax.numpy as jnp, feedax as fx
      >>> ctx = fx.RecordContext(jnp.int32(0), jnp.int32(0), jnp.bool_(True))
      >>> fx.Resize(16)({"image": jnp.zeros((32, 48, 3), jnp.uint8)}, ctx)["image"].shape
      (16, 24, 3)
    """

    mirrorable = True

    def __init__(
        self,
        size: int | tuple[int, int],
        *,
        method: str = "bilinear",
        antialias: bool = True,
        fields: Sequence[str] = (),
        field: str = "image",
    ):
        super().__init__(field=field)
        pair = check_size(type(self).__name__, "size", size)
        self.size: int | tuple[int, int] = size if isinstance(size, int) else pair
        self.method = check_choice(type(self).__name__, "method", method, G.RESIZE_METHODS)
        self.antialias = bool(antialias)
        self.fields = check_fields(type(self).__name__, fields, field)

    def output_size(self, shape: tuple[int, ...]) -> tuple[int, int]:
        """The (height, width) of the output for an input of ``shape``."""
        if not isinstance(self.size, int):
            return self.size
        h, w = shape[0], shape[1]
        if h <= w:
            return self.size, max(1, int(self.size * w / h))
        return max(1, int(self.size * h / w)), self.size

    def draw(self, shape: tuple[int, ...], ctx: RecordContext) -> Any:
        """The output size."""
        return self.output_size(shape)

    def warp(
        self, x: jax.Array, params: Any, main: bool, mirror: Mirror | None = None
    ) -> jax.Array:
        """Resizes one HWC value to ``params`` (and mirrors it where ``mirror`` says)."""
        method = self.method if main else "nearest"
        return G.resize(x, params, method, self.antialias, mirror)


class RandomResizedCrop(SpatialOperator, RandomOperator):
    """Crops a random box (area fraction ``scale``, aspect ``ratio``) and resizes it to ``size``.

    Torchvision's retry loop, vectorised: each record draws ``ATTEMPTS`` (10) candidate
    boxes at once (area uniform in ``scale`` times the image area, log-aspect uniform in
    ``log(ratio)``, sides rounded) and takes the first that fits; if none fits, the
    central crop with the aspect clamped to ``ratio`` (the whole image when it is inside
    ``ratio``). The same distribution as torchvision's loop. The box position is uniform.
    Resampling is PIL's (``Image.resize(size, filter, box)``: antialiased when
    downscaling, and pixels just outside the box weigh in at its border), computed as two
    separable passes of a few taps per output pixel. For decoding and cropping on the
    host instead (images of many sizes, or much larger than ``size``), see
    :class:`feedax.DecodeRandomResizedCrop`.
    In eval mode it resizes the central box of the output's aspect (the largest that
    fits) to ``size``, so eval batches have the train shape: torchvision's
    ``Resize(size) + CenterCrop(size)``, which users write by hand for eval.

    Args:
      size: output (height, width), or one int for a square.
      scale: range of the box area as a fraction of the image area.
      ratio: range of the box aspect (width / height).
      method: ``"nearest"`` (torchvision's rule), ``"nearest_exact"`` (PIL's),
        ``"bilinear"``, ``"bicubic"``, ``"lanczos3"`` or ``"lanczos5"`` (see
        ``feedax.functional.resize``).
      antialias: widen the kernel when downscaling.
      fields: extra fields (e.g. ``("mask",)``) cropped alike, nearest-neighbour.
      rngs: the RNG streams; the operator draws its key from ``stream``.
      stream: the name of the stream in ``rngs`` (default ``"augment"``).
      field: the record field to transform.

    Example:
      >>> import jax.numpy as jnp, feedax as fx
      >>> from flax import nnx
      >>> op = fx.RandomResizedCrop(8, rngs=nnx.Rngs(augment=0))
      >>> x = jnp.zeros((20, 30, 3), jnp.uint8)[None]
      >>> out = fx.apply_operators(op, {"image": x}, indices=[0])
      >>> out["image"][0].shape
      (8, 8, 3)
    """

    mirrorable = True

    def __init__(
        self,
        size: int | tuple[int, int],
        *,
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0),
        method: str = "bilinear",
        antialias: bool = True,
        fields: Sequence[str] = (),
        rngs: nnx.Rngs,
        stream: str = "augment",
        field: str = "image",
    ):
        super().__init__(rngs=rngs, stream=stream, field=field)
        name = "RandomResizedCrop"
        self.size = check_size(name, "size", size)
        self.scale = check_interval(name, "scale", scale, 1e-6, 1.0)
        self.ratio = check_interval(name, "ratio", ratio, 1e-3, 1e3)
        self.method = check_choice(name, "method", method, G.RESIZE_METHODS)
        self.antialias = bool(antialias)
        self.fields = check_fields(name, fields, field)

    def draw(self, shape: tuple[int, ...], ctx: RecordContext) -> Any:
        """The box (top, left, height, width), integers."""
        height, width = shape[0], shape[1]
        u = self.record_uniforms(ctx, 2 * ATTEMPTS + 2)
        w, h = box_sides(u[: 2 * ATTEMPTS], height, width, self.scale, self.ratio)
        fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
        first = jnp.argmax(fits)
        found = jnp.any(fits)
        fh, fw = fallback_sides(height, width, self.ratio)
        h = jnp.where(found, h[first], fh)
        w = jnp.where(found, w[first], fw)
        top = jnp.where(found, below(u[-2], height - h + 1), (height - fh) // 2)
        left = jnp.where(found, below(u[-1], width - w + 1), (width - fw) // 2)
        return top, left, h, w

    def eval_params(self, shape: tuple[int, ...]) -> Any:
        """The largest central box with the aspect of ``size``."""
        return central_box(shape[0], shape[1], self.size)

    def warp(
        self, x: jax.Array, params: Any, main: bool, mirror: Mirror | None = None
    ) -> jax.Array:
        """Resizes the box ``params`` of one HWC value to ``size`` (mirrored per ``mirror``)."""
        top, left, height, width = params
        method = self.method if main else "nearest"
        size, antialias = self.size, self.antialias
        return G.resized_crop(x, top, left, height, width, size, method, antialias, mirror)
