"""NpySource: ``.npy`` files, memory-mapped, one file per field."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from feedax._errors import SourceError
from feedax._source import Batch, files_location
from feedax._sources._common import LazyHandles, PathLike, Spec, StoreSource, spec_repr
from feedax._sources._files import as_path, is_dir, is_file, is_url, list_dir, open_file


class _Maps(LazyHandles):
    """The files and their memory maps (opened on first read in each process)."""

    _transient = ("lock", "maps")

    def __init__(self, paths: dict[str, str], spec: Spec, length: int):
        self.paths = paths
        self.spec = spec
        self.length = length
        super().__init__()

    def _reset(self) -> None:
        super()._reset()
        self.maps: dict[str, np.ndarray] | None = None

    def __len__(self) -> int:
        return self.length

    def get(self) -> dict[str, np.ndarray]:
        maps = self.maps
        if maps is None:
            with self.lock:
                if self.maps is None:
                    self.maps = {f: _open_rows(p) for f, p in self.paths.items()}
                maps = self.maps
        return maps

    def __repr__(self) -> str:
        return f"NpyFiles({spec_repr(self.spec)})"


class NpySource(StoreSource[_Maps]):
    """Records in ``.npy`` files, memory-mapped: a batch reads only its own rows.

    Each field is one ``.npy`` file whose first dimension indexes records. The files are
    opened with ``np.load(mmap_mode="r")`` and never loaded whole, so the dataset may be
    far larger than memory; the operating system's page cache holds what was read
    recently. Only the file paths are pickled to process workers; each process maps the
    files again on first use.

    Args:
      files: field name -> ``.npy`` path; or a directory, whose ``*.npy`` files become
        fields named after the file (``images.npy`` -> ``"images"``); or one ``.npy`` file.
      name: a name used in error messages.

    Example:
      >>> import numpy as np, tempfile, os, feedax as fx
      >>> d = tempfile.mkdtemp()
      >>> np.save(os.path.join(d, "image.npy"), np.zeros((10, 4, 4, 3), np.uint8))
      >>> np.save(os.path.join(d, "label.npy"), np.arange(10))
      >>> src = fx.NpySource(d)
      >>> len(src), src.read(np.array([7, 2]))["label"].tolist()
      (10, [7, 2])
    """

    def __init__(self, files: PathLike | Mapping[str, PathLike], *, name: str = "NpySource"):
        self.name = name
        paths = _field_paths(files, name)
        spec: Spec = {}
        lengths = {}
        for field, path in paths.items():
            try:
                array = _open_rows(path)
            except (OSError, ValueError) as error:
                raise SourceError(
                    f"{name}: cannot memory-map field {field!r} from {path!r}: "
                    f"{type(error).__name__}: {error}. It must be a .npy file of a numeric "
                    "dtype (object arrays cannot be mapped; store bytes in ArrayRecord instead)."
                ) from error
            if array.ndim == 0:
                raise SourceError(
                    f"{name}: field {field!r} ({path!r}) holds a scalar; expected an array whose "
                    "first dimension indexes records."
                )
            spec[field] = jax.ShapeDtypeStruct(array.shape[1:], array.dtype)
            lengths[field] = len(array)
            del array
        if len(set(lengths.values())) != 1:
            raise SourceError(
                f"{name}: all fields must have the same number of records (first dimension), "
                f"got {lengths} from {paths}. Use files of the same length."
            )
        length = next(iter(lengths.values()))
        if length == 0:
            raise SourceError(f"{name}: the files hold 0 records ({paths}). Pass non-empty files.")
        self._store = _Maps(paths, spec, length)

    @property
    def location(self) -> str:
        """The ``.npy`` files, shortened."""
        return files_location(list(self._store.paths.values()))

    @property
    def paths(self) -> dict[str, str]:
        """Field name -> ``.npy`` path."""
        return dict(self._store.paths)

    def read(self, indices: np.ndarray) -> Batch:
        """Returns the records at ``indices``, copying only their rows out of the maps."""
        indices = self._checked(indices)
        return {f: np.asarray(m[indices]) for f, m in self._store.get().items()}


def _field_paths(files: PathLike | Mapping[str, PathLike], name: str) -> dict[str, str]:
    if isinstance(files, Mapping):
        if not files:
            raise SourceError(f"{name}: no fields given. Pass {{'image': 'images.npy', ...}}.")
        paths = {str(field): as_path(path) for field, path in files.items()}
    else:
        path = as_path(files)
        if is_dir(path, name):
            paths = {_stem(f): f for f in list_dir(path, name, dirs=False) if f.endswith(".npy")}
            if not paths:
                raise SourceError(
                    f"{name}: the directory {path!r} holds no .npy files. Save one file per "
                    "field there (np.save(f'{dir}/image.npy', images)), or pass a dict."
                )
        else:
            paths = {_stem(path): path}
    for field, path in paths.items():
        if not is_file(path, name):
            raise SourceError(f"{name}: field {field!r}: {path!r} does not exist. Check the path.")
    return paths


def _stem(path: str) -> str:
    stem = path.rstrip("/").rsplit("/", 1)[-1]
    return stem[: -len(".npy")] if stem.endswith(".npy") else stem


def _open_rows(path: str) -> Any:
    """A local file memory-mapped; a URL as :class:`RemoteRows` (no map over a network)."""
    return RemoteRows(path) if is_url(path) else np.load(path, mmap_mode="r")


class RemoteRows:
    """A ``.npy`` file behind an fsspec URL, read row by row: each read fetches its rows.

    Contiguous rows of a read are fetched with one ranged read. The handle is opened on
    first use in each process (this object pickles as its path and header).
    """

    def __init__(self, path: str):
        self.path = path
        with open_file(path, "NpySource") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
            self.offset = f.tell()
        if fortran or dtype.hasobject:
            raise ValueError("rows can be read only from C-ordered numeric arrays")
        self.shape, self.dtype = tuple(shape), dtype
        self.row = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        self._local = threading.local()

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_local"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    def __getitem__(self, indices: np.ndarray) -> np.ndarray:
        handle = getattr(self._local, "handle", None)
        if handle is None:  # one handle per thread: reads seek, so threads must not share
            handle = self._local.handle = open_file(self.path, "NpySource")
        wanted = np.unique(indices)
        rows = np.empty((len(wanted), *self.shape[1:]), self.dtype)
        runs = np.split(np.arange(len(wanted)), np.flatnonzero(np.diff(wanted) != 1) + 1)
        for run in runs:
            first, count = int(wanted[run[0]]), len(run)
            handle.seek(self.offset + first * self.row)
            data = handle.read(count * self.row)
            rows[run] = np.frombuffer(data, self.dtype).reshape(count, *self.shape[1:])
        return rows[np.searchsorted(wanted, indices)]
