"""NpySource: ``.npy`` files, memory-mapped, one file per field."""

from __future__ import annotations

import os
from collections.abc import Mapping

import jax
import numpy as np

from feedax._errors import SourceError
from feedax._source import Batch, files_location
from feedax._sources._common import LazyHandles, PathLike, Spec, StoreSource, spec_repr


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
                    self.maps = {f: np.load(p, mmap_mode="r") for f, p in self.paths.items()}
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
                array = np.load(path, mmap_mode="r")
            except (OSError, ValueError) as error:
                raise SourceError(
                    f"{name}: cannot memory-map field {field!r} from {path!r}: "
                    f"{type(error).__name__}: {error}. It must be a .npy file of a numeric "
                    "dtype (object arrays cannot be mapped; store bytes in ArrayRecord instead)."
                ) from error
            if not isinstance(array, np.ndarray) or array.ndim == 0:
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
        paths = {str(field): os.fspath(path) for field, path in files.items()}
    else:
        path = os.fspath(files)
        if os.path.isdir(path):
            paths = {
                f[: -len(".npy")]: os.path.join(path, f)
                for f in sorted(os.listdir(path))
                if f.endswith(".npy")
            }
            if not paths:
                raise SourceError(
                    f"{name}: the directory {path!r} holds no .npy files. Save one file per "
                    "field there (np.save(f'{dir}/image.npy', images)), or pass a dict."
                )
        else:
            stem = os.path.basename(path)
            paths = {stem[: -len(".npy")] if stem.endswith(".npy") else stem: path}
    for field, path in paths.items():
        if not os.path.isfile(path):
            raise SourceError(f"{name}: field {field!r}: {path!r} does not exist. Check the path.")
    return paths
