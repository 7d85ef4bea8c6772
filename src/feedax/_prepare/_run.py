"""``feedax.prepare.run``: read, map and write a corpus as one Beam pipeline."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from feedax._errors import SourceError
from feedax._prepare._beam import MapRecords, ReadRecords, WriteManifest, WriteShards
from feedax._prepare._manifest import FORMATS, Manifest


def run(
    source: Any,
    fn: Callable[..., dict[str, Any]],
    output: str | os.PathLike[str],
    *,
    num_shards: int = 8,
    format: str = "array_record",
    seed: int = 0,
    chunk: int = 1024,
    options: PipelineOptions | Sequence[str] | None = None,
) -> Manifest:
    """Prepares a corpus: every record of ``source`` through ``fn``, written as shards.

    Runs one Beam pipeline: :class:`ReadRecords` then :class:`MapRecords` then
    :class:`WriteShards` and :class:`WriteManifest`. The output folder then holds the
    shard files, ``manifest.json`` (files, counts, schema, fingerprint), the ragged
    fields' lengths and ``failed.jsonl`` (each record ``fn`` or the read failed on, with
    the error; also counted in the ``records_failed`` Beam metric). Read it back with
    :func:`load`.

    Args:
      source: the input, any feedax source with random access.
      fn: ``fn(record, ctx) -> dict`` of arrays (a host function, e.g. ``fx.DecodeImage``).
      output: the output folder (a local path, or a URL of a file system Beam knows).
      num_shards: shard files (contiguous ranges of the input's indices).
      format: ``"array_record"`` (random access, any shapes) or ``"parquet"`` (numbers,
        str, bytes, and arrays as nested lists).
      seed: ``ctx.seed`` for random work in ``fn`` (draw from ``ctx.rng()``).
      chunk: records read together by a worker.
      options: Beam pipeline options, or their command-line form, e.g.
        ``["--runner=DataflowRunner", "--project=...", "--temp_location=gs://..."]``.
        Default: the DirectRunner, in this process.

    Returns:
      The :class:`Manifest` written.
    """
    if format not in FORMATS:
        raise SourceError(f"feedax.prepare.run: format must be one of {FORMATS}, got {format!r}.")
    out = os.fspath(output)
    if "://" not in out:
        out = os.path.abspath(out)
        os.makedirs(out, exist_ok=True)
    if options is None:
        options = PipelineOptions(flags=[], runner="DirectRunner")
    elif not isinstance(options, PipelineOptions):
        options = PipelineOptions(list(options))
    n = len(source)
    name = getattr(source, "name", type(source).__name__)
    location = getattr(source, "location", None)
    described = f"{name} ({location})" if location else name
    with beam.Pipeline(options=options) as pipeline:
        read = pipeline | "ReadRecords" >> ReadRecords(source, chunk)
        mapped = read.records | "MapRecords" >> MapRecords(fn, seed=seed, name=name)
        shards = mapped.records | "WriteShards" >> WriteShards(
            out, n=n, num_shards=num_shards, format=format
        )
        failed = (read.failed, mapped.failed) | "Failed" >> beam.Flatten()
        _ = {"shards": shards, "failed": failed} | "WriteManifest" >> WriteManifest(
            out, format=format, source=described, records_in=n
        )
    if "://" in out:
        return _remote_manifest(out)
    return Manifest.read(out)


def _remote_manifest(out: str) -> Manifest:
    from apache_beam.io.filesystems import FileSystems

    from feedax._prepare._manifest import MANIFEST

    with FileSystems.open(FileSystems.join(out, MANIFEST)) as f:
        return Manifest.from_json(f.read().decode())
