"""ShardedStream: many sequential files (shards) read in lanes, so each process reads its own."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from feedax._errors import SourceError
from feedax._source import Batch
from feedax._sources._common import LazyHandles, StoreSource, spec_of, starts_of

Record = Mapping[str, Any]


class ShardedStream(StoreSource["_Files"]):
    """Records of many files that can only be read front to back, in ``lanes``.

    The files (shards: compressed JSONL, tar archives, TFRecords...) are dealt to
    ``lanes`` lanes (each file to the lane with the fewest records so far, longest file
    first: a function of the counts alone). Lane ``l`` holds the records of its files in
    turn, and in every batch of ``batch_size`` rows it fills the rows
    ``[l * batch_size / lanes, (l + 1) * batch_size / lanes)``. Record indices follow that
    layout, so with ``shuffle=False`` a batch's rows of one lane are consecutive records of
    that lane's files, read forward: a process that holds some rows of every batch opens
    only its lanes' files. With ``lanes`` a multiple of the process count, every process
    reads only its share; any count works, and the global stream, the cursor and its
    resume on another number of processes are the same. Once the shortest lane is used
    up, the rest of every lane follows in lane order (the epoch's last steps read across
    lanes).

    Reading is sequential: each file keeps an open reader at its next record, per
    process; a read behind it reopens the file (``open_file(file, start)`` may skip
    ahead itself; otherwise records are read and dropped). So ``shuffle`` must stay False:
    shuffle when preparing the shards (``feedax.prepare``), and shuffle the files' order
    or use several lanes for variety.

    Args:
      files: the shards, in order (paths or any picklable names ``open_file`` takes).
      open_file: ``open_file(file, start)`` returns an iterable of the file's records
        (dicts of arrays) from record ``start`` on (it may ignore ``start`` only if it
        returns the file from its first record when ``start`` is 0 and never sees
        another start: give ``skips=False`` then).
      counts: the records of each file (from the shards' metadata). Without them each
        file is read once at build to count.
      lanes: how many lanes; must divide ``batch_size``.
      batch_size: the pipeline's batch size (the lanes' layout depends on it; a pipeline
        with another batch size raises).
      skips: whether ``open_file`` honours ``start``; if False feedax drops the records
        before it.
      name: a name used in error messages.

    Example:
      >>> import numpy as np, feedax as fx
      >>> def shard(file, start):
      ...     for i in range(start, 6):
      ...         yield {"x": np.int32(file * 100 + i)}
      >>> stream = fx.ShardedStream(range(4), shard, counts=[6] * 4, lanes=2, batch_size=4)
      >>> pipe = fx.Pipeline(stream, batch_size=4)
      >>> np.asarray(next(pipe.epoch())["x"]).tolist()  # lanes {0, 2} and {1, 3}
      [0, 1, 100, 101]
    """

    def __init__(
        self,
        files: Iterable[Any],
        open_file: Callable[[Any, int], Iterable[Record]],
        *,
        counts: Sequence[int] | None = None,
        lanes: int,
        batch_size: int,
        skips: bool = True,
        name: str = "ShardedStream",
    ):
        self.name = name
        files = list(files)
        if not files or not callable(open_file):
            raise SourceError(
                f"{name}: needs >= 1 file and a callable open_file(file, start), got "
                f"{len(files)} files and {type(open_file).__name__}."
            )
        if not isinstance(batch_size, int) or batch_size < 1:
            raise SourceError(f"{name}: batch_size must be an int >= 1, got {batch_size!r}.")
        if not isinstance(lanes, int) or lanes < 1 or batch_size % lanes:
            raise SourceError(
                f"{name}: lanes must be an int >= 1 dividing batch_size={batch_size}, got "
                f"{lanes!r}. Use a divisor of the batch that is a multiple of your process count."
            )
        if counts is None:
            counts = [sum(1 for _ in open_file(f, 0)) for f in files]
        counts = [int(c) for c in counts]
        if len(counts) != len(files) or min(counts) < 0:
            raise SourceError(
                f"{name}: counts must give one record count >= 0 per file ({len(files)}), got "
                f"{counts!r}."
            )
        self._store = _Files(
            files, open_file, skips, name, _Layout(counts, lanes, batch_size // lanes)
        )
        self.batch_size = batch_size
        first = next(i for i, c in enumerate(counts) if c) if sum(counts) else None
        if first is None:
            raise SourceError(f"{name}: the files hold 0 records. Give files with records.")
        record = next(iter(open_file(files[first], 0)))
        self._store.spec = {k: spec_of(np.asarray(v)) for k, v in record.items()}

    @property
    def _layout(self) -> _Layout:
        return self._store.layout

    def locate(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(file, position in the file)`` of each record index."""
        return self._layout.locate(np.asarray(indices, np.int64))

    def read(self, indices: np.ndarray) -> Batch:
        """The records at ``indices``, read forward in each file."""
        indices = self._checked(indices)
        files, positions = self.locate(indices)
        rows: list[Record] = [{}] * len(indices)
        for file in np.unique(files).tolist():
            at = np.flatnonzero(files == file)
            order = at[np.argsort(positions[at], kind="stable")]
            for k, record in zip(order, self._store.records(file, positions[order]), strict=True):
                rows[k] = record
        out: Batch = {}
        for field, spec in self._store.spec.items():
            values = []
            for k, record in enumerate(rows):
                if field not in record or np.shape(record[field]) != tuple(spec.shape):
                    raise SourceError(
                        f"{self.name}: record index {int(indices[k])} (file "
                        f"{self._store.files[int(files[k])]!r}) has no field {field!r} of shape "
                        f"{tuple(spec.shape)}; the first record had it. Make the records alike."
                    )
                values.append(record[field])
            out[field] = np.asarray(values, dtype=spec.dtype)
        return out


class _Layout:
    """Record index <-> (file, position): files dealt to lanes, lanes laid out in batches."""

    def __init__(self, counts: list[int], lanes: int, per: int):
        held = [0] * lanes
        members: list[list[int]] = [[] for _ in range(lanes)]
        for f in sorted(range(len(counts)), key=lambda f: (-counts[f], f)):  # longest first
            lane = min(range(lanes), key=lambda ln: (held[ln], ln))
            members[lane].append(f)
            held[lane] += counts[f]
        self.files = [np.array(sorted(m), np.int64) for m in members]
        self.starts = [starts_of([counts[f] for f in m]) for m in self.files]
        self.lengths = np.array(held, np.int64)
        self.lanes, self.per, self.n = lanes, per, int(sum(counts))
        self.steps = int(self.lengths.min()) // per  # steps every lane fills
        self.head = self.steps * per * lanes
        rest = self.lengths - self.steps * per
        self.tail = starts_of(rest)  # where each lane's rest starts after the head

    def locate(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        batch = self.per * self.lanes
        step, row = indices // batch, indices % batch
        lane, within = row // self.per, step * self.per + row % self.per
        late = indices >= self.head
        if late.any():
            q = indices[late] - self.head
            tail_lane = np.searchsorted(self.tail, q, side="right") - 1
            lane[late] = tail_lane
            within[late] = self.steps * self.per + q - self.tail[tail_lane]
        files, positions = np.empty_like(indices), np.empty_like(indices)
        for ln in np.unique(lane).tolist():
            at = lane == ln
            k = np.searchsorted(self.starts[ln], within[at], side="right") - 1
            files[at] = self.files[ln][k]
            positions[at] = within[at] - self.starts[ln][k]
        return files, positions


class _Files(LazyHandles):
    """The files, their layout and, per process, each file's open reader at its next record."""

    _transient = ("lock", "readers")

    def __init__(self, files: list[Any], open_file: Any, skips: bool, name: str, layout: _Layout):
        self.files, self.open_file, self.skips, self.name = files, open_file, skips, name
        self.layout = layout
        self.spec: dict[str, Any] = {}
        super().__init__()

    def _reset(self) -> None:
        super()._reset()
        self.readers: dict[int, tuple[int, Iterator[Record]]] = {}

    def __len__(self) -> int:
        return self.layout.n

    def records(self, file: int, positions: np.ndarray) -> Iterator[Record]:
        """The file's records at ``positions`` (ascending), from its reader or a fresh one."""
        with self.lock:
            held = self.readers.pop(file, None)
        at, reader = held if held is not None else (-1, None)
        for position in positions.tolist():
            if reader is None or position < at:
                start = position if self.skips else 0
                reader, at = iter(self.open_file(self.files[file], start)), start
            if position > at:
                next(itertools.islice(reader, position - at - 1, None), None)  # drop the gap
                at = position
            record = next(reader, None)
            if record is None:
                raise SourceError(
                    f"{self.name}: file {self.files[file]!r} ended before its record "
                    f"{position}: it holds fewer records than counts says. Fix the counts."
                )
            at += 1
            yield record
        if reader is not None:
            with self.lock:
                self.readers[file] = (at, reader)
