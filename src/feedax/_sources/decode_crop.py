"""DecodeRandomResizedCrop: decode an image on the host, cropping and shrinking as it decodes."""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np

from feedax._errors import SourceError
from feedax._ops._crop_box import ATTEMPTS, central_box, random_box
from feedax._sources.decode_image import (
    decode_pil,
    decoded,
    image_options,
    simplejpeg_module,
)

_JPEG = b"\xff\xd8"
_SCALES = (8, 4, 2)
"""The DCT-domain reductions a JPEG decoder offers (1/8, 1/4, 1/2), largest first."""


class DecodeRandomResizedCrop:
    """Host function: decodes an image and random-resized-crops it to ``size``, uint8 HWC.

    For :class:`feedax.HostMap`: ``fx.HostMap(fx.DecodeRandomResizedCrop(224), rngs=...)``.
    The host-side twin of :class:`feedax.RandomResizedCrop`, for images of many sizes or
    much larger than ``size``, which a device operator would need resized to one shape
    first. Per record it:

    1. reads the image's size from its header and draws the box from the record's
       generator (:meth:`feedax.HostContext.rng`: keyed by the stage's seed, the epoch
       and the record index, so the same whatever the worker count or a restart), by the
       device operator's rule (10 candidates of area in ``scale`` and aspect in
       ``ratio``, the first that fits, else the central box with the aspect clamped):
       the same distribution of boxes, not the same boxes;
    2. decodes a JPEG at 1/2, 1/4 or 1/8 scale in the DCT domain (simplejpeg when
       installed, else Pillow's ``draft``) when the box is at least that many times the
       output on both sides, so a large photograph cropped to 224 pixels is never decoded
       whole; other formats decode at full size;
    3. resizes the box to ``size`` with Pillow's bilinear filter (antialiased,
       ``Image.resize(size, BILINEAR, box)``), exactly as the device operator's default
       (up to a level of rounding; a DCT-scaled decode is a different, equally smooth,
       low-pass of the same box: a mean difference of about a level).

    In eval mode (``ctx.training`` False) it resizes the largest central box of the
    output's aspect, as the device operator does in eval. Add ``fx.RandomFlip`` and
    ``fx.Normalize`` on the device. The output has the image in ``out_field`` and passes
    the record's numeric fields through (as :class:`feedax.DecodeImage`).

    Args:
      size: the output ``(height, width)``, or one int for a square.
      scale: range of the box area as a fraction of the image area.
      ratio: range of the box aspect (width / height).
      field: the record field holding the path or bytes.
      out_field: the output field of the image.
      channels: 3 (RGB) or 1 (grayscale).

    Example:
      >>> import io, numpy as np, feedax as fx
      >>> from PIL import Image
      >>> buf = io.BytesIO()
      >>> Image.fromarray(np.zeros((300, 400, 3), np.uint8)).save(buf, "JPEG")
      >>> crop = fx.DecodeRandomResizedCrop(64, field="jpeg")
      >>> ctx = fx.HostContext(epoch=0, index=7, training=True, seed=0)
      >>> crop({"jpeg": buf.getvalue()}, ctx)["image"].shape
      (64, 64, 3)
    """

    def __init__(
        self,
        size: int | tuple[int, int],
        *,
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0),
        field: str = "path",
        out_field: str = "image",
        channels: int = 3,
    ):
        name = "DecodeRandomResizedCrop"
        self.size = image_options(name, size, channels)
        if not 0 < scale[0] <= scale[1] <= 1:
            raise SourceError(f"{name}: scale must satisfy 0 < low <= high <= 1, got {scale!r}.")
        if not 0 < ratio[0] <= ratio[1]:
            raise SourceError(f"{name}: ratio must satisfy 0 < low <= high, got {ratio!r}.")
        self.scale = (float(scale[0]), float(scale[1]))
        self.ratio = (float(ratio[0]), float(ratio[1]))
        self.field = field
        self.out_field = out_field
        self.channels = channels

    def __repr__(self) -> str:
        return (
            f"DecodeRandomResizedCrop(size={self.size}, scale={self.scale}, ratio={self.ratio}, "
            f"field={self.field!r}, out_field={self.out_field!r}, channels={self.channels})"
        )

    def __call__(self, record: dict[str, Any], ctx: Any) -> dict[str, np.ndarray]:
        """Decodes and crops ``record[field]``; returns it and the record's numeric fields."""
        if ctx is None or not hasattr(ctx, "rng"):
            raise SourceError(
                "DecodeRandomResizedCrop: needs the record's HostContext for its draws, got "
                f"{ctx!r}. Run it in fx.HostMap, or pass fx.HostContext(epoch=, index=, "
                "training=, seed=)."
            )

        def crop(data: bytes) -> np.ndarray:
            return self._crop(data, ctx)

        return decoded(record, "DecodeRandomResizedCrop", self.field, self.out_field, crop)

    def box(self, height: int, width: int, ctx: Any) -> tuple[int, int, int, int]:
        """The record's box ``(top, left, h, w)`` in an image of ``height`` x ``width``."""
        if not ctx.training:
            return central_box(height, width, self.size)
        u = ctx.rng().random(2 * ATTEMPTS + 2)
        return random_box(u, height, width, self.scale, self.ratio)

    def _crop(self, data: bytes, ctx: Any) -> np.ndarray:
        from PIL import Image

        jpeg = data[:2] == _JPEG
        simplejpeg = simplejpeg_module() if jpeg else None
        if simplejpeg is not None:
            height, width = simplejpeg.decode_jpeg_header(data)[:2]
        else:
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
        top, left, h, w = self.box(height, width, ctx)
        out_h, out_w = self.size
        reduce = next((d for d in _SCALES if h >= d * out_h and w >= d * out_w), 1) if jpeg else 1
        at_least = (math.ceil(height / reduce), math.ceil(width / reduce))
        if simplejpeg is not None:
            array = simplejpeg.decode_jpeg(
                data,
                colorspace="GRAY" if self.channels == 1 else "RGB",
                min_height=at_least[0],
                min_width=at_least[1],
            )
        else:
            array = decode_pil(data, self.channels, draft=at_least[::-1] if reduce > 1 else None)
        if array.ndim == 3 and array.shape[2] == 1:
            array = array[:, :, 0]
        sy, sx = array.shape[0] / height, array.shape[1] / width
        image = Image.fromarray(array)
        box = (left * sx, top * sy, (left + w) * sx, (top + h) * sy)
        out = np.asarray(image.resize((out_w, out_h), Image.Resampling.BILINEAR, box=box))
        return out[:, :, None] if out.ndim == 2 else out
