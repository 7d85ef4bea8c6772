"""DecodeImage: a host function that reads, decodes and resizes one image to a fixed shape."""

from __future__ import annotations

import io
import math
import os
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from feedax._errors import SourceError
from feedax._sources._common import require
from feedax._sources._files import open_file

FIX = "The file is corrupt or not an image: re-encode it or remove it from the dataset"


def simplejpeg_module() -> Any:
    """Simplejpeg when installed, else None."""
    try:
        import simplejpeg
    except ImportError:
        return None
    return simplejpeg


class DecodeImage:
    """Host function: reads and decodes an image, resized to ``size``, as uint8 HWC.

    For :class:`feedax.HostMap`: ``fx.HostMap(fx.DecodeImage(224))``. The record's
    ``field`` holds a file path (``str``, as :class:`feedax.ImageFolderSource` gives) or
    the encoded bytes (as in ArrayRecord, Parquet or a Hugging Face ``Image()`` column).
    JPEGs are decoded with simplejpeg when installed (letting libjpeg downscale while
    decoding when the image is much larger than ``size``), everything else with Pillow.
    The image then gets the fixed shape ``(height, width, channels)``:

    * ``mode="center_crop"`` (default): scaled so it covers ``size``, then the centre is
      cut out (the usual evaluation transform; add random crops on the device).
    * ``mode="resize"``: stretched to ``size``.

    The output has the image in ``out_field`` and passes the record's other fields
    through, except those of ``object`` dtype (paths, bytes, strings), which cannot go to
    a device. The instance holds only its settings, so it pickles to process workers.

    An unreadable, empty or corrupt file raises :class:`feedax.SourceError` naming the
    path and the cause; :class:`feedax.HostMap` adds the source and the record index.

    Args:
      size: the output ``(height, width)``, or one int for a square.
      field: the record field holding the path or bytes.
      out_field: the output field of the decoded image.
      channels: 3 (RGB) or 1 (grayscale).
      mode: ``"center_crop"`` or ``"resize"``.

    Example:
      >>> import numpy as np, io, feedax as fx
      >>> from PIL import Image
      >>> buf = io.BytesIO()
      >>> Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(buf, "PNG")
      >>> decode = fx.DecodeImage(32, field="png")
      >>> out = decode({"png": buf.getvalue(), "label": np.int64(3)}, None)
      >>> out["image"].shape, int(out["label"])
      ((32, 32, 3), 3)
    """

    def __init__(
        self,
        size: int | tuple[int, int],
        *,
        field: str = "path",
        out_field: str = "image",
        channels: int = 3,
        mode: Literal["center_crop", "resize"] = "center_crop",
    ):
        self.size = image_options("DecodeImage", size, channels)
        if mode not in ("center_crop", "resize"):
            raise SourceError(f"DecodeImage: mode must be 'center_crop' or 'resize', got {mode!r}.")
        self.field = field
        self.out_field = out_field
        self.channels = channels
        self.mode = mode

    def __repr__(self) -> str:
        return (
            f"DecodeImage(size={self.size}, field={self.field!r}, out_field={self.out_field!r}, "
            f"channels={self.channels}, mode={self.mode!r})"
        )

    def __call__(self, record: dict[str, Any], ctx: Any) -> dict[str, np.ndarray]:
        """Decodes ``record[field]``; returns the image and the record's numeric fields."""
        return decoded(record, "DecodeImage", self.field, self.out_field, self._decode)

    def _decode(self, data: bytes) -> np.ndarray:
        height, width = self.size
        simplejpeg = simplejpeg_module() if data[:2] == b"\xff\xd8" else None
        if simplejpeg is not None:
            h0, w0, _, _ = simplejpeg.decode_jpeg_header(data)
            scale = max(height / h0, width / w0) if self.mode == "center_crop" else None
            min_h = math.ceil(h0 * scale) if scale else height
            min_w = math.ceil(w0 * scale) if scale else width
            array = simplejpeg.decode_jpeg(
                data,
                colorspace="GRAY" if self.channels == 1 else "RGB",
                min_height=min_h,
                min_width=min_w,
            )
        else:
            array = decode_pil(data, self.channels)
        if array.ndim == 2:
            array = array[:, :, None]
        return self._fit(array)

    def _fit(self, array: np.ndarray) -> np.ndarray:
        height, width = self.size
        h0, w0 = array.shape[:2]
        if (h0, w0) == (height, width):
            return np.ascontiguousarray(array, dtype=np.uint8)
        from PIL import Image

        if self.mode == "resize":
            new_h, new_w = height, width
        else:
            scale = max(height / h0, width / w0)
            new_h, new_w = max(height, round(h0 * scale)), max(width, round(w0 * scale))
        img = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
        resized = np.asarray(img.resize((new_w, new_h), Image.Resampling.BILINEAR))
        if resized.ndim == 2:
            resized = resized[:, :, None]
        top, left = (new_h - height) // 2, (new_w - width) // 2
        return np.ascontiguousarray(resized[top : top + height, left : left + width])


def image_options(who: str, size: int | tuple[int, int], channels: int) -> tuple[int, int]:
    """The output ``(height, width)`` of an image decoder, its options checked.

    Raises:
      ImportError: Pillow is missing (naming the ``image`` extra).
      SourceError: ``size`` is not positive ints, or ``channels`` is not 1 or 3.
    """
    require(["PIL", "PIL.Image"], extra="image", user=who)
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    if not all(isinstance(v, int) and v > 0 for v in (height, width)):
        raise SourceError(f"{who}: size must be positive ints (h, w), got {size!r}.")
    if channels not in (1, 3):
        raise SourceError(f"{who}: channels must be 1 or 3, got {channels!r}.")
    return int(height), int(width)


def decoded(
    record: dict[str, Any],
    who: str,
    field: str,
    out_field: str,
    decode: Callable[[bytes], np.ndarray],
) -> dict[str, np.ndarray]:
    """``decode`` of ``record[field]``'s image in ``out_field``, beside the numeric fields.

    Raises:
      SourceError: the image is missing, unreadable or does not decode (naming where).
    """
    data, where = image_bytes(record, field, who)
    try:
        image = decode(data)
    except Exception as error:
        raise SourceError(
            f"cannot decode image {where}: {type(error).__name__}: {error}. {FIX}"
        ) from error
    return with_image(record, field, out_field, image)


def image_bytes(record: dict[str, Any], field: str, who: str) -> tuple[bytes, str]:
    """The encoded image of ``record[field]`` (bytes, or a file path read) and where from.

    Raises:
      SourceError: the field is missing, holds another type, or the image is empty or
        unreadable.
    """
    if field not in record:
        raise SourceError(
            f"{who}: the record has no field {field!r} (it has {sorted(record)}). "
            "Pass field= naming the field with the image path or bytes."
        )
    value = record[field]
    if isinstance(value, np.ndarray) and value.dtype == object and value.ndim == 0:
        value = value.item()
    if isinstance(value, bytes | bytearray | memoryview | np.bytes_):
        data, where = bytes(value), f"bytes of field {field!r}"
    elif isinstance(value, str | os.PathLike):
        path = os.fspath(value)
        try:
            with open_file(path, who) as f:
                data, where = f.read(), f"file {path!r}"
        except OSError as error:
            raise SourceError(
                f"cannot read image file {path!r}: {error}. Check the path."
            ) from error
    else:
        raise SourceError(
            f"{who}: field {field!r} holds {type(value).__name__}; expected a file path "
            "(str) or encoded image bytes."
        )
    if not data:
        raise SourceError(f"image {where} is empty (0 bytes). {FIX}")
    return data, where


def decode_pil(data: bytes, channels: int, draft: tuple[int, int] | None = None) -> np.ndarray:
    """Decodes with Pillow to uint8, HW (grey) or HWC (RGB).

    ``draft``: a (width, height) a JPEG may be decoded down to (DCT scaling, never below
    that size); other formats ignore it.
    """
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        if draft is not None:
            img.draft("L" if channels == 1 else "RGB", draft)
        if img.mode.startswith("I"):  # 16-bit grey: PIL's convert would saturate
            return _eight_bit(np.asarray(img), channels)
        return np.asarray(img.convert("L" if channels == 1 else "RGB"))


def with_image(
    record: dict[str, Any], field: str, out_field: str, image: np.ndarray
) -> dict[str, np.ndarray]:
    """The image in ``out_field`` and the record's fields that can go to a device."""
    out = {
        k: np.asarray(v)
        for k, v in record.items()
        if k != field and np.asarray(v).dtype.kind not in "OSUV"
    }
    out[out_field] = image
    return out


def _eight_bit(levels: np.ndarray, channels: int) -> np.ndarray:
    """A 16-bit grey image as uint8, ``round(x * 255 / 65535)``, with ``channels`` channels."""
    grey = np.clip(np.round(levels.astype(np.float64) / 257.0), 0, 255).astype(np.uint8)
    return grey if channels == 1 else np.repeat(grey[:, :, None], 3, axis=2)
