"""The skip policy: bad records are replaced by the next good ones in the order."""

from __future__ import annotations

import dataclasses
import time
import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np
from flax import nnx

from feedax._errors import SourceError
from feedax._host import HostMap
from feedax._read import Placement
from feedax._step import Loaded, Position, Step
from feedax._worker_side import OK, read_checked
from feedax._workers import HostExecutor

LISTED = 64
"""How many skipped indices the state lists (per epoch); all of them are counted."""


class SkipLog(nnx.Variable):
    """The records skipped as bad in the current epoch: ``[epoch, count, i_0 .. i_63]``.

    int64 of shape ``(2 + LISTED,)`` whatever the source's size: the epoch it counts, how
    many records that epoch skipped, and the first ``LISTED`` of their indices (``-1`` in
    unused slots). Which records are skipped is a function of the data and the order, so
    a new epoch starts the count again (and meets the same bad records).
    """


def empty_log() -> np.ndarray:
    """A :class:`SkipLog` value with nothing skipped."""
    log = np.full(2 + LISTED, -1, np.int64)
    log[:2] = 0
    return log


class SkipReader:
    """Batches of good records only, read in the plan's order: the skip policy.

    Candidate records come from the plan (padding-free, in order); a record that fails
    (reading, the host stage, a wrong shape) is left out and the batch is filled with the
    next good records, so batches stay full and are the same in every run. Which records
    form a batch depends on reading them, so this needs a single process.
    """

    def __init__(
        self, source: Any, host: HostMap | None, spec: Any, placement: Placement, read_ahead: int
    ):
        self.source = source
        self.host = host
        self.spec = spec
        self.placement = placement
        self.read_ahead = read_ahead
        self._executor: HostExecutor | None = None

    def load(self, candidates: Iterator[Step], at: Position, drop: bool) -> Iterator[Loaded]:
        """Steps of good records from ``at`` on; ``candidates`` are the plan's from ``at``.

        The host stage's workers start once and are kept for the next iterations (epochs),
        as :class:`feedax._read.HostReader` keeps them.
        """
        requests = ((step, step.indices[step.valid], step.epoch) for step in candidates)  # type: ignore[index]
        if self.host is None:
            chunks: Iterator[Any] = ((s, read_checked(self.source, i)) for s, i, _ in requests)
        else:
            if self._executor is None:
                self._executor = HostExecutor(
                    self.host,
                    self.source,
                    self.spec,
                    read_ahead=self.read_ahead,
                    skip=True,
                    keep=True,
                )
                weakref.finalize(self, self._executor.close)
            chunks = self._executor.map(requests)
        yield from self._assemble(chunks, at, drop)

    def _assemble(self, chunks: Iterator[Any], at: Position, drop: bool) -> Iterator[Loaded]:
        size = self.placement.batch_size
        epoch, step, start, _ = at
        rows: list[_Row] = []
        bad: list[tuple[int, int]] = []
        began = time.perf_counter()
        for candidate, records in chunks:
            if candidate.epoch != epoch:  # the plan moved on: a new epoch starts afresh
                epoch, step, start, rows, bad = candidate.epoch, 0, 0, [], []
            positions = candidate.positions[candidate.valid]
            indices = candidate.indices[candidate.valid]
            for j, (position, index) in enumerate(zip(positions, indices, strict=True)):
                if records[OK][j]:
                    record = {k: v[j] for k, v in records.items() if k != OK}
                    own = None if candidate.epochs is None else int(candidate.epochs[j])
                    rows.append(_Row(int(position), int(index), own, record))
                else:
                    bad.append((int(position), int(index)))
            while len(rows) >= size:
                taken, rows = rows[:size], rows[size:]
                last = candidate.last and (not rows or (drop and len(rows) < size))
                end = candidate.end if last else taken[-1].position + 1
                skipped = tuple(i for q, i in bad if q < end)
                bad = [(q, i) for q, i in bad if q >= end]
                yield self._put(epoch, step, start, end, taken, skipped, last, began)
                start, step, began = end, step + 1, time.perf_counter()
                if last:
                    rows, bad = [], []
            if candidate.last and rows and not drop:
                skipped = tuple(i for _, i in bad)
                yield self._put(epoch, step, start, candidate.end, rows, skipped, True, began)
                rows, bad = [], []

    def _put(
        self,
        epoch: int,
        step: int,
        start: int,
        end: int,
        rows: list[_Row],
        skipped: tuple[int, ...],
        last: bool,
        began: float,
    ) -> Loaded:
        size = self.placement.batch_size
        valid = np.arange(size) < len(rows)
        rows = rows + [rows[0]] * (size - len(rows))
        records = {k: np.stack([r.record[k] for r in rows]) for k in rows[0].record}
        indices = np.array([r.index for r in rows], np.int64)
        epochs = None if rows[0].epoch is None else np.array([r.epoch for r in rows], np.int64)
        positions = np.array([r.position for r in rows], np.int64)
        planned = Step(
            epoch, step, start, end, indices, valid, epochs, last, positions, skipped, began
        )
        return self.placement.put((planned,), records, read=time.perf_counter() - began)


@dataclasses.dataclass(frozen=True)
class _Row:
    position: int
    index: int
    epoch: int | None
    record: dict[str, Any]


def record_skips(
    log: SkipLog, skipped: tuple[int, ...], *, epoch: int, n: int, limit: float, name: str
) -> None:
    """Counts ``skipped`` (in ``epoch``) in ``log``; raises once more than ``limit * n`` are bad."""
    if not skipped:
        return
    current = np.asarray(log[...])
    if current.shape != (2 + LISTED,):
        raise SourceError(
            f"{name}: the skip log has shape {current.shape}, expected {(2 + LISTED,)}; it was "
            "saved by an older feedax. Restore the state into a pipeline of the same version."
        )
    updated = current.copy() if int(current[0]) == epoch else empty_log()
    updated[0] = epoch
    count = int(updated[1])
    new = list(dict.fromkeys(skipped))
    listed = updated[2:]
    free = np.flatnonzero(listed < 0)[: len(new)]
    listed[free] = new[: len(free)]
    updated[1] = count + len(new)
    allowed = int(limit * n)
    if updated[1] > allowed:
        shown = listed[listed >= 0].tolist()
        raise SourceError(
            f"{name}: {int(updated[1])} of {n} records of epoch {epoch} are bad, more than "
            f"max_skip_fraction={limit} allows ({allowed}); the first: {shown[:10]}, the "
            f"latest: {new[:10]}. Fix the data, or raise max_skip_fraction if losing them "
            "is acceptable."
        )
    log.set_value(updated)
