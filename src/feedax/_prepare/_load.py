"""Reading a prepared corpus back: the source its manifest describes (no Beam needed)."""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np

from feedax._prepare._manifest import Manifest
from feedax._ragged import Ragged


def load(folder: str | os.PathLike[str], *, name: str | None = None) -> Any:
    """The source of a folder written by ``feedax.prepare.run``, exactly as prepared.

    An ``ArrayRecordSource`` (or ``ParquetSource``) over the shard files in index order,
    with the record counts, the schema and the ragged fields' lengths from the manifest:
    nothing is opened to count and packing plans from the stored lengths.

    Args:
      folder: the prepared folder (``manifest.json`` and the shards).
      name: the source's name in messages (default: the folder's name).
    """
    from feedax._sources.array_record import ArrayRecordSource
    from feedax._sources.parquet import ParquetSource

    root = os.fspath(folder)
    manifest = Manifest.read(root)
    files = [os.path.join(root, f) for f in manifest.files]
    name = name or os.path.basename(os.path.normpath(root))
    spec: dict[str, Any] = {}
    for field, kind in manifest.fields.items():
        if kind.ragged:
            spec[field] = Ragged(np.dtype(kind.dtype), tuple(kind.shape[1:]))  # type: ignore[arg-type]
        elif kind.dtype != "object":
            spec[field] = jax.ShapeDtypeStruct(tuple(kind.shape), np.dtype(kind.dtype))
        else:
            spec[field] = jax.ShapeDtypeStruct((), np.dtype(object))
    if manifest.format == "parquet":
        return ParquetSource(files, element_spec=spec, name=name)
    lengths = {f: np.load(os.path.join(root, p)) for f, p in manifest.lengths.items()}
    return ArrayRecordSource(
        files, element_spec=spec, counts=list(manifest.counts), lengths=lengths, name=name
    )
