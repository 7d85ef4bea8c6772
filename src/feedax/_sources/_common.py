"""Helpers shared by the file-backed sources: optional imports, paths, lazy handles, checks."""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any, Generic, Protocol, TypeVar

import jax
import numpy as np

from feedax._errors import SourceError
from feedax._ragged import Ragged
from feedax._source import Source, files_location

PathLike = str | os.PathLike[str]
Spec = dict[str, jax.ShapeDtypeStruct]

OBJECT = np.dtype(object)
"""The dtype of path, bytes and string fields: a host stage must turn them into arrays."""


def require(modules: Sequence[str], *, extra: str, user: str) -> list[ModuleType]:
    """Imports optional ``modules`` for ``user``, or says which feedax extra installs them.

    Args:
      modules: module names, imported in order (a parent before its submodules).
      extra: the feedax extra that installs them, e.g. ``"parquet"``.
      user: who needs them, for the message.

    Raises:
      ImportError: naming the missing module and ``pip install 'feedax[extra]'``.
    """
    loaded = []
    for module in modules:
        try:
            loaded.append(importlib.import_module(module))
        except ImportError as error:
            raise ImportError(
                f"{user} needs the optional package {module.split('.')[0]!r}, which is not "
                f"installed ({error}). Install it with: pip install 'feedax[{extra}]'"
            ) from error
    return loaded


class LazyHandles:
    """Per-process state (open files, readers, caches) that is never pickled.

    Process workers receive a pickled source; its handles are dropped on the way and
    reopened on first use in the worker. Subclasses list their transient attributes in
    ``_transient`` and create them in ``_reset``.
    """

    _transient: tuple[str, ...] = ("lock",)

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in self._transient}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset()


class Store(Protocol):
    """What a :class:`StoreSource` needs of its store: the record count and ``spec``."""

    spec: Spec

    def __len__(self) -> int: ...


StoreT = TypeVar("StoreT", bound=Store)


class StoreSource(Source, Generic[StoreT]):
    """A source whose record count and element_spec live in its store, ``self._store``.

    The store is a plain object, so it stays out of NNX state (see :class:`LazyHandles`
    for one that reopens its files in each process).
    """

    _store: StoreT

    def __len__(self) -> int:
        return len(self._store)

    @property
    def element_spec(self) -> dict[str, jax.ShapeDtypeStruct]:
        """The shape and dtype of each field of one record (``object`` for bytes and strings)."""
        return dict(self._store.spec)

    def _checked(self, indices: np.ndarray) -> np.ndarray:
        """``indices`` as int64, each checked to name a record."""
        indices = np.asarray(indices, dtype=np.int64)
        self._check_indices(indices)
        return indices


class FileStore(Store, Protocol):
    """A store of records from several files, in index order."""

    files: list[str]


FileStoreT = TypeVar("FileStoreT", bound=FileStore)


class FilesSource(StoreSource[FileStoreT]):
    """A :class:`StoreSource` whose records come from ``self._store.files``, in index order."""

    @property
    def files(self) -> list[str]:
        """The files, in index order."""
        return list(self._store.files)

    @property
    def location(self) -> str:
        """The files, shortened: the first and how many more."""
        return files_location(self._store.files)

    def _record_error(self, index: int, file: int, cause: str, fix: str) -> SourceError:
        """:func:`record_error` for record ``index`` of ``files[file]``."""
        return record_error(self.name, index, self._store.files[file], cause, fix)


def starts_of(counts: Sequence[int] | np.ndarray) -> np.ndarray:
    """Where each part's records start, then the total: ``[0, c0, c0 + c1, ...]`` (int64)."""
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def locate(starts: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each index, the part holding it and its position there (``starts``: :func:`starts_of`).

    An empty part holds no index: the part found is the last one starting at or before it.
    """
    part = np.searchsorted(starts, indices, side="right") - 1
    return part, indices - starts[part]


def span(starts: np.ndarray, part: int) -> str:
    """``"records FIRST to LAST"``: the indices of ``part`` (``starts``: :func:`starts_of`)."""
    return f"records {int(starts[part])} to {int(starts[part + 1]) - 1}"


def spec_of(value: Any) -> jax.ShapeDtypeStruct:
    """The spec of one field value: an array's shape and dtype, or object for bytes/str/paths."""
    if isinstance(value, bytes | str | os.PathLike):
        return jax.ShapeDtypeStruct((), OBJECT)
    array = np.asarray(value)
    dtype = OBJECT if array.dtype.kind in "OSUV" else array.dtype
    return jax.ShapeDtypeStruct(array.shape, dtype)


def check_spec(spec: Mapping[str, Any], *, user: str) -> Spec:
    """Validates a user-declared element_spec: field -> ``jax.ShapeDtypeStruct``."""
    if not isinstance(spec, Mapping) or not spec:
        raise SourceError(
            f"{user}: element_spec must be a non-empty dict of field -> jax.ShapeDtypeStruct, got "
            f"{type(spec).__name__}."
        )
    out: Spec = {}
    for field, s in spec.items():
        if not hasattr(s, "shape") or not hasattr(s, "dtype"):
            raise SourceError(
                f"{user}: element_spec[{field!r}] must have a shape and dtype (e.g. "
                f"jax.ShapeDtypeStruct((32, 32, 3), np.uint8)), got {s!r}."
            )
        if isinstance(s, Ragged):
            out[str(field)] = s  # type: ignore[assignment]  # a ragged field keeps its spec
            continue
        out[str(field)] = jax.ShapeDtypeStruct(tuple(s.shape), np.dtype(s.dtype))
    return out


def check_declared(
    spec: Mapping[str, Any], columns: Sequence[str], *, user: str, among: str
) -> Spec:
    """:func:`check_spec`, and every declared field must be one of ``columns``.

    ``among`` names the columns in the message, e.g. ``"the selected columns"``.
    """
    declared = check_spec(spec, user=user)
    unknown = sorted(set(declared) - set(columns))
    if unknown:
        raise SourceError(
            f"{user}: element_spec names fields {unknown} that are not among {among} "
            f"{list(columns)}. Fix the names or add them to columns=."
        )
    return declared


def batch_spec(batch: Mapping[str, np.ndarray]) -> Spec:
    """The spec of one record of ``batch`` (field -> array, one row per record)."""
    return {f: jax.ShapeDtypeStruct(v.shape[1:], v.dtype) for f, v in batch.items()}


def record_error(user: str, index: int, file: str, cause: str, fix: str) -> SourceError:
    """An error naming the source, the record index, the file, the cause and the fix."""
    return SourceError(f"{user}: record index {index} (file {file!r}): {cause}. {fix}")


def fit_value(value: Any, want: jax.ShapeDtypeStruct) -> tuple[Any, str | None]:
    """``value`` as it goes into a batch of ``want``, or the reason it does not fit."""
    if isinstance(want, Ragged):
        array = np.asarray(value)
        if array.ndim != 1 + len(want.shape) or array.shape[1:] != want.shape:
            return None, f"has shape {array.shape}, but the element_spec says {want}"
        if array.dtype != want.dtype and not np.can_cast(array.dtype, want.dtype, "safe"):
            return None, f"has dtype {array.dtype}, but the element_spec says {want}"
        return array.astype(want.dtype, copy=False), None
    if want.dtype == OBJECT:
        if want.shape == () and isinstance(value, bytes | str | os.PathLike):
            return value, None
        array = np.asarray(value, dtype=object)
        if array.shape != want.shape:
            return None, f"has shape {array.shape}, but the element_spec says {want.shape}"
        return array, None
    array = np.asarray(value)
    if array.shape != want.shape:
        return None, f"has shape {array.shape}, but the element_spec says {want.shape}"
    if array.dtype != want.dtype:
        return None, f"has dtype {array.dtype}, but the element_spec says {want.dtype}"
    return array, None


def empty_batch(spec: Mapping[str, jax.ShapeDtypeStruct], k: int) -> dict[str, np.ndarray]:
    """Uninitialised output arrays for ``k`` records of ``spec``."""
    return {
        f: np.empty(k, object) if isinstance(s, Ragged) else np.empty((k, *s.shape), s.dtype)
        for f, s in spec.items()
    }


def group_by(owner: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """``(owner, rows)`` for each distinct value of ``owner``, rows in their original order."""
    order = np.argsort(owner, kind="stable")
    values, starts = np.unique(owner[order], return_index=True)
    return [(int(v), rows) for v, rows in zip(values, np.split(order, starts[1:]), strict=True)]


def spec_repr(spec: Mapping[str, jax.ShapeDtypeStruct]) -> str:
    """A short text for a spec, as ``{field: dtype[shape]}``."""
    return ", ".join(f"{k}: {v.dtype}{list(v.shape)}" for k, v in spec.items())
