"""The boxes of a random-resized crop that need no draw: the fallback and the eval box.

Plain Python on static sizes, shared by the device operator
(:class:`feedax.RandomResizedCrop`) and the host decoder
(:class:`feedax.DecodeRandomResizedCrop`), so both crop the same boxes.
"""

from __future__ import annotations

import numpy as np

from feedax._ops._common import box_sides
from feedax._ops._geometry_fn import center_crop_offsets

ATTEMPTS = 10
"""Candidate boxes drawn at once per record (torchvision's retries)."""


def fallback_sides(height: int, width: int, ratio: tuple[float, float]) -> tuple[int, int]:
    """(h, w) of the central box torchvision takes when no candidate fits.

    The whole image when its aspect is inside ``ratio``, else the aspect clamped to it.
    """
    aspect = width / height
    if aspect < ratio[0]:
        return max(1, min(height, round(width / ratio[0]))), width
    if aspect > ratio[1]:
        return height, max(1, min(width, round(height * ratio[1])))
    return height, width


def central_box(height: int, width: int, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """(top, left, h, w): the largest central box of ``size``'s aspect (the eval crop)."""
    out_h, out_w = size
    h = max(1, min(height, round(width * out_h / out_w)))
    w = max(1, min(width, round(height * out_w / out_h)))
    return (*center_crop_offsets((height, width), (h, w)), h, w)


def random_box(
    u: np.ndarray,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
) -> tuple[int, int, int, int]:
    """(top, left, h, w) from ``2 * ATTEMPTS + 2`` U[0, 1) draws, in NumPy.

    The device operator's rule: the candidates of ``box_sides``; the first that fits is
    placed at a uniform position (the last two draws), else :func:`fallback_sides`,
    centred.
    """
    w, h = box_sides(u[: 2 * ATTEMPTS], height, width, scale, ratio, xp=np)
    fits = np.flatnonzero((w > 0) & (w <= width) & (h > 0) & (h <= height))
    if not len(fits):
        fh, fw = fallback_sides(height, width, ratio)
        return (height - fh) // 2, (width - fw) // 2, fh, fw
    bh, bw = int(h[fits[0]]), int(w[fits[0]])
    top = min(int(u[-2] * (height - bh + 1)), height - bh)
    left = min(int(u[-1] * (width - bw + 1)), width - bw)
    return top, left, bh, bw
