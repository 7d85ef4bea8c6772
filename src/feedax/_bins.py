"""Where packed sequences go: the row of each item of a window, by best fit, first fit or cut.

An item is a sequence (or a piece of one): ``doc``, then ``(start, length, cut)`` of each
packed field. These functions return each item's row (``concat`` the whole segment table).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import numpy as np


def best_fit(items: np.ndarray, L: int, cap: int | None) -> np.ndarray:
    """Best-fit decreasing: longest first, each into the open row with least room left."""
    order = np.argsort(-items[:, 2], kind="stable")
    placed = [0] * len(order)
    # Open rows that take more, as sorted ints ``room << 32 | row``: ordered like
    # (room, row) pairs, at half the cost of comparing tuples.
    room: list[int] = []
    counts: list[int] = []
    for j, size in enumerate(items[order, 2].tolist()):
        at = bisect.bisect_left(room, size << 32)
        if at == len(room):
            row, left = len(counts), L - size
            counts.append(1)
        else:
            key = room.pop(at)
            row, left = key & _ROW_BITS, (key >> 32) - size
            counts[row] += 1
        placed[j] = row
        if left > 0 and (cap is None or counts[row] < cap):
            bisect.insort(room, (left << 32) | row)
    rows = np.empty(len(order), np.int64)
    rows[order] = placed
    return rows


_ROW_BITS = (1 << 32) - 1


def first_fit(items: np.ndarray, L: int, cap: int | None) -> np.ndarray:
    """First fit: in order, each into the first open row with room."""
    room = np.full(len(items), -1, np.int64)  # a row per item at most
    counts = np.zeros(len(items), np.int64)
    rows = np.empty(len(items), np.int64)
    opened = 0
    for i, size in enumerate(items[:, 2].tolist()):
        fits = np.flatnonzero(room[:opened] >= size)
        row = int(fits[0]) if len(fits) else opened
        if row == opened:
            room[row], opened = L, opened + 1
        room[row] -= size
        counts[row] += 1
        rows[i] = row
        if cap is not None and counts[row] >= cap:
            room[row] = -1
    return rows


def concat(items: np.ndarray, L: int) -> np.ndarray:
    """The items end to end, cut into rows of ``L``: pieces cross row boundaries."""
    lens = items[:, 2]
    begin = np.cumsum(lens) - lens
    first_row, last_row = begin // L, (begin + lens - 1) // L
    counts = last_row - first_row + 1
    item = np.repeat(np.arange(len(items)), counts)
    row = (
        np.repeat(first_row, counts)
        + np.arange(len(item))
        - np.repeat(np.cumsum(counts) - counts, counts)
    )
    lo = np.maximum(begin[item], row * L)
    hi = np.minimum(begin[item] + lens[item], (row + 1) * L)
    start = items[item, 1] + lo - begin[item]
    cut = np.where(lo == begin[item], items[item, 3], 0)
    return np.stack([row, items[item, 0], start, hi - lo, lo - row * L, cut], axis=1)


def fit_aligned(
    items: np.ndarray, sizes: Sequence[int], cap: int | None, *, best: bool
) -> np.ndarray:
    """Rows of items with several aligned fields: each goes where all its fields fit.

    ``best``: longest first (by its largest share of a row), into the open row that is left
    with the least room (in shares of a row, over the fields); otherwise in order, into the
    first open row that fits.
    """
    sizes_ = np.asarray(sizes, np.int64)
    need = items[:, 2::3]  # (items, fields)
    order = np.argsort(-(need / sizes_).max(axis=1), kind="stable") if best else range(len(items))
    room = np.empty((len(items), len(sizes_)), np.int64)  # a row per item at most
    counts = np.zeros(len(items), np.int64)
    rows = np.empty(len(items), np.int64)
    opened = 0
    for i in np.asarray(order).tolist():
        fits = np.flatnonzero((room[:opened] >= need[i]).all(axis=1))
        if cap is not None:
            fits = fits[counts[fits] < cap]
        if not len(fits):  # a new row
            row = opened
            room[row] = sizes_
            opened += 1
        elif best:
            row = int(fits[np.argmin(((room[fits] - need[i]) / sizes_).sum(axis=1))])
        else:
            row = int(fits[0])
        room[row] -= need[i]
        counts[row] += 1
        rows[i] = row
    return rows
