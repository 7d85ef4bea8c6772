"""Helpers shared by the file-backed sources: optional imports, paths, lazy handles, checks."""

from __future__ import annotations

import glob
import importlib
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from types import ModuleType
from typing import Any

import jax
import numpy as np

from feedax._errors import SourceError

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


def expand_paths(paths: PathLike | Iterable[PathLike], *, what: str, user: str) -> list[str]:
    """Files named by ``paths``: a file, a glob pattern, a directory, or a list of those.

    A directory contributes its files whose name contains ``what`` (e.g. ``".parquet"``),
    sorted; a glob pattern contributes its sorted matches. The result keeps the order of
    ``paths``, which fixes the record indices.
    """
    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    if not items:
        raise SourceError(f"{user}: no files given. Pass a path, a glob pattern or a list.")
    files: list[str] = []
    for item in items:
        path = os.fspath(item)
        if os.path.isdir(path):
            found = sorted(
                os.path.join(path, f)
                for f in os.listdir(path)
                if what in f and os.path.isfile(os.path.join(path, f))
            )
        elif glob.has_magic(path):
            found = sorted(f for f in glob.glob(path) if os.path.isfile(f))
        elif os.path.isfile(path):
            found = [path]
        else:
            raise SourceError(f"{user}: {path!r} does not exist. Check the path.")
        if not found:
            raise SourceError(
                f"{user}: {path!r} matches no {what} file. Check the path or pattern."
            )
        files.extend(found)
    return files


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
        out[str(field)] = jax.ShapeDtypeStruct(tuple(s.shape), np.dtype(s.dtype))
    return out


def record_error(user: str, index: int, file: str, cause: str, fix: str) -> SourceError:
    """An error naming the source, the record index, the file, the cause and the fix."""
    return SourceError(f"{user}: record index {index} (file {file!r}): {cause}. {fix}")


def fit_value(value: Any, want: jax.ShapeDtypeStruct) -> tuple[Any, str | None]:
    """``value`` as it goes into a batch of ``want``, or the reason it does not fit."""
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
    return {f: np.empty((k, *s.shape), s.dtype) for f, s in spec.items()}


def group_by(owner: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """``(owner, rows)`` for each distinct value of ``owner``, rows in their original order."""
    order = np.argsort(owner, kind="stable")
    values, starts = np.unique(owner[order], return_index=True)
    return [(int(v), rows) for v, rows in zip(values, np.split(order, starts[1:]), strict=True)]


def spec_repr(spec: Mapping[str, jax.ShapeDtypeStruct]) -> str:
    """A short text for a spec, as ``{field: dtype[shape]}``."""
    return ", ".join(f"{k}: {v.dtype}{list(v.shape)}" for k, v in spec.items())
