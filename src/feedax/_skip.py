"""The skip policy: bad records are replaced by the next good ones in the order."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np
from flax import nnx

from feedax._errors import SourceError
from feedax._workers import OK, HostExecutor, read_checked


class SkipLog(nnx.Variable):
    """Indices of the records skipped as bad, ``-1`` in unused slots (fixed capacity).

    Its capacity is the most records the policy may skip, so the state keeps one shape
    for a checkpoint; past it the pipeline raises.
    """


@dataclasses.dataclass(frozen=True)
class Planned:
    """A batch assembled under the skip policy.

    Attributes:
      epoch: its epoch.
      start: the order position of its first record.
      end: the order position after its last record (skipped records before it included).
      skipped: indices of the bad records between ``start`` and ``end``.
      last: this is the epoch's last batch (streams, whose length is unknown).
    """

    epoch: int
    start: int
    end: int
    skipped: tuple[int, ...]
    last: bool = False


def skipping_stream(
    feed: Any, epoch: int, start: int
) -> Iterator[tuple[Planned, dict[str, np.ndarray]]]:
    """Host batches of good records only, read in order from ``(epoch, start)``, endlessly.

    Records are read in chunks of a batch; a record that fails (reading, the host stage,
    a wrong shape) is left out and the batch is filled with the next good records, so
    batches stay full and are the same in every run. ``feed`` is the pipeline's Feed.
    """
    n, size = len(feed.source), feed.batch_size
    executor = None
    if feed.host is not None:
        executor = HostExecutor(
            feed.host, feed.source, feed.spec, read_ahead=feed.read_ahead, skip=True
        )
    try:
        while True:
            requests = _requests(feed, epoch, start)
            if executor is None:
                chunks: Iterator[Any] = (
                    (key, read_checked(feed.source, i)) for key, i, _ in requests
                )
            else:
                chunks = executor.map(requests)
            rows: list[tuple[int, int, dict[str, Any]]] = []
            bad: list[tuple[int, int]] = []
            first = start
            for (p, indices, epochs), records in chunks:
                for j, index in enumerate(indices):
                    if records[OK][j]:
                        record = {k: v[j] for k, v in records.items() if k != OK}
                        if epochs is not None:
                            record["__epoch"] = epochs[j]
                        rows.append((p + j, int(index), record))
                    else:
                        bad.append((p + j, int(index)))
                while len(rows) >= size:
                    taken, rows = rows[:size], rows[size:]
                    end = taken[-1][0] + 1
                    skipped = tuple(i for q, i in bad if q < end)
                    bad = [(q, i) for q, i in bad if q >= end]
                    yield Planned(epoch, first, end, skipped), _stack(taken, size)
                    first = end
            if rows and not feed.drop_remainder:
                yield Planned(epoch, first, n, tuple(i for _, i in bad)), _stack(rows, size)
            epoch, start = epoch + 1, 0
    finally:
        if executor is not None:
            executor.close()


def _requests(feed: Any, epoch: int, start: int) -> Iterator[tuple[Any, np.ndarray, int]]:
    """Chunks of one batch of order positions, from ``start`` to the end of the epoch."""
    n, size = len(feed.source), feed.batch_size
    for p in range(start, n, size):
        positions = np.arange(p, min(p + size, n))
        indices, epochs = feed.source.locate(
            epoch, positions, seed=feed.seed, shuffle=feed.shuffle, delivered=n
        )
        yield (p, indices, epochs), indices, epoch


def _stack(rows: list[tuple[int, int, dict[str, Any]]], size: int) -> dict[str, np.ndarray]:
    """The rows as a batch of ``size``, padded (masked invalid) with copies of the first."""
    valid = np.arange(size) < len(rows)
    rows = rows + [rows[0]] * (size - len(rows))
    batch = {k: np.stack([r[2][k] for r in rows]) for k in rows[0][2]}
    batch["__index"] = np.array([r[1] for r in rows], np.int32)
    batch["__valid"] = valid
    return batch


def record_skips(
    log: SkipLog, skipped: tuple[int, ...], *, n: int, limit: float, name: str
) -> None:
    """Adds ``skipped`` to ``log`` (once each); raises once more than ``limit * n`` are bad."""
    if not skipped:
        return
    current = np.asarray(log[...])
    known = set(current[current >= 0].tolist())
    new = [i for i in dict.fromkeys(skipped) if i not in known]
    if not new:
        return
    total = len(known) + len(new)
    if total > len(current):
        raise SourceError(
            f"{name}: {total} of {n} records are bad, more than max_skip_fraction={limit} "
            f"allows ({len(current)}); the latest: {new[:10]}. Fix the data, or raise "
            "max_skip_fraction if losing them is acceptable."
        )
    updated = current.copy()
    updated[len(known) : total] = new
    log.set_value(updated)
