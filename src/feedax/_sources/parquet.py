"""ParquetSource: random access by row over Parquet files, row groups cached (LRU)."""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from feedax._errors import SourceError
from feedax._ragged import Ragged
from feedax._source import Batch
from feedax._sources._arrow import RowError, columns_to_numpy
from feedax._sources._common import (
    FilesSource,
    LazyHandles,
    PathLike,
    Spec,
    batch_spec,
    check_declared,
    empty_batch,
    group_by,
    locate,
    require,
    span,
    starts_of,
)
from feedax._sources._files import expand_paths, is_url, open_file

Columns = dict[str, np.ndarray]


def _modules(user: str) -> Any:
    return require(["pyarrow", "pyarrow.parquet"], extra="parquet", user=user)[1]


class _RowGroups(LazyHandles):
    """Where each row group lives, plus per-process open files and decoded row groups."""

    _transient = ("lock", "local", "cache")

    def __init__(
        self,
        files: list[str],
        groups: list[tuple[int, int]],
        counts: list[int],
        columns: list[str],
        capacity: int,
    ):
        self.files = files
        self.groups = groups  # global row group -> (file, row group in the file)
        self.starts = starts_of(counts)
        self.file_of = np.array([file for file, _ in groups], np.int64)  # global group -> file
        per_file = np.bincount(self.file_of, weights=counts, minlength=len(files))
        self.file_starts = starts_of(per_file)
        self.damaged: dict[int, str] = {}  # file -> why its rows cannot be read
        self.columns = columns
        self.capacity = capacity
        self.spec: Spec = {}
        self.declared: Spec = {}
        super().__init__()

    def _reset(self) -> None:
        super()._reset()
        self.local = threading.local()  # one open ParquetFile per thread and file
        self.cache: collections.OrderedDict[int, Columns] = collections.OrderedDict()

    def __len__(self) -> int:
        return int(self.starts[-1])

    def open(self, file: int) -> Any:
        handles = self.local.__dict__.setdefault("files", {})
        if file not in handles:
            handles[file] = _parquet_file(_modules("ParquetSource"), self.files[file])
        return handles[file]

    def load(self, group: int, convert: Any) -> Columns:
        """The decoded columns of a global row group, from the cache or read now."""
        with self.lock:
            columns = self.cache.get(group)
            if columns is not None:
                self.cache.move_to_end(group)
                return columns
        file, local = self.groups[group]
        table = self.open(file).read_row_group(local, columns=self.columns)
        columns = convert(table, group)
        with self.lock:
            self.cache[group] = columns
            self.cache.move_to_end(group)
            while len(self.cache) > self.capacity:
                self.cache.popitem(last=False)
        return columns

    def __repr__(self) -> str:
        return f"ParquetRowGroups({len(self.files)} files, {len(self.groups)} row groups)"


def _parquet_file(pq: Any, path: str) -> Any:
    """A ``ParquetFile`` over a local path, or over an fsspec file for a URL."""
    return pq.ParquetFile(open_file(path, "ParquetSource") if is_url(path) else path)


def _schema_problem(schema: Any, schema0: Any, columns: list[str], first: str) -> str | None:
    """Why a file's schema cannot serve the selected ``columns`` (``None``: it can)."""
    for column in columns:
        if schema.get_field_index(column) < 0:
            return f"column {column!r} is missing from the file (it has {schema.names})"
        want, got = schema0.field(column).type, schema.field(column).type
        if got != want:
            return f"column {column!r} has type {got}, but {want} in the first file {first!r}"
    return None


class ParquetSource(FilesSource[_RowGroups]):
    """Rows of one or many Parquet files, read by index, a row group at a time.

    Row ``i`` is found by cumulative row counts (files in the order given, then row
    groups); a batch reads each row group it touches once, whole (Parquet's unit of
    decompression), decodes it to NumPy and keeps the last ``cache_row_groups`` of them
    per process (LRU). Shuffled access thus costs about one row-group read per record once
    the dataset is much larger than the cache: write files with small row groups (e.g.
    ``row_group_size=1000``) for random access, shuffle by blocks of row groups
    (``Pipeline(shuffle=fx.BlockShuffle(row_group_size, window))``), or read unshuffled.

    Columns become fields: numbers as arrays, nested lists of fixed length as extra
    dimensions, binary and string as ``object`` (a host stage must turn them into arrays).
    Parquet has no tensor type: declare ``element_spec`` to reshape a flat list column
    (e.g. 3072 values to ``(32, 32, 3)``).

    Every file must have the selected columns with the types of the first file. A file
    that lacks one, or has another type, still counts its rows (its metadata is read when
    the source is built), but every read of them raises :class:`feedax.SourceError`
    naming the record index, the file, the column, both types and the fix, so
    ``on_error="skip"`` in the :class:`feedax.Pipeline` skips exactly that file's rows. A
    file whose metadata cannot be read (truncated, not Parquet) has no row count: it
    raises when the source is built.

    Args:
      paths: a file, a glob pattern, a directory (its ``*.parquet`` files), or a list.
      columns: the columns to read (default: all of the first file's).
      element_spec: declared field -> ``jax.ShapeDtypeStruct`` for some or all columns;
        the others are taken from row 0. ``fx.Ragged(dtype)`` declares a list column of
        any length per row (token ids): read as one NumPy view per row of the Arrow
        values, and packed by ``Pipeline(pack=fx.Pack(...))``.
      cache_row_groups: decoded row groups kept per process (memory: this many times the
        decoded size of a row group).
      name: a name used in error messages.

    Example:
      >>> import numpy as np, pyarrow as pa, pyarrow.parquet as pq, tempfile, os, feedax as fx
      >>> path = os.path.join(tempfile.mkdtemp(), "train.parquet")
      >>> pq.write_table(pa.table({"x": np.arange(10.0), "label": np.arange(10)}), path,
      ...                row_group_size=4)
      >>> src = fx.ParquetSource(path, columns=["label"])
      >>> len(src), src.read(np.array([7, 2]))["label"].tolist()
      (10, [7, 2])
      >>> pq.write_table(pa.table({"label": ["ten", "eleven"]}),  # strings, not int64
      ...                os.path.join(os.path.dirname(path), "more.parquet"))
      >>> src = fx.ParquetSource([path, path.replace("train", "more")], columns=["label"])
      >>> len(src), src.read(np.array([9]))["label"].tolist()
      (12, [9])
      >>> src.read(np.array([11]))
      Traceback (most recent call last):
      feedax...SourceError: ParquetSource: record index 11 (file '...more.parquet'): column ...
    """

    def __init__(
        self,
        paths: PathLike | Iterable[PathLike],
        columns: Sequence[str] | None = None,
        *,
        element_spec: Mapping[str, Any] | None = None,
        cache_row_groups: int = 8,
        name: str = "ParquetSource",
    ):
        self.name = name
        pq = _modules(name)
        if not isinstance(cache_row_groups, int) or cache_row_groups < 1:
            raise SourceError(
                f"{name}: cache_row_groups must be an int >= 1, got {cache_row_groups!r}."
            )
        files = expand_paths(paths, what=".parquet", user=name)
        groups: list[tuple[int, int]] = []
        counts: list[int] = []
        schema0: Any = None
        selected: list[str] = []
        first_file = ""
        damaged: dict[int, str] = {}  # file -> why its rows cannot be read
        for k, file in enumerate(files):
            try:
                meta = _parquet_file(pq, file)
                schema = meta.schema_arrow
                sizes = [meta.metadata.row_group(g).num_rows for g in range(meta.num_row_groups)]
            except Exception as error:
                raise SourceError(
                    f"{name}: cannot read the Parquet metadata of {file!r} (records from index "
                    f"{sum(counts)} on): {type(error).__name__}: {error}. The file is truncated "
                    "or not Parquet, so its row count is unknown and its records cannot be "
                    "numbered (on_error='skip' cannot skip them): re-write the file, or leave "
                    "it out of paths."
                ) from error
            if schema0 is None:
                schema0 = schema
                selected = list(schema.names) if columns is None else [str(c) for c in columns]
                first_file = file
            problem = _schema_problem(schema, schema0, selected, first_file)
            if problem is not None:
                damaged[k] = problem
            groups += [(k, g) for g in range(len(sizes))]
            counts += sizes
        if sum(counts) == 0:
            raise SourceError(f"{name}: the files {files} hold 0 rows. Pass non-empty files.")
        store = _RowGroups(files, groups, counts, selected, cache_row_groups)
        store.damaged = damaged
        self._store = store
        if element_spec is not None:
            store.declared = check_declared(
                element_spec, selected, user=name, among="the selected columns"
            )
        readable = [g for g, (k, _) in enumerate(groups) if counts[g] and k not in damaged]
        if not readable:  # only when the first file is empty and all the others are damaged
            raise SourceError(
                f"{name}: no file has readable rows to take the element_spec from: "
                + "; ".join(f"{files[k]!r}: {why}" for k, why in damaged.items())
                + ". Re-write the files with the first file's column types."
            )
        store.spec = batch_spec(store.load(readable[0], self._convert))
        store.spec.update({k: v for k, v in store.declared.items() if isinstance(v, Ragged)})

    def _damaged_error(self, index: int, file: int) -> SourceError:
        store = self._store
        return self._record_error(
            index,
            file,
            f"{store.damaged[file]} (the file holds {span(store.file_starts, file)})",
            "Every file needs the selected columns with the first file's types: re-write the "
            "file with them, select other columns with columns=, or pass on_error='skip' to "
            "the Pipeline to skip its records.",
        )

    def _convert(self, table: Any, group: int) -> Columns:
        store = self._store
        try:
            return columns_to_numpy(table, store.columns, {**store.spec, **store.declared})
        except RowError as error:
            raise self._record_error(
                int(store.starts[group]) + error.row,
                store.groups[group][0],
                error.cause,
                "Fix the file, or declare the column's element_spec to match it.",
            ) from error

    @property
    def columns(self) -> list[str]:
        """The selected columns (the record's fields)."""
        return list(self._store.columns)

    def read(self, indices: np.ndarray) -> Batch:
        """Returns the rows at ``indices``: each row group touched is read (or cached) once."""
        indices = self._checked(indices)
        store = self._store
        group_of, offsets = locate(store.starts, indices)
        if store.damaged:
            files = store.file_of[group_of]
            bad = np.isin(files, list(store.damaged))
            if bad.any():
                first = int(np.argmax(bad))
                raise self._damaged_error(int(indices[first]), int(files[first]))
        out = empty_batch(store.spec, len(indices))
        for group, rows in group_by(group_of):
            columns = store.load(group, self._convert)
            for field, values in columns.items():
                out[field][rows] = values[offsets[rows]]
        return out
