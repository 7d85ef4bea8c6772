"""Block shuffle: a keyed order for chunked files, visiting a few blocks at a time.

Formats read in chunks (Parquet row groups, compressed blocks) are slow to read in a
fully shuffled order: every record of a batch opens another chunk. A block shuffle
permutes whole blocks of consecutive records, then shuffles the records within each
window of consecutive (permuted) blocks, so a batch touches about ``window`` blocks.
It is still a bijection of ``[0, n)`` per (seed, epoch), computed for any position
directly: the state is the cursor, and resuming is exact.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from feedax._errors import PipelineError
from feedax._order import EpochOrder, _mix_int


@dataclasses.dataclass(frozen=True)
class BlockShuffle:
    """A hierarchical shuffle: ``Pipeline(..., shuffle=fx.BlockShuffle(block, window))``.

    Each epoch permutes the blocks of ``block`` consecutive records (the last may be
    shorter), then shuffles records within consecutive windows of ``window`` permuted
    blocks, with a keyed permutation per window. A batch then reads from about ``window``
    blocks: choose ``block`` = the file's row-group size and ``window`` <= half the
    source's block cache (``ParquetSource(cache_row_groups=...)``: a batch may straddle two
    windows). Records of one block stay
    within one window of ``window * block`` positions: less random than a full shuffle,
    the price of reading each block once per epoch.

    Args:
      block: records per block (e.g. the row-group size), >= 1.
      window: blocks whose records are shuffled together, >= 1.

    Example:
      >>> import numpy as np, feedax as fx
      >>> src = fx.ArraySource({"x": np.arange(20)})
      >>> pipe = fx.Pipeline(src, batch_size=5, shuffle=fx.BlockShuffle(block=5, window=2))
      >>> rows = [b["x"].tolist() for b in pipe.epoch()]
      >>> sorted(sum(rows, [])) == list(range(20))
      True
    """

    block: int
    window: int

    def __post_init__(self) -> None:
        for name in ("block", "window"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise PipelineError(f"BlockShuffle: {name} must be an int >= 1, got {value!r}.")


class BlockOrder:
    """The block-shuffled order of one epoch: position -> record index, a bijection.

    Example:
      >>> order = BlockOrder(23, BlockShuffle(4, 2), seed=0, epoch=0)
      >>> sorted(order(np.arange(23)).tolist()) == list(range(23))
      True
    """

    def __init__(self, n: int, shuffle: BlockShuffle, *, seed: int, epoch: int):
        b, w = shuffle.block, shuffle.window
        self.n, self.b, self.w, self.seed, self.epoch = n, b, w, seed, epoch
        nb = -(-n // b)
        # The blocks in their permuted order: O(n / block) integers, once per epoch.
        self.blocks = EpochOrder(nb, seed=seed, epoch=epoch)(np.arange(nb))
        self.last = n - (nb - 1) * b  # size of the last block, 1..b
        self.deficit = b - self.last
        self.short = int(np.flatnonzero(self.blocks == nb - 1)[0])  # its slot
        self.windows = -(-nb // w)
        self._orders: dict[int, np.ndarray] = {}

    def _start(self, k: np.ndarray) -> np.ndarray:
        """The first position of window ``k``."""
        return k * self.w * self.b - self.deficit * (k * self.w > self.short)

    def _size(self, k: int) -> int:
        slots = min(self.w, -(-self.n // self.b) - k * self.w)
        holds_short = k * self.w <= self.short < k * self.w + slots
        return slots * self.b - self.deficit * holds_short

    def _window_order(self, k: int) -> np.ndarray:
        """Window ``k``'s keyed permutation, whole: ``window * block`` integers, made once."""
        if k not in self._orders:
            if len(self._orders) >= 4:  # a batch spans one or two windows
                self._orders.pop(next(iter(self._orders)))
            key = _mix_int(self.seed * 0x9E3779B1 + k + 1) & 0x7FFFFFFF
            size = self._size(k)
            self._orders[k] = EpochOrder(size, seed=key, epoch=self.epoch)(np.arange(size))
        return self._orders[k]

    def __call__(self, positions: np.ndarray) -> np.ndarray:
        """Returns the record indices (int64) visited at ``positions`` (each in ``[0, n)``)."""
        p = np.asarray(positions, dtype=np.int64)
        if p.size and (p.min() < 0 or p.max() >= self.n):
            raise IndexError(
                f"Order positions must lie in [0, {self.n}); got values in [{p.min()}, {p.max()}]."
            )
        span = self.w * self.b
        k = (p + self.deficit) // span
        k = np.where(self._start(k) > p, p // span, k)
        out = np.empty(p.shape, np.int64)
        for window in np.unique(k):
            mine = k == window
            r = self._window_order(int(window))[p[mine] - self._start(window)]
            js = self.short - int(window) * self.w  # the short block's slot in the window
            if 0 <= js < self.w:
                r = np.where(r >= js * self.b + self.last, r + self.deficit, r)
            slot, offset = int(window) * self.w + r // self.b, r % self.b
            out[mine] = self.blocks[slot] * self.b + offset
        return out
