"""The plan: which records form each row of an epoch, the one place rows are decided.

A plan is a pure function of the seed, the epoch, the keyed order and source metadata
(the columns a filter reads). It is computed window by window of the order from the
cursor on, so resuming re-plans one window, and it is global: every process derives the
same steps and reads only its own rows of each.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import numpy as np

from feedax._filter import Filter
from feedax._step import Position, Step

Locate = Callable[[int, np.ndarray], tuple[np.ndarray, np.ndarray | None]]
"""``(epoch, order positions) -> (record indices, their own epochs or None)``."""

WINDOW = 4096
"""Order positions a filter reads metadata for at once."""


class Planner(Protocol):
    """Decides the rows of each epoch: the steps from a cursor on."""

    def steps(self, at: Position, drop: bool) -> Iterator[Step]:
        """The steps from ``at`` on, endlessly across epochs; ``drop``: no partial step."""
        ...

    def steps_per_epoch(self, drop: bool, epoch: int = 0) -> int:
        """Steps in ``epoch``."""
        ...


class RowPlan:
    """Rows of consecutive records of the keyed order, optionally filtered.

    Args:
      n: order positions per epoch (records of the source).
      batch_size: rows per step.
      order: makes the order (positions -> record indices) an iteration plans with, read
        afresh at each start (a mixture's schedule may have moved); None when the device
        computes the order (the steps then carry no indices).
      filter: keeps records by their metadata (needs ``locate`` and ``source``).
      source: the source the filter reads metadata from.
      mixed: whether ``locate`` gives each record its own epoch (a mixture).
    """

    def __init__(
        self,
        *,
        n: int,
        batch_size: int,
        order: Callable[[], Locate] | None,
        filter: Filter | None = None,
        source: Any = None,
        mixed: bool = False,
    ):
        self.n = n
        self.batch_size = batch_size
        self.order = order
        self.filter = filter
        self.source = source
        self.mixed = mixed

    def steps(self, at: Position, drop: bool) -> Iterator[Step]:
        """The steps from ``at`` on, endlessly across epochs; ``drop``: no partial step."""
        epoch, step, start, _ = at
        locate = None if self.order is None else self.order()
        while True:
            if self.filter is not None:
                assert locate is not None
                yield from self._filtered(locate, epoch, step, start, drop)
            else:
                yield from self._consecutive(locate, epoch, step, start, drop)
            epoch, step, start = epoch + 1, 0, 0

    def steps_per_epoch(self, drop: bool, epoch: int = 0) -> int:
        """Steps in ``epoch``: known from ``n`` alone, or by filtering its metadata."""
        kept = self.n
        if self.filter is not None:
            assert self.order is not None
            kept = sum(len(p) for p, _, _ in self._kept(self.order(), epoch, 0))
        b = self.batch_size
        return kept // b if drop else -(-kept // b)

    def _consecutive(
        self, locate: Locate | None, epoch: int, step: int, start: int, drop: bool
    ) -> Iterator[Step]:
        n, b = self.n, self.batch_size
        while start < n and not (drop and start + b > n):
            began = time.perf_counter()
            positions = np.arange(start, start + b, dtype=np.int64)
            valid = positions < n
            indices = epochs = rows = None
            if locate is not None:
                indices, epochs = locate(epoch, positions[valid])
                indices = _padded(indices, b)
                epochs = None if epochs is None else _padded(epochs, b)
                rows = np.where(valid, positions, start)
            last = start + b >= n or (drop and start + 2 * b > n)
            end = min(start + b, n)
            yield Step(epoch, step, start, end, indices, valid, epochs, last, rows, began=began)
            start, step = end, step + 1

    def _kept(self, locate: Locate, epoch: int, start: int) -> Iterator[tuple[np.ndarray, ...]]:
        """``(positions, indices, epochs)`` of the kept records from ``start``, by window."""
        assert self.filter is not None
        for lo in range(start, self.n, WINDOW):
            positions = np.arange(lo, min(lo + WINDOW, self.n), dtype=np.int64)
            indices, epochs = locate(epoch, positions)
            if epochs is None:
                epochs = np.full(len(indices), epoch, np.int64)
            keep = self.filter.keep(self.source, indices)
            yield positions[keep], indices[keep], epochs[keep]

    def _filtered(
        self, locate: Locate, epoch: int, step: int, start: int, drop: bool
    ) -> Iterator[Step]:
        b = self.batch_size
        windows = self._kept(locate, epoch, start)
        pending: list[np.ndarray] = [np.zeros(0, np.int64)] * 3
        exhausted = False
        while True:
            began = time.perf_counter()
            # Look a batch ahead: whether more rows follow tells if this step is the last.
            while not exhausted and len(pending[0]) < 2 * b:
                window = next(windows, None)
                if window is None:
                    exhausted = True
                else:
                    pending = [np.concatenate(pair) for pair in zip(pending, window, strict=True)]
            count = min(b, len(pending[0]))
            if count == 0 or (drop and count < b):
                return
            positions, indices, epochs = (p[:count] for p in pending)
            pending = [p[count:] for p in pending]
            rest = len(pending[0])
            last = exhausted and (rest == 0 or (drop and rest < b))
            valid = np.arange(b) < count
            indices, rows = _padded(indices, b), _padded(positions, b)
            own = _padded(epochs, b) if self.mixed else None
            end = int(positions[-1]) + 1
            yield Step(epoch, step, start, end, indices, valid, own, last, rows, began=began)
            start, step = end, step + 1
            if last:
                return


def _padded(values: np.ndarray, b: int) -> np.ndarray:
    """``values`` padded to ``b`` rows by repeating row 0 (padding rows are masked invalid)."""
    if len(values) >= b:
        return values
    return np.concatenate([values, np.repeat(values[:1], b - len(values))])
