"""Variable-length fields: their spec, Arrow list columns as arrays, and a length index."""

from __future__ import annotations

import contextlib
import hashlib
import os
from typing import Any

import numpy as np


class Ragged:
    """The spec of a variable-length field: a leading axis of any length, then ``shape``.

    It stands in a source's ``element_spec`` for such fields; a pipeline packs them
    (``Pipeline(pack=fx.Pack(...))``) into fixed-length rows.

    Attributes:
      dtype: the values' dtype.
      shape: the shape of each value after the variable axis (``()`` for tokens).
    """

    def __init__(self, dtype: Any, shape: tuple[int, ...] = ()):
        self.dtype = np.dtype(dtype)
        self.shape = tuple(shape)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ragged) and (self.dtype, self.shape) == (other.dtype, other.shape)

    def __hash__(self) -> int:
        return hash((self.dtype, self.shape))

    def __repr__(self) -> str:
        return f"Ragged({self.dtype}, (None, {', '.join(map(str, self.shape))}))"


def length_index(
    source: Any, field: str, *, chunk: int = 4096, progress: bool = True
) -> np.ndarray:
    """The length of ``field`` in every record of ``source``, computed once and cached.

    Read in chunks of records (with a progress bar). A source of files caches the index
    beside its first file, keyed by the files' names, sizes and times, so later pipelines
    over the same data read one small file.
    """
    from tqdm.auto import tqdm

    cache = _cache_path(source, field)
    if cache is not None and os.path.isfile(cache):
        lengths = np.load(cache)
        if len(lengths) == len(source):
            return lengths
    n = len(source)
    lengths = np.empty(n, np.int64)
    with tqdm(total=n, desc=f"indexing {source.name} lengths", disable=not progress) as bar:
        for lo in range(0, n, chunk):
            hi = min(lo + chunk, n)
            values = source.read(np.arange(lo, hi))[field]
            lengths[lo:hi] = [len(v) for v in values]
            bar.update(hi - lo)
    if cache is not None:
        with contextlib.suppress(OSError):  # a read-only directory: kept in memory only
            np.save(cache, lengths)
    return lengths


def _cache_path(source: Any, field: str) -> str | None:
    files = getattr(source, "files", None)
    if not files:
        return None
    stamp = repr([(f, os.path.getsize(f), os.path.getmtime(f)) for f in files])
    key = hashlib.blake2b(f"{stamp}{field}".encode(), digest_size=8).hexdigest()
    return f"{files[0]}.feedax-lengths-{field}-{key}.npy"
