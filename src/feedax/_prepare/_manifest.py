"""What a prepared corpus says about itself: ``manifest.json``, read back by ``load``."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import numpy as np

from feedax._errors import SourceError

MANIFEST = "manifest.json"
FAILED = "failed.jsonl"
FORMATS = ("array_record", "parquet")


@dataclasses.dataclass(frozen=True)
class Field:
    """One output field: its dtype, its shape (``None`` first for a ragged field)."""

    dtype: str
    shape: tuple[int | None, ...]

    @property
    def ragged(self) -> bool:
        """Whether the leading axis varies between records (token ids)."""
        return bool(self.shape) and self.shape[0] is None


@dataclasses.dataclass(frozen=True)
class Manifest:
    """A prepared corpus: its files in index order, their counts, schema and fingerprint.

    Attributes:
      format: ``"array_record"`` or ``"parquet"``.
      files: the shard files, relative to the manifest's folder, in index order.
      counts: records per file.
      fields: field -> :class:`Field`.
      fingerprint: of every record's index and bytes (a sum of blake2b digests, hex):
        the same corpus prepared twice (on any runner, parallelism, shard count or
        format) has the same fingerprint.
      source: the input the corpus was prepared from (its name and location).
      records_in: records read from the input.
      failed: records the function failed on (listed in ``failed.jsonl``, not written).
      lengths: ragged field -> its lengths file (one int64 per record, index order).
    """

    format: str
    files: tuple[str, ...]
    counts: tuple[int, ...]
    fields: dict[str, Field]
    fingerprint: str
    source: str
    records_in: int
    failed: int
    lengths: dict[str, str]

    @property
    def records(self) -> int:
        """Records written."""
        return int(sum(self.counts))

    def to_json(self) -> str:
        """The manifest as JSON text."""
        data = dataclasses.asdict(self)
        data["fields"] = {k: dataclasses.asdict(v) for k, v in self.fields.items()}
        return json.dumps(data, indent=1)

    @classmethod
    def read(cls, folder: str | os.PathLike[str]) -> Manifest:
        """The manifest of a prepared folder; a clear error when there is none."""
        path = os.path.join(os.fspath(folder), MANIFEST)
        if not os.path.isfile(path):
            raise SourceError(
                f"feedax.prepare: {os.fspath(folder)!r} has no {MANIFEST}: it is not a corpus "
                "prepared by feedax.prepare, or its job did not finish. Prepare it again."
            )
        with open(path) as f:
            return cls.from_json(f.read())

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """The manifest written as ``text`` by :meth:`to_json`."""
        data = json.loads(text)
        fields = {k: Field(v["dtype"], tuple(v["shape"])) for k, v in data.pop("fields").items()}
        data.update(files=tuple(data["files"]), counts=tuple(data["counts"]), fields=fields)
        return cls(**data)


def field_of(value: Any) -> Field:
    """The field a record's value makes (its leading axis fixed, until another differs)."""
    array = np.asarray(value)
    if array.dtype == object or array.dtype.kind in "SUV":
        return Field("object", ())
    return Field(array.dtype.str, tuple(array.shape))


def merge(name: str, a: Field, b: Field, where: str = "") -> Field:
    """Two records' views of a field: ragged where their leading axes differ."""
    if a == b:
        return a
    if (
        a.dtype != b.dtype
        or len(a.shape) != len(b.shape)
        or not a.shape
        or a.shape[1:] != b.shape[1:]
    ):
        raise SourceError(
            f"feedax.prepare: field {name!r}{where} is {a.dtype} of shape {a.shape} in some "
            f"records and {b.dtype} of shape {b.shape} in others. Records may differ only in the "
            "length of their first axis (token ids); make the function return one dtype "
            "and one trailing shape per field."
        )
    return Field(a.dtype, (None, *a.shape[1:]))
