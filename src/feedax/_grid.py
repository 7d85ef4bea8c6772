"""``fx.write_grid``: a batch of images as one PNG, each tile captioned with its label."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from feedax._errors import PipelineError

GAP = 4
CAPTION = 14  # pixels of text under each tile


def write_grid(
    batch: Mapping[str, Any],
    path: str | os.PathLike[str],
    *,
    field: str = "image",
    label: str | None = "label",
    names: Sequence[str] | None = None,
    columns: int = 8,
    min_size: int = 64,
) -> Path:
    """Writes the images of a batch as a PNG grid, each captioned with its label.

    Made to look at what a pipeline feeds a model: ``fx.write_grid(next(iter(pipe)),
    "batch.png")``. Values are shown as they are for ``uint8`` and for floats within
    [0, 1] (shown ``x 255``); other floats (after ``Normalize``) are rescaled per image to
    its own min..max, so the picture shows the content, not the scale. Small images are
    enlarged (nearest) to at least ``min_size`` pixels. Rows marked padding by the
    batch's ``"valid"`` field are captioned ``pad``. Needs Pillow (``feedax[image]``).

    Args:
      batch: a batch, field -> array with a leading batch axis (JAX or NumPy).
      path: the PNG to write (folders are created).
      field: the image field: ``(B, H, W)``, ``(B, H, W, 1)`` or ``(B, H, W, 3)``.
      label: the label field to caption with (class ids, or one-hot / soft labels: their
        largest entry and its weight), or None for no captions.
      names: class names, indexed by label, for the captions.
      columns: tiles per row.
      min_size: enlarge tiles whose larger side is below this (pixels).

    Returns:
      The path written.

    Example:
      >>> import numpy as np, feedax as fx
      >>> batch = {"image": np.zeros((3, 8, 8, 3), np.uint8), "label": np.array([0, 1, 2])}
      >>> fx.write_grid(batch, "grid.png", names=["cat", "dog", "fox"]).name
      'grid.png'
    """
    try:
        from PIL import Image, ImageDraw
    except ImportError as error:
        raise ImportError("fx.write_grid needs Pillow: pip install 'feedax[image]'") from error
    images = _tiles(batch, field)
    captions = _captions(batch, label, names, len(images))
    scale = max(1, -(-min_size // max(images.shape[1:3])))
    h, w = images.shape[1] * scale, images.shape[2] * scale
    columns = max(1, min(int(columns), len(images)))
    rows = -(-len(images) // columns)
    text = CAPTION if captions else 0
    canvas = Image.new("RGB", (GAP + columns * (w + GAP), GAP + rows * (h + text + GAP)), (40,) * 3)
    draw = ImageDraw.Draw(canvas)
    for i, image in enumerate(images):
        top, left = GAP + (i // columns) * (h + text + GAP), GAP + (i % columns) * (w + GAP)
        big = np.kron(image, np.ones((scale, scale, 1), np.uint8))
        canvas.paste(Image.fromarray(big), (left, top))
        if captions:
            draw.text((left, top + h + 1), captions[i][: max(4, w // 6)], fill=(230,) * 3)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return out


def _tiles(batch: Mapping[str, Any], field: str) -> np.ndarray:
    """The images as uint8 ``(B, H, W, 3)``."""
    if field not in batch:
        raise PipelineError(
            f"write_grid: the batch has no field {field!r}; it has {sorted(batch)}. Pass "
            "field=<the image field>."
        )
    x = np.asarray(batch[field])
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise PipelineError(
            f"write_grid: field {field!r} has shape {x.shape}; expected (B, H, W), (B, H, W, 1) "
            "or (B, H, W, 3) images."
        )
    if x.dtype != np.uint8:
        x = x.astype(np.float32)
        if x.size and (x.min() < 0 or x.max() > 1):  # e.g. normalised: show each image's range
            lo = x.min(axis=(1, 2, 3), keepdims=True)
            x = (x - lo) / np.maximum(x.max(axis=(1, 2, 3), keepdims=True) - lo, 1e-12)
        x = np.round(np.nan_to_num(x) * 255).astype(np.uint8)
    return np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x


def _captions(
    batch: Mapping[str, Any], label: str | None, names: Sequence[str] | None, n: int
) -> list[str]:
    if label is None:
        return []
    if label not in batch:
        raise PipelineError(
            f"write_grid: the batch has no label field {label!r}; it has {sorted(batch)}. "
            "Pass label=<the label field>, or label=None for no captions."
        )
    y = np.asarray(batch[label])
    if y.ndim == 2:  # one-hot or mixed labels: the largest class and its weight
        top = y.argmax(axis=1)
        weights = y[np.arange(len(y)), top]
        texts = [
            _name(int(c), names) + (f" {w:.2f}" if w < 1 else "")
            for c, w in zip(top, weights, strict=True)
        ]
    else:
        texts = [_name(int(c), names) for c in y.reshape(len(y))]
    valid = np.asarray(batch.get("valid", np.ones(n, bool)))
    return [t if ok else "pad" for t, ok in zip(texts, valid, strict=True)]


def _name(c: int, names: Sequence[str] | None) -> str:
    return str(names[c]) if names is not None and 0 <= c < len(names) else str(c)
