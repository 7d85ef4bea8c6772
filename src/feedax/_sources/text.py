"""Text sources: plain-text and JSONL files, random access through a line index built once.

Each file is scanned once for its line starts (a vectorised search for newlines, chunk by
chunk), so a record is read with one seek; the index is kept in memory, 8 bytes a line.
Records are strings (dtype ``object``): tokenize them (``fx.tokenize``) or decode them in
a host stage.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import jax
import numpy as np

from feedax._errors import SourceError
from feedax._source import Batch
from feedax._sources._common import (
    OBJECT,
    FilesSource,
    LazyHandles,
    PathLike,
    locate,
    record_error,
    starts_of,
)
from feedax._sources._files import expand_paths, open_file, size

CHUNK = 1 << 24
"""Bytes read at once while indexing a file."""


def line_starts(path: str) -> np.ndarray:
    """Byte offsets of the lines of ``path`` (empty trailing line excluded), then its size."""
    starts = [np.zeros(1, np.int64)]
    size = 0
    with open_file(path) as file:
        while chunk := file.read(CHUNK):
            newlines = np.flatnonzero(np.frombuffer(chunk, np.uint8) == 10)
            starts.append(newlines.astype(np.int64) + size + 1)
            size += len(chunk)
    out = np.concatenate(starts)
    if len(out) > 1 and out[-1] == size:
        out = out[:-1]  # the file ends with a newline: no line after it
    if size == 0:
        out = np.zeros(0, np.int64)
    return np.concatenate([out, [size]])


class _TextStore(LazyHandles):
    """The files, their line indices and open handles (reopened in each process)."""

    _transient = ("lock", "handles")

    def __init__(self, files: list[str], unit: str, spec: dict[str, jax.ShapeDtypeStruct]):
        self.files = files
        self.spec = spec
        if unit == "file":
            self.bounds = [np.array([0, size(f, "TextSource")], np.int64) for f in files]
        else:
            self.bounds = [line_starts(f) for f in files]
        self.starts = starts_of([len(b) - 1 for b in self.bounds])
        super().__init__()

    def _reset(self) -> None:
        super()._reset()
        self.handles: dict[int, Any] = {}

    def __len__(self) -> int:
        return int(self.starts[-1])

    def raw(self, file: int, line: int) -> bytes:
        lo, hi = self.bounds[file][line], self.bounds[file][line + 1]
        with self.lock:
            handle = self.handles.get(file)
            if handle is None:
                handle = self.handles[file] = open_file(self.files[file])
            handle.seek(int(lo))
            return handle.read(int(hi - lo))


class TextSource(FilesSource[_TextStore]):
    r"""Plain-text files: one record per line, or one per file.

    Records have one field (``field``, a ``str``): a line without its newline, or a file's
    whole text as it is. Lines are indexed once when the source is built (random access
    by record index).

    Args:
      paths: a file, a glob pattern, a directory (its files whose name contains
        ``suffix``) or a list of those; the order fixes the record indices.
      unit: ``"line"`` (default) or ``"file"`` (a whole file is one document).
      field: the record field.
      suffix: which files of a directory to take.
      encoding: the text encoding.
      name: a name used in error messages.

    Example:
      >>> import pathlib, tempfile, feedax as fx
      >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
      >>> _ = path.write_text("first line\nsecond\n")
      >>> src = fx.TextSource(path)
      >>> len(src), src.read(np.array([1]))["text"][0]
      (2, 'second')
    """

    def __init__(
        self,
        paths: PathLike | Iterable[PathLike],
        *,
        unit: Literal["line", "file"] = "line",
        field: str = "text",
        suffix: str = "",
        encoding: str = "utf-8",
        name: str = "TextSource",
    ):
        self.name = name
        if unit not in ("line", "file"):
            raise SourceError(f"{name}: unit must be 'line' or 'file', got {unit!r}.")
        files = expand_paths(paths, what=suffix, user=name)
        self.field, self.encoding, self.unit = field, encoding, unit
        spec = {field: jax.ShapeDtypeStruct((), OBJECT)}
        self._store = _TextStore(files, unit, spec)
        if not len(self._store):
            raise SourceError(
                f"{name}: the files hold no record ({files[:3]}...). Check the paths."
            )

    def _text(self, index: int) -> str:
        file, line = locate(self._store.starts, np.array([index]))
        raw = self._store.raw(int(file[0]), int(line[0]))
        try:
            text = raw.decode(self.encoding)
            return text.rstrip("\r\n") if self.unit == "line" else text
        except UnicodeDecodeError as error:
            raise record_error(
                self.name,
                index,
                self._store.files[int(file[0])],
                f"not {self.encoding}: {error}",
                "Fix the file or pass encoding=.",
            ) from error

    def read(self, indices: np.ndarray) -> Batch:
        """The records' texts, as an object array of ``str``."""
        out = np.empty(len(indices), dtype=object)
        out[:] = [self._text(int(i)) for i in self._checked(indices)]
        return {self.field: out}


class JsonlSource(FilesSource[_TextStore]):
    r"""JSON Lines files: one JSON object per line, random access by record index.

    Args:
      paths: a file, a glob pattern, a directory (its ``.jsonl`` files) or a list.
      fields: the keys to read; each becomes a field (strings and nested values as
        ``object``, numbers as arrays). A line lacking one raises, naming the record.
      name: a name used in error messages.

    Example:
      >>> import pathlib, tempfile, feedax as fx
      >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.jsonl"
      >>> _ = path.write_text('{"text": "hi", "score": 0.5}\n{"text": "yo", "score": 0.9}\n')
      >>> src = fx.JsonlSource(path, fields=["text", "score"])
      >>> src.read(np.array([1]))["score"].tolist(), src.element_spec["score"].dtype
      ([0.9], dtype('float64'))
    """

    def __init__(
        self,
        paths: PathLike | Iterable[PathLike],
        *,
        fields: Sequence[str] = ("text",),
        name: str = "JsonlSource",
    ):
        self.name = name
        files = expand_paths(paths, what=".jsonl", user=name)
        self.fields = tuple(fields)
        if not self.fields:
            raise SourceError(f"{name}: fields must name at least one key, e.g. fields=['text'].")
        self._store = _TextStore(files, "line", {})
        if not len(self._store):
            raise SourceError(
                f"{name}: the files hold no record ({files[:3]}...). Check the paths."
            )
        first = self._object(0)
        self._store.spec = {k: _spec(first[k]) for k in self.fields}

    def _object(self, index: int) -> dict[str, Any]:
        file, line = locate(self._store.starts, np.array([index]))
        path = self._store.files[int(file[0])]
        try:
            value = json.loads(self._store.raw(int(file[0]), int(line[0])))
        except ValueError as error:
            raise record_error(
                self.name, index, path, f"not valid JSON: {error}", "Fix or remove the line."
            ) from error
        missing = [k for k in self.fields if not isinstance(value, dict) or k not in value]
        if missing:
            raise record_error(
                self.name,
                index,
                path,
                f"has no key {missing[0]!r}",
                "Add it to every line, or leave it out of fields=.",
            )
        return value

    def read(self, indices: np.ndarray) -> Batch:
        """The records' fields, one array per field."""
        objects = [self._object(int(i)) for i in self._checked(indices)]
        out: Batch = {}
        for k, spec in self._store.spec.items():
            values = [o[k] for o in objects]
            if spec.dtype == OBJECT:
                column = np.empty(len(values), dtype=object)
                column[:] = values
                out[k] = column
            else:
                column = np.asarray(values)
                if column.dtype == OBJECT or not np.can_cast(column.dtype, spec.dtype, "safe"):
                    row = next(j for j, v in enumerate(values) if np.asarray(v).dtype != spec.dtype)
                    raise SourceError(
                        f"{self.name}: record index {int(indices[row])} has {k}={values[row]!r}, "
                        f"but record 0 has a {spec.dtype} there. Give the key one type in "
                        "every line."
                    )
                out[k] = column.astype(spec.dtype)
        return out


def _spec(value: Any) -> jax.ShapeDtypeStruct:
    if isinstance(value, bool | int | float) and not isinstance(value, str):
        return jax.ShapeDtypeStruct((), np.asarray(value).dtype)
    return jax.ShapeDtypeStruct((), OBJECT)
