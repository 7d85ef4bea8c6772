"""Offline corpus preparation on Apache Beam: read, map, write sharded files feedax reads.

``run(source, fn, output)`` reads every record of a feedax source, applies a host
function to it (decode and resize, tokenize) and writes ArrayRecord (or Parquet) shards
with a manifest; :func:`load` reads them back as a source, exactly in the prepared order.
The same job runs on Dataflow, Flink or Spark by Beam options. The Beam parts need
``pip install 'feedax[beam]'``; :func:`load` and :class:`Manifest` do not.

Example:
  >>> import numpy as np, tempfile, feedax as fx
  >>> from feedax import prepare
  >>> text = fx.ArraySource({"text": np.array(["a b", "c", "d e f"], dtype=object)})
  >>> def words(record, ctx):
  ...     return {"count": np.int32(len(str(record["text"]).split()))}
  >>> manifest = prepare.run(text, words, tempfile.mkdtemp(), num_shards=2)
  >>> manifest.counts, manifest.records_in, manifest.failed
  ((2, 1), 3, 0)
"""

from typing import TYPE_CHECKING, Any

from feedax._prepare._load import load
from feedax._prepare._manifest import Field, Manifest

if TYPE_CHECKING:
    from feedax._prepare._beam import MapRecords, ReadRecords, WriteManifest, WriteShards
    from feedax._prepare._run import run

_BEAM = {
    "run": "feedax._prepare._run",
    "ReadRecords": "feedax._prepare._beam",
    "MapRecords": "feedax._prepare._beam",
    "WriteShards": "feedax._prepare._beam",
    "WriteManifest": "feedax._prepare._beam",
}

__all__ = [
    "Field",
    "Manifest",
    "MapRecords",
    "ReadRecords",
    "WriteManifest",
    "WriteShards",
    "load",
    "run",
]


def __getattr__(name: str) -> Any:
    """The Beam parts, imported on first use (Apache Beam is an extra)."""
    if name not in _BEAM:
        raise AttributeError(f"module 'feedax.prepare' has no attribute {name!r}")
    import importlib

    try:
        module = importlib.import_module(_BEAM[name])
    except ImportError as error:
        if "apache_beam" not in str(error):
            raise
        raise ImportError(
            f"feedax.prepare.{name} needs Apache Beam: pip install 'feedax[beam]'."
        ) from error
    return getattr(module, name)
