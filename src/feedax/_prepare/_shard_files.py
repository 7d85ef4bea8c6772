"""One shard file of a prepared corpus, ArrayRecord or Parquet, and its content digest."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from feedax._errors import SourceError
from feedax._sources._common import require
from feedax._sources.codec import encode_record

DIGEST_BITS = 128


def write_shard(path: str, items: Sequence[tuple[int, dict[str, Any]]], format: str) -> int:
    """Writes the records of ``(index, record)`` items in order; returns their digest.

    The digest is the sum (mod 2**128) of each record's blake2b of its index and msgpack
    encoding: shards' digests add up to the corpus's whatever the shard count or file
    format, so the fingerprint names the content and its order.
    """
    records = [record for _, record in items]
    blobs = [encode_record(r) for r in records]
    digest = 0
    for (index, _), blob in zip(items, blobs, strict=True):
        one = hashlib.blake2b(int(index).to_bytes(8, "little") + blob, digest_size=16)
        digest += int.from_bytes(one.digest(), "little")
    if format == "array_record":
        (module,) = require(
            ["array_record.python.array_record_module"], extra="beam", user="feedax.prepare"
        )
        writer = module.ArrayRecordWriter(path, "group_size:1")
        try:
            for blob in blobs:
                writer.write(blob)
        finally:
            writer.close()
    else:
        _write_parquet(path, records)
    return digest % (1 << DIGEST_BITS)


def _write_parquet(path: str, records: Sequence[dict[str, Any]]) -> None:
    pa, pq = require(["pyarrow", "pyarrow.parquet"], extra="beam", user="feedax.prepare")
    columns: dict[str, list[Any]] = {}
    for record in records:
        for field, value in record.items():
            columns.setdefault(field, []).append(value)
    table = pa.table({field: _column(pa, field, values) for field, values in columns.items()})
    pq.write_table(table, path, row_group_size=1024)


def _column(pa: Any, field: str, values: list[Any]) -> Any:
    """An Arrow column of one field, keeping its dtype (arrays as nested lists)."""
    first = values[0]
    if isinstance(first, bytes | str):
        return pa.array(values)
    array = np.asarray(first)
    if array.dtype == object:
        raise SourceError(
            f"feedax.prepare: field {field!r} holds Python objects; Parquet output takes "
            "numbers, arrays, str and bytes. Return arrays from the function."
        )
    kind = pa.from_numpy_dtype(array.dtype)
    for _ in range(array.ndim):
        kind = pa.list_(kind)
    return pa.array([np.asarray(v).tolist() for v in values], type=kind)
