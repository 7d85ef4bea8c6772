"""Variable-length fields: a length index over any source of them."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Sequence
from typing import Any

import numpy as np


def length_index(
    source: Any, fields: str | Sequence[str], *, chunk: int = 4096, progress: bool = True
) -> np.ndarray:
    """The length of each of ``fields`` in every record of ``source``, computed once and cached.

    Returns ``(len(source),)`` for one field's name, ``(len(source), len(fields))`` for a
    sequence of names. A source's ``stored_lengths`` (field -> lengths, e.g. written
    beside prepared data) are used as they are. Otherwise the records are read in chunks
    (with a progress bar). A source of files
    caches the index beside its first file, keyed by the files' names, sizes and times, so
    later pipelines over the same data read one small file per field.
    """
    from tqdm.auto import tqdm

    names = [fields] if isinstance(fields, str) else list(fields)
    n = len(source)
    stored = getattr(source, "stored_lengths", None) or {}
    if all(field in stored for field in names):  # a lengths column written with the data
        table = np.stack([np.asarray(stored[f], np.int64) for f in names], axis=1)
        return table[:, 0] if isinstance(fields, str) else table
    caches = [_cache_path(source, field) for field in names]
    cached: list[Any] = [np.load(c) if c and os.path.isfile(c) else None for c in caches]
    if not all(c is not None and len(c) == n for c in cached):
        lengths = np.empty((n, len(names)), np.int64)
        desc = f"indexing {source.name} lengths"
        with tqdm(total=n, desc=desc, disable=not progress, delay=1.0) as bar:
            for lo in range(0, n, chunk):
                hi = min(lo + chunk, n)
                values = source.read(np.arange(lo, hi))
                for f, field in enumerate(names):
                    lengths[lo:hi, f] = [len(v) for v in values[field]]
                bar.update(hi - lo)
        for f, cache in enumerate(caches):
            if cache is not None:
                with contextlib.suppress(OSError):  # a read-only directory: kept in memory
                    np.save(cache, lengths[:, f])
        cached = list(lengths.T)
    table = np.stack(cached, axis=1).astype(np.int64)
    return table[:, 0] if isinstance(fields, str) else table


def _cache_path(source: Any, field: str) -> str | None:
    files = getattr(source, "files", None)
    if not files or any("://" in f for f in files):  # remote: indexed in memory, each run
        return None
    stamp = repr([(f, os.path.getsize(f), os.path.getmtime(f)) for f in files])
    key = hashlib.blake2b(f"{stamp}{field}".encode(), digest_size=8).hexdigest()
    return f"{files[0]}.feedax-lengths-{field}-{key}.npy"
