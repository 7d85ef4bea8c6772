"""Streaming sources: records that can only be iterated, still numbered and resumable."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import jax
import numpy as np
from flax import nnx

from feedax._errors import SourceError
from feedax._order import EpochOrder
from feedax._step import Loaded, Position, Step

Record = Mapping[str, Any]


class StreamSource(nnx.Module):
    """A source that can only be iterated: a generator of files, an IterableDataset, ...

    Records are numbered by their position in the stream (their identity, for
    augmentation keys and sharding). One epoch is one pass; each epoch calls ``open``
    again. A pipeline over a stream can shuffle within a bounded window (see
    ``Pipeline(shuffle_window=...)``) and resumes at the exact record: with ``seek`` it
    starts the stream there directly; without it, it re-reads the stream from the
    beginning and discards the records before the resume point, which costs reading them.

    Args:
      open: returns an iterable of records (dicts of arrays, or of bytes/str for a host
        stage to decode) from the first record.
      seek: optional ``seek(index)`` returning the iterable from record ``index`` on.
      name: a name used in error messages.

    Example:
      >>> import numpy as np, feedax as fx
      >>> def records():
      ...     for i in range(10):
      ...         yield {"x": np.float32(i)}
      >>> pipe = fx.Pipeline(fx.StreamSource(records), batch_size=4)
      >>> [np.asarray(b["x"]).tolist() for b in pipe.epoch()]
      [[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0]]
    """

    def __init__(
        self,
        open: Callable[[], Iterable[Record]],
        *,
        seek: Callable[[int], Iterable[Record]] | None = None,
        name: str = "StreamSource",
    ):
        if not callable(open) or (seek is not None and not callable(seek)):
            raise SourceError(
                f"{name}: open (and seek, if given) must be callables returning iterables of "
                "records, e.g. StreamSource(lambda: my_generator())."
            )
        self.name = name
        self.open = open
        self.seek = seek
        first = next(iter(open()), None)
        if first is None:
            raise SourceError(
                f"{name}: the stream is empty. Give a stream with at least one record."
            )
        self._first = _Record(first, name, 0)

    @property
    def element_spec(self) -> dict[str, jax.ShapeDtypeStruct]:
        """Shapes and dtypes of the first record's fields (every record must match)."""
        return {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in self._first.fields.items()}

    def first_record(self) -> dict[str, np.ndarray]:
        """Record 0 (read when the source was built)."""
        return dict(self._first.fields)

    def records(self, start: int) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        """``(index, record)`` pairs from record ``start`` to the end of the stream."""
        if self.seek is not None:
            stream: Iterable[Record] = self.seek(start)
        else:
            stream = itertools.islice(self.open(), start, None)  # reads and drops the head
        for index, record in enumerate(stream, start):
            yield index, _Record(record, self.name, index).fields


class _Record:
    """One record as NumPy values, with an error naming it when it is not a mapping."""

    def __init__(self, record: Any, source: str, index: int):
        if not isinstance(record, Mapping):
            raise SourceError(
                f"{source}: record index {index} is a {type(record).__name__}; expected a dict "
                "of field -> array. Make the stream yield dicts."
            )
        self.fields = {k: np.asarray(v) for k, v in record.items()}


class WindowStore:
    """The records of the windows being processed, readable by index like a source.

    Lets the host stage's thread workers read streamed records with ``read(indices)``.
    """

    def __init__(self, name: str):
        self.name = name
        self.rows: dict[int, dict[str, np.ndarray]] = {}

    def read(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """The stored records at ``indices``, stacked per field."""
        rows = [self.rows[int(i)] for i in indices]
        return {k: _stack([r[k] for r in rows]) for k in rows[0]}


def _stack(values: list[np.ndarray]) -> np.ndarray:
    if values[0].dtype == np.dtype(object) or values[0].dtype.kind in "SUV":
        out = np.empty(len(values), dtype=object)
        out[:] = [v.item() if v.ndim == 0 else v for v in values]
        return out
    return np.stack(values)


def window_order(
    source: StreamSource, epoch: int, start: int, *, window: int, seed: int
) -> Iterator[tuple[int, int, dict[str, np.ndarray], bool]]:
    """``(position, index, record, last)`` from stream position ``start`` on, for one epoch.

    With ``window > 1`` the stream is cut into windows of ``window`` records, each emitted
    in a keyed permutation of (seed, epoch, window number): a bounded shuffle buffer
    whose whole state is the cursor. ``last`` marks the epoch's final record. At most two
    windows are held in memory (the next one tells whether this one is the last).
    """
    size = max(window, 1)
    position = (start // size) * size
    records = source.records(position)
    pending = list(itertools.islice(records, size))
    while pending:
        following = list(itertools.islice(records, size))
        # Window number and epoch key the permutation; 1_000_003 keeps them apart.
        order = EpochOrder(
            len(pending), seed=seed, epoch=epoch * 1_000_003 + position // size, shuffle=size > 1
        )
        for offset, pick in enumerate(order(np.arange(len(pending)))):
            if position + offset >= start:
                index, record = pending[pick]
                last = not following and offset == len(pending) - 1
                yield position + offset, index, record, last
        position += len(pending)
        pending = following


class StreamReader:
    """Steps of a stream: one pass per epoch, shuffled within windows, this process's rows.

    A stream's plan is known only as it is read (its length, the last window), so this
    reader plans and reads together. Every process reads the stream and keeps its own
    rows of each global batch.
    """

    def __init__(
        self,
        source: StreamSource,
        host: Any,
        spec: Any,
        placement: Any,
        *,
        window: int,
        seed: int,
        read_ahead: int,
    ):
        self.source = source
        self.host = host
        self.spec = spec
        self.placement = placement
        self.window = window
        self.seed = seed
        self.read_ahead = read_ahead

    def load(self, at: Position, drop: bool) -> Iterator[Loaded]:
        """The loaded steps from ``at`` on, endlessly (each epoch one pass)."""
        from feedax._workers import HostExecutor

        store = WindowStore(self.source.name)
        lo, hi = self.placement.rows
        results: Iterator[tuple[Step, dict[str, np.ndarray]]]
        if self.host is None:
            results = ((s, store.read(i)) for s, i, _ in self._requests(at, drop, store))
        else:
            executor = HostExecutor(self.host, store, self.spec, read_ahead=self.read_ahead)
            results = executor.map(self._requests(at, drop, store))
        for step, records in results:
            assert step.indices is not None
            for i in step.indices[lo:hi]:
                store.rows.pop(int(i), None)
            yield self.placement.put((step,), records, read=time.perf_counter() - step.began)

    def _requests(
        self, at: Position, drop: bool, store: WindowStore
    ) -> Iterator[tuple[Step, np.ndarray, int]]:
        size = self.placement.batch_size
        lo, hi = self.placement.rows
        epoch, step, start, _ = at
        while True:
            batch: list[tuple[int, int, dict[str, np.ndarray]]] = []
            first, began = start, time.perf_counter()
            for position, index, record, last in window_order(
                self.source, epoch, start, window=self.window, seed=self.seed
            ):
                if self.host is None:
                    _check(record, self.spec, self.source.name, index)
                batch.append((position, index, record))
                if len(batch) < size and not last:
                    continue
                if len(batch) < size and drop:
                    break
                valid = np.arange(size) < len(batch)
                batch += [batch[0]] * (size - len(batch))
                for _, i, r in batch[lo:hi]:
                    store.rows[i] = r
                indices = np.array([i for _, i, _ in batch], np.int64)
                positions = np.array([p for p, _, _ in batch], np.int64)
                planned = Step(
                    epoch,
                    step,
                    first,
                    position + 1,
                    indices,
                    valid,
                    None,
                    last,
                    positions,
                    began=began,
                )
                yield planned, indices[lo:hi], epoch
                batch, first, step, began = [], position + 1, step + 1, time.perf_counter()
            epoch, step, start = epoch + 1, 0, 0


def _check(record: dict[str, np.ndarray], spec: Any, source: str, index: int) -> None:
    """Raises if a streamed record does not match the first record's fields and shapes."""
    got = {k: (v.shape, v.dtype) for k, v in record.items()}
    want = {k: (s.shape, s.dtype) for k, s in spec.items()}
    if got != want:
        raise SourceError(
            f"{source}: record index {index} has fields {got}, but the first record had "
            f"{want}. Batches need fixed shapes: make every record alike, or decode to one "
            "shape in a host stage."
        )
