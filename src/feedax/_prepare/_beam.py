"""The Beam transforms of ``feedax.prepare``: read a feedax source, map, write shards.

Record identity is the record's index in the input source, decided before Beam sees
the records; shards hold contiguous ranges of those indices and are written sorted,
so the output does not depend on the runner, its parallelism or its shard order.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems

from feedax._errors import HostStageError, SourceError
from feedax._host import HostContext, call_host_fn
from feedax._prepare._manifest import FAILED, FORMATS, MANIFEST, Field, Manifest, field_of, merge
from feedax._prepare._shard_files import DIGEST_BITS, write_shard

NAMESPACE = "feedax.prepare"
Record = dict[str, Any]


class ReadRecords(beam.PTransform):
    """``(index, record)`` of every record of a feedax source, read in chunks by Beam workers.

    The source travels to the workers pickled (a feedax source pickles as its paths). A
    record that does not read goes to the ``failed`` output as ``(index, message)``.

    Args:
      source: any feedax source with random access (``JsonlSource``, ``TextSource``,
        ``ParquetSource``, ``ImageFolderSource``, ``HFSource``, ``ArraySource``, ...).
      chunk: records read together.
    """

    def __init__(self, source: Any, chunk: int = 1024):
        super().__init__()
        if not hasattr(source, "read") or not hasattr(source, "__len__"):
            raise SourceError(
                f"ReadRecords: expected a feedax source with random access, got "
                f"{type(source).__name__}. Use fx.JsonlSource, fx.ParquetSource, ..."
            )
        self.source, self.chunk = source, int(chunk)

    def expand(self, root: Any) -> Any:
        n = len(self.source)
        ranges = [(lo, min(lo + self.chunk, n)) for lo in range(0, n, self.chunk)]
        return (
            root
            | "Ranges" >> beam.Create(ranges)
            | "Spread" >> beam.Reshuffle()
            | "Read" >> beam.ParDo(_Read(self.source)).with_outputs("failed", main="records")
        )


class _Read(beam.DoFn):
    def __init__(self, source: Any):
        self.source = source
        self.read = beam.metrics.Metrics.counter(NAMESPACE, "records_read")
        self.bad = beam.metrics.Metrics.counter(NAMESPACE, "records_failed")

    def process(self, bounds: tuple[int, int]) -> Iterator[Any]:
        lo, hi = bounds
        try:
            batch = self.source.read(np.arange(lo, hi))
            rows = [(i, {k: v[i - lo] for k, v in batch.items()}) for i in range(lo, hi)]
        except Exception:  # find the record(s) that do not read
            rows = []
            for i in range(lo, hi):
                try:
                    one = self.source.read(np.array([i]))
                    rows.append((i, {k: v[0] for k, v in one.items()}))
                except Exception as error:
                    self.bad.inc()
                    message = f"read: {type(error).__name__}: {error}"
                    yield beam.pvalue.TaggedOutput("failed", (i, message))
        self.read.inc(len(rows))
        yield from rows


class MapRecords(beam.PTransform):
    """Applies ``fn(record, ctx)`` (a host function, as for ``fx.HostMap``) to each record.

    ``ctx`` is a ``fx.HostContext`` with epoch 0, the record's index, ``training=False``
    and ``seed``: random work draws from ``ctx.rng()``, keyed per record, so the job is
    reproducible. A record whose function raises goes to the ``failed`` output as
    ``(index, message)`` and is counted in the ``records_failed`` Beam metric.
    """

    def __init__(
        self, fn: Callable[[Record, HostContext], Record], *, seed: int = 0, name: str = "input"
    ):
        super().__init__()
        if not callable(fn):
            raise SourceError(f"MapRecords: fn must be callable, got {type(fn).__name__}.")
        self.fn, self.seed, self.source_name = fn, int(seed), name

    def expand(self, records: Any) -> Any:
        return records | "Map" >> beam.ParDo(
            _Map(self.fn, self.seed, self.source_name)
        ).with_outputs("failed", main="records")


class _Map(beam.DoFn):
    def __init__(self, fn: Any, seed: int, source: str):
        self.fn, self.seed, self.source = fn, seed, source
        self.bad = beam.metrics.Metrics.counter(NAMESPACE, "records_failed")

    def process(self, item: tuple[int, Record]) -> Iterator[Any]:
        index, record = item
        ctx = HostContext(0, int(index), False, self.seed)
        try:
            out = call_host_fn(self.fn, record, ctx, source_name=self.source)
            if not isinstance(out, dict) or not out:
                raise HostStageError(
                    f"record index {index}: the function returned {type(out).__name__}; "
                    "expected a non-empty dict of field -> array."
                )
        except Exception as error:
            self.bad.inc()
            yield beam.pvalue.TaggedOutput("failed", (index, f"{type(error).__name__}: {error}"))
            return
        yield index, {k: _value(v) for k, v in out.items()}


def _value(value: Any) -> Any:
    if isinstance(value, bytes | str):
        return value
    return np.asarray(value)


class WriteShards(beam.PTransform):
    """Writes ``(index, record)`` pairs to ``num_shards`` files of contiguous index ranges.

    Shard ``k`` takes the input indices ``[k * n / num_shards, (k + 1) * n / num_shards)``,
    sorted; a shard left empty (all its records failed) writes no file. Returns one summary
    per written shard (its file, count, per-record lengths, schema and digest), which
    :class:`WriteManifest` turns into the manifest.
    """

    def __init__(self, output: str, *, n: int, num_shards: int, format: str = "array_record"):
        super().__init__()
        if format not in FORMATS:
            raise SourceError(f"WriteShards: format must be one of {FORMATS}, got {format!r}.")
        if not isinstance(num_shards, int) or num_shards < 1:
            raise SourceError(f"WriteShards: num_shards must be an int >= 1, got {num_shards!r}.")
        self.output, self.n, self.num_shards, self.format = output, n, num_shards, format

    def expand(self, records: Any) -> Any:
        shards, n = self.num_shards, max(self.n, 1)
        return (
            records
            | "Shard" >> beam.Map(lambda item: (int(item[0]) * shards // n, item))
            | "Group" >> beam.GroupByKey()
            | "Write" >> beam.Map(_write, self.output, shards, self.format)
        )


def _write(group: tuple[int, Iterable[Any]], output: str, shards: int, format: str) -> dict:
    shard, items = group
    ordered = sorted(items, key=lambda item: item[0])
    name = f"data-{shard:05d}-of-{shards:05d}.{format}"
    with tempfile.TemporaryDirectory(prefix="feedax-prepare-") as scratch:
        local = os.path.join(scratch, name)
        digest = write_shard(local, ordered, format)
        _copy(local, FileSystems.join(output, name))
    fields: dict[str, Field] = {}
    lengths: dict[str, list[int]] = {}
    for index, record in ordered:
        for field, value in record.items():
            seen = field_of(value)
            where = f" (record index {index})"
            fields[field] = merge(field, fields[field], seen, where) if field in fields else seen
            if seen.shape:
                lengths.setdefault(field, []).append(len(value))
    return {
        "shard": shard,
        "file": name,
        "count": len(ordered),
        "fields": {k: (v.dtype, list(v.shape)) for k, v in fields.items()},
        "lengths": lengths,
        "digest": str(digest),  # a 128-bit int: JSON and coders keep strings exactly
    }


def _copy(local: str, target: str) -> None:
    """A local file to ``target`` (a path or a URL Beam's file systems know: gs://, s3://)."""
    with open(local, "rb") as src, FileSystems.create(target) as dst:
        while block := src.read(1 << 22):
            dst.write(block)


class WriteManifest(beam.PTransform):
    """Writes ``failed.jsonl``, the lengths files and, last, ``manifest.json``.

    ``manifest.json`` exists only once everything else is written, so a folder that has
    one holds a complete corpus.
    """

    def __init__(self, output: str, *, format: str, source: str, records_in: int):
        super().__init__()
        self.output, self.format, self.source, self.records_in = output, format, source, records_in

    def expand(self, parts: dict[str, Any]) -> Any:
        summaries = beam.pvalue.AsList(parts["shards"])
        failed = beam.pvalue.AsList(parts["failed"])
        return (
            parts["shards"].pipeline
            | "One" >> beam.Create([None])
            | "Manifest" >> beam.Map(self._write, summaries, failed)
        )

    def _write(self, _: None, summaries: list[dict], failed: list[tuple[int, str]]) -> str:
        summaries = sorted(summaries, key=lambda s: s["shard"])
        fields: dict[str, Field] = {}
        for summary in summaries:
            for field, (dtype, shape) in summary["fields"].items():
                seen = Field(dtype, tuple(shape))
                fields[field] = merge(field, fields[field], seen) if field in fields else seen
        lengths = {}
        for field, spec in fields.items():
            if spec.ragged:
                values = np.concatenate(
                    [np.asarray(s["lengths"][field], np.int64) for s in summaries]
                )
                lengths[field] = f"lengths-{field}.npy"
                with FileSystems.create(FileSystems.join(self.output, lengths[field])) as f:
                    np.save(f, values)
        with FileSystems.create(FileSystems.join(self.output, FAILED)) as f:
            for index, message in sorted(failed):
                f.write((json.dumps({"index": int(index), "error": message}) + "\n").encode())
        total = sum(int(s["digest"]) for s in summaries) % (1 << DIGEST_BITS)
        manifest = Manifest(
            format=self.format,
            files=tuple(s["file"] for s in summaries),
            counts=tuple(int(s["count"]) for s in summaries),
            fields=fields,
            fingerprint=f"{total:032x}",
            source=self.source,
            records_in=self.records_in,
            failed=len(failed),
            lengths=lengths,
        )
        with FileSystems.create(FileSystems.join(self.output, MANIFEST)) as f:
            f.write(manifest.to_json().encode())
        return manifest.fingerprint
