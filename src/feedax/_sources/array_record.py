"""ArrayRecordSource: random access over ArrayRecord files, and a writer for them."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from feedax._errors import SourceError
from feedax._source import Batch
from feedax._sources._common import (
    FilesSource,
    LazyHandles,
    PathLike,
    Spec,
    check_spec,
    empty_batch,
    fit_value,
    group_by,
    locate,
    require,
    span,
    spec_of,
    spec_repr,
    starts_of,
)
from feedax._sources._files import as_path, expand_paths, local_only
from feedax._sources.codec import decode_record, encode_record

Parser = Callable[[bytes], Mapping[str, Any]]

_READER = "array_record.python.array_record_module"
_RANDOM_ACCESS = "readahead_buffer_size:0"  # as Grain: no read-ahead for random access
_FIX_FILE = "Re-write or re-download the file (or leave it out of the source's paths)."


def _module(user: str) -> Any:
    (module,) = require(["array_record", _READER], extra="arrayrecord", user=user)[1:]
    return module


class _Readers(LazyHandles):
    """Files, their record counts and the parser; readers open on first use per process.

    A file that does not open, or holds another number of records than ``counts`` says,
    is remembered as damaged (per process, with the cause) and is not opened again.
    """

    _transient = ("lock", "readers", "damaged")

    def __init__(self, files: list[str], counts: list[int], parse: Parser, spec: Spec):
        self.files = files
        self.counts = counts
        self.starts = starts_of(counts)
        self.parse = parse
        self.spec = spec
        self.lengths: dict[str, np.ndarray] = {}  # ragged field -> stored lengths
        super().__init__()

    def _reset(self) -> None:
        super()._reset()
        self.readers: dict[int, Any] = {}
        self.damaged: dict[int, str] = {}  # file -> why it cannot be read

    def __len__(self) -> int:
        return int(self.starts[-1])

    def reader(self, file: int) -> Any:
        """The open reader of ``file``; raises :class:`_Damaged` if the file is damaged."""
        reader = self.readers.get(file)
        if reader is None:
            with self.lock:
                reader = self.readers.get(file)
                if reader is None:
                    if file not in self.damaged:
                        reader, cause = _open(self.files[file], self.counts[file])
                        if reader is None:
                            self.damaged[file] = cause
                        else:
                            self.readers[file] = reader
                    if file in self.damaged:
                        raise _Damaged(self.damaged[file])
        return reader

    def __repr__(self) -> str:
        return f"ArrayRecordFiles({len(self.files)} files, {spec_repr(self.spec)})"


class _Damaged(Exception):
    """A file that cannot be read at all (its cause is the message)."""


def _open(file: str, count: int | None) -> tuple[Any, str]:
    """``(reader, "")`` for a good file, else ``(None, why)`` (``count``: the records expected).

    A file is damaged if it does not open, or holds another number of records than
    ``count`` (``None``: any number).
    """
    if not os.path.isfile(file):
        return None, "the file does not exist"
    try:
        reader = _module("ArrayRecordSource").ArrayRecordReader(
            file, _RANDOM_ACCESS, file_reader_buffer_size=32768
        )
        ok = bool(reader.ok())
    except Exception as error:  # the reader raises RuntimeError on some bad files
        return None, (
            "the reader cannot open it (the file is truncated or corrupt): "
            f"{type(error).__name__}: {error}"
        )
    if not ok:  # a reader that is not ok reads empty records: never use it
        cause = "the reader found no valid footer (the file is truncated or corrupt)"
        try:
            reader.close()  # raises the reader's status, which says what is wrong
        except Exception as error:
            if str(error):
                cause += f": {type(error).__name__}: {error}"
        return None, cause
    held = int(reader.num_records())
    if count is not None and held != count:
        reader.close()
        return None, f"the file holds {held} records, but counts= says {count}"
    return reader, ""


def _count(file: str, start: int, name: str) -> int:
    """The number of records in ``file``; a damaged file raises (its count is unknown)."""
    reader, cause = _open(file, None)
    if reader is None:
        raise SourceError(
            f"{name}: file {file!r} (records from index {start} on) cannot be read: {cause}. "
            "Its record count is unknown, so its records cannot be numbered. "
            f"{_FIX_FILE} Or pass counts= (the number of records each file holds) so that "
            "on_error='skip' can skip its records."
        )
    count = int(reader.num_records())
    reader.close()
    return count


def _check_counts(counts: Any, files: list[str], name: str) -> list[int]:
    """``counts`` as a list of ints, one per file, each >= 0; or an error saying why not."""
    if isinstance(counts, str | bytes) or not isinstance(counts, Sequence | np.ndarray):
        raise SourceError(
            f"{name}: counts must be a sequence of ints (the number of records each file holds, "
            f"in index order), got {type(counts).__name__}. Pass e.g. counts=[1000, 1000, 512]."
        )
    if len(counts) != len(files):
        raise SourceError(
            f"{name}: counts must hold one number per file: expected {len(files)} (the files "
            f"{files}), got {len(counts)}. Pass the number of records of each file, in index "
            "order."
        )
    out = []
    for k, count in enumerate(counts):
        if isinstance(count, bool | np.bool_) or not isinstance(count, int | np.integer):
            raise SourceError(
                f"{name}: counts[{k}] (file {files[k]!r}) must be an int, got {count!r}. Pass "
                "the number of records the file holds."
            )
        if count < 0:
            raise SourceError(
                f"{name}: counts[{k}] (file {files[k]!r}) must be >= 0, got {count}. Pass the "
                "number of records the file holds."
            )
        out.append(int(count))
    return out


class ArrayRecordSource(FilesSource[_Readers]):
    """Records in one or many ArrayRecord files, read by index with the ``array_record`` reader.

    The files are concatenated in the order given (a glob pattern or a directory is
    sorted), so record ``i`` of file ``k`` has index ``sum(len(files[:k])) + i``. A batch
    is read with one call per file into the reader's C++ code, then each record is
    parsed: by default with :func:`feedax.decode_record` (msgpack of NumPy arrays, as
    written by :func:`write_array_record`), or by your ``parse(bytes) -> dict``. Files are
    opened lazily in each process, so the source pickles to process workers as paths.

    Every record is checked against ``element_spec`` (declared, or taken from the first
    record): a missing field, another shape or dtype, or a record that does not parse
    raises :class:`feedax.SourceError` naming the file and record index. Fields not in a
    declared ``element_spec`` are ignored. ``bytes``/``str`` fields have dtype ``object``;
    a host stage must turn them into arrays.

    A damaged file (truncated, so its footer is gone, or not ArrayRecord) has no record
    count. Without ``counts`` the files are opened to count their records when the source
    is built, and a damaged one raises there. With ``counts`` nothing is opened to count,
    and a damaged file, or one holding another number of records than declared, makes
    every read of its records raise :class:`feedax.SourceError` naming the record index,
    the file and the cause: ``on_error="skip"`` in the :class:`feedax.Pipeline` then skips
    exactly its records.

    Args:
      paths: a file, a glob pattern (``"data/train.array_record-*"``), a directory (its
        files whose name contains ``array_record``), or a list of those.
      parse: ``bytes -> dict`` of field -> value, for files you wrote another way. Must be
        picklable (a module-level function) for process workers.
      element_spec: the declared field -> ``jax.ShapeDtypeStruct`` of one record;
        ``fx.Ragged(dtype)`` for a field of any length per record (token ids), which a
        pipeline packs with ``pack=fx.Pack(...)``.
      counts: the number of records each file holds, in index order (e.g. from the
        dataset's metadata). The files are then not opened to count (faster with many
        files), and a damaged file fails per record instead of at construction.
      lengths: ragged field -> the length of that field in every record (index order),
        e.g. the lengths column ``feedax.prepare`` writes: packing then plans from them
        without reading the records. Needs ``counts`` (they must add up to its length).
      name: a name used in error messages.

    Example:
      >>> import numpy as np, tempfile, os, feedax as fx
      >>> d = tempfile.mkdtemp()
      >>> data = {"image": np.zeros((10, 4, 4, 3), np.uint8), "label": np.arange(10)}
      >>> files = fx.write_array_record(os.path.join(d, "train.array_record"), data,
      ...                               num_shards=2)
      >>> src = fx.ArrayRecordSource(files)
      >>> len(src), src.read(np.array([7, 2]))["label"].tolist()
      (10, [7, 2])
      >>> with open(files[0], "r+b") as f:  # cut the first file: it loses its footer
      ...     _ = f.truncate(100)
      >>> src = fx.ArrayRecordSource(files, counts=[5, 5])
      >>> src.read(np.array([7, 9]))["label"].tolist()
      [7, 9]
      >>> src.read(np.array([2]))
      Traceback (most recent call last):
      feedax...SourceError: ArrayRecordSource: record index 2 (file '...'): the file ...
    """

    def __init__(
        self,
        paths: PathLike | Iterable[PathLike],
        *,
        parse: Parser | None = None,
        element_spec: Mapping[str, Any] | None = None,
        counts: Sequence[int] | None = None,
        lengths: Mapping[str, Any] | None = None,
        name: str = "ArrayRecordSource",
    ):
        self.name = name
        _module(name)
        stored = _check_lengths(lengths, counts, name)
        if parse is None:
            require(["msgpack"], extra="arrayrecord", user=name)
            parse = decode_record
        elif not callable(parse):
            raise SourceError(f"{name}: parse must be callable (bytes -> dict), got {parse!r}.")
        for item in [paths] if isinstance(paths, str | os.PathLike) else list(paths):
            local_only(as_path(item), name, "array_record's reader opens local files only")
        files = expand_paths(paths, what="array_record", user=name)
        if counts is not None:
            held = _check_counts(counts, files, name)
        else:
            held = []
            for file in files:
                held.append(_count(file, int(sum(held)), name))
        if sum(held) == 0:
            raise SourceError(f"{name}: the files {files} hold 0 records. Write records first.")
        store = _Readers(files, held, parse, {})
        store.lengths = stored
        self._store = store
        if element_spec is not None:
            store.spec = check_spec(element_spec, user=name)
            return
        causes = []
        for k, count in enumerate(held):
            if not count:
                continue
            try:
                reader = store.reader(k)
            except _Damaged as damage:  # only with counts=: try the next file
                causes.append(f"{files[k]!r}: {damage}")
                continue
            index = int(store.starts[k])
            first = self._parse(reader.read([0])[0], index, k)
            store.spec = {field: spec_of(value) for field, value in first.items()}
            if not store.spec:
                raise SourceError(
                    f"{name}: record index {index} (file {files[k]!r}) has no fields. Records "
                    "need >= 1 field."
                )
            return
        raise SourceError(
            f"{name}: no file can be read, so the element_spec cannot be taken from a record: "
            f"{'; '.join(causes)}. {_FIX_FILE} Or declare element_spec= (then every read of "
            "these files fails per record)."
        )

    @property
    def stored_lengths(self) -> dict[str, np.ndarray]:
        """Ragged field -> every record's length, as given by ``lengths=`` (else empty)."""
        return self._store.lengths

    def read(self, indices: np.ndarray) -> Batch:
        """Returns the records at ``indices``: one batched read per file, then parsing."""
        indices = self._checked(indices)
        store = self._store
        file_of, positions = locate(store.starts, indices)
        out = empty_batch(store.spec, len(indices))
        # Files in the order of their first record in the batch: the first bad one is named.
        for file, rows in sorted(group_by(file_of), key=lambda item: int(item[1][0])):
            blobs = self._read_file(file, positions[rows], indices[rows])
            for row, blob in zip(rows, blobs, strict=True):
                index = int(indices[row])
                self._put(out, int(row), self._parse(blob, index, file), index, file)
        return out

    def _read_file(self, file: int, positions: np.ndarray, indices: np.ndarray) -> list[bytes]:
        store = self._store
        try:
            reader = store.reader(file)
        except _Damaged as damage:
            raise self._record_error(
                int(indices[0]),
                file,
                f"the file ({span(store.starts, file)}) cannot be read: {damage}",
                "Re-write or re-download the file (or correct counts= if it is wrong), or pass "
                "on_error='skip' to the Pipeline to skip its records.",
            ) from damage
        try:
            blobs: list[bytes] = reader.read(positions.tolist())
            return blobs
        except Exception:
            pass
        for position, index in zip(positions.tolist(), indices.tolist(), strict=True):
            try:  # find the first bad record, to name it
                reader.read([position])
            except Exception as error:
                raise self._record_error(
                    index,
                    file,
                    f"the ArrayRecord reader failed: {type(error).__name__}: {error}",
                    _FIX_FILE,
                ) from error
        raise self._record_error(int(indices[0]), file, "a batched read failed", _FIX_FILE)

    def _parse(self, blob: bytes, index: int, file: int) -> Mapping[str, Any]:
        try:
            record = self._store.parse(blob)
        except Exception as error:
            raise self._record_error(
                index,
                file,
                f"the record ({len(blob)} bytes) does not parse: {type(error).__name__}: {error}",
                "Check that parse= matches how the file was written (the default expects "
                "feedax.write_array_record's msgpack records), or re-write the file.",
            ) from error
        if not isinstance(record, Mapping):
            raise self._record_error(
                index,
                file,
                f"parse returned {type(record).__name__}, not a dict of field -> value",
                "Make parse return a dict.",
            )
        return record

    def _put(
        self, out: dict[str, np.ndarray], row: int, record: Mapping[str, Any], index: int, file: int
    ) -> None:
        for field, want in self._store.spec.items():
            if field not in record:
                raise self._record_error(
                    index,
                    file,
                    f"field {field!r} is missing (the record has {sorted(record)})",
                    f"Every record needs the fields of element_spec ({spec_repr(self._store.spec)})"
                    "; fix the record, or declare element_spec without the field.",
                )
            value, problem = fit_value(record[field], want)
            if problem is not None:
                raise self._record_error(
                    index,
                    file,
                    f"field {field!r} {problem}",
                    "Every record needs one shape and dtype per field; fix the record or "
                    "resize it when writing.",
                )
            out[field][row] = value


def _check_lengths(
    lengths: Mapping[str, Any] | None, counts: Sequence[int] | None, name: str
) -> dict[str, np.ndarray]:
    if lengths is None:
        return {}
    if counts is None:
        raise SourceError(f"{name}: lengths= needs counts= (the records each file holds).")
    total, out = int(sum(counts)), {}
    for field, values in lengths.items():
        array = np.asarray(values)
        if array.shape != (total,) or array.dtype.kind not in "iu" or (array < 0).any():
            raise SourceError(
                f"{name}: lengths[{field!r}] must hold one non-negative int per record "
                f"({total}, from counts), got {array.dtype} of shape {array.shape}."
            )
        out[str(field)] = array.astype(np.int64)
    return out


def write_array_record(
    path: PathLike,
    records: Mapping[str, Any] | Iterable[Mapping[str, Any] | bytes],
    *,
    num_shards: int = 1,
    num_records: int | None = None,
    encode: Callable[[Mapping[str, Any]], bytes] = encode_record,
    options: str = "group_size:1",
) -> list[str]:
    """Writes records to ``num_shards`` ArrayRecord files; returns their paths in index order.

    Record ``i`` of the input becomes record ``i`` of ``ArrayRecordSource(paths)``: the
    shards hold contiguous, near-equal ranges. Records are encoded by ``encode``
    (default :func:`feedax.encode_record`); a ``bytes`` record is written as is.

    Args:
      path: the output path. With ``{shard}`` / ``{num_shards}`` in it (e.g.
        ``"out/train-{shard:05d}-of-{num_shards:05d}.array_record"``) it is formatted per
        shard; otherwise ``-SSSSS-of-NNNNN`` is appended (the TFDS naming).
      records: a dict of field -> array (one row per record), or an iterable of records
        (dicts, or already encoded ``bytes``), read once, never held whole.
      num_shards: how many files to write.
      num_records: the number of records of an iterable without ``len()`` (needed to
        split it into contiguous shards).
      encode: ``record -> bytes``.
      options: ArrayRecord writer options; ``group_size:1`` makes random reads fast.

    Example:
      >>> import numpy as np, tempfile, os, feedax as fx
      >>> out = os.path.join(tempfile.mkdtemp(), "train.array_record")
      >>> paths = fx.write_array_record(out, {"x": np.arange(10)}, num_shards=2)
      >>> [os.path.basename(p) for p in paths]
      ['train.array_record-00000-of-00002', 'train.array_record-00001-of-00002']
    """
    module = _module("write_array_record")
    if not isinstance(num_shards, int) or num_shards < 1:
        raise SourceError(
            f"write_array_record: num_shards must be an int >= 1, got {num_shards!r}."
        )
    iterator, total = _records(records, num_records)
    bounds = np.linspace(0, total, num_shards + 1).astype(np.int64)
    template = os.fspath(path)
    paths = []
    for shard in range(num_shards):
        if "{shard" in template or "{num_shards" in template:
            name = template.format(shard=shard, num_shards=num_shards)
        else:
            name = f"{template}-{shard:05d}-of-{num_shards:05d}"
        os.makedirs(os.path.dirname(os.path.abspath(name)), exist_ok=True)
        writer = module.ArrayRecordWriter(name, options)
        try:
            count = int(bounds[shard + 1] - bounds[shard])
            for record in itertools.islice(iterator, count):
                writer.write(record if isinstance(record, bytes) else encode(record))
                count -= 1
        finally:
            writer.close()
        if count:
            raise SourceError(
                f"write_array_record: the records ran out {count} short of num_records={total}. "
                "Pass the right num_records."
            )
        paths.append(name)
    if next(iterator, None) is not None:
        raise SourceError(
            f"write_array_record: there are more records than num_records={total}; they were "
            "not written. Pass the right num_records."
        )
    return paths


def _records(
    records: Mapping[str, Any] | Iterable[Mapping[str, Any] | bytes], num_records: int | None
) -> tuple[Any, int]:
    if isinstance(records, Mapping):
        columns = {
            k: np.asarray(v) if not isinstance(v, np.ndarray) else v for k, v in records.items()
        }
        lengths = {k: len(v) for k, v in columns.items()}
        if not columns or len(set(lengths.values())) != 1:
            raise SourceError(
                f"write_array_record: a dict of arrays needs >= 1 field, all of the same length; "
                f"got lengths {lengths}."
            )
        total = next(iter(lengths.values()))
        rows = ({k: v[i] for k, v in columns.items()} for i in range(total))
        return rows, total
    if num_records is None:
        if not hasattr(records, "__len__"):
            raise SourceError(
                "write_array_record: records is an iterable without len(); pass num_records= so "
                "it can be split into contiguous shards."
            )
        num_records = len(records)  # type: ignore[arg-type]
    return iter(records), int(num_records)
