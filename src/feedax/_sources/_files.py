"""Where files are: local paths (the fast path) or fsspec URLs (``gs://``, ``s3://``, ...).

A local path goes through ``os`` and ``open`` as before; anything with a protocol
(``memory://``, ``gs://``, ``s3://``, ``hf://``, ``file://``) goes through fsspec, whose
back-ends are extras (``feedax[gcs]``, ``feedax[s3]``, ``feedax[hf]``). fsspec ``OpenFile``
objects (``fsspec.open(...)``, ``fsspec.open_files(...)``) are taken as their URLs.
Listing and globbing happen once, when a source is built; files are opened lazily, per
process, when records are read.
"""

from __future__ import annotations

import glob
import os
from typing import Any

from feedax._errors import SourceError
from feedax._sources._common import require

PathLike = str | os.PathLike[str]


def is_url(path: str) -> bool:
    """Whether ``path`` names a file through fsspec (it has a protocol, ``proto://``)."""
    return "://" in path


def as_path(item: Any) -> str:
    """A path or URL as ``str``; an fsspec ``OpenFile`` as its URL."""
    full_name = getattr(item, "full_name", None)  # fsspec.core.OpenFile
    if isinstance(full_name, str) and hasattr(item, "fs"):
        return full_name
    return os.fspath(item)


def expand_paths(paths: Any, *, what: str, user: str) -> list[str]:
    """Files named by ``paths``: a file, a glob pattern, a directory, or a list of those.

    Each may be a local path, an fsspec URL or an fsspec ``OpenFile``. A directory
    contributes its files whose name contains ``what`` (e.g. ``".parquet"``), sorted; a
    glob pattern contributes its sorted matches. The result keeps the order of ``paths``,
    which fixes the record indices. Listing happens here, once.
    """
    single = isinstance(paths, str | os.PathLike) or hasattr(paths, "full_name")
    items = [paths] if single else list(paths)
    if not items:
        raise SourceError(f"{user}: no files given. Pass a path, a glob pattern or a list.")
    files: list[str] = []
    for item in items:
        path = as_path(item)
        if has_magic(path):
            found = glob_files(path, user)
        elif is_dir(path, user):
            found = [f for f in list_dir(path, user, dirs=False) if what in _name(f)]
        elif is_file(path, user):
            found = [path]
        else:
            raise SourceError(f"{user}: {path!r} does not exist. Check the path.")
        if not found:
            raise SourceError(
                f"{user}: {path!r} matches no {what} file. Check the path or pattern."
            )
        files.extend(found)
    return files


def local_only(path: str, user: str, why: str) -> None:
    """Raises ``SourceError`` for a URL where a source needs a local file."""
    if is_url(path):
        raise SourceError(
            f"{user}: {path!r} is not a local path; {why}. Copy the files to a local disk "
            "first (fsspec.get, gsutil cp, ...)."
        )


def _name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def _fs(url: str, user: str) -> tuple[Any, str]:
    (fsspec,) = require(["fsspec"], extra="fs", user=user)
    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as error:  # e.g. gs:// without gcsfs
        protocol = url.split("://", 1)[0]
        extra = {"gs": "gcs", "gcs": "gcs", "s3": "s3", "hf": "hf"}.get(protocol, "fs")
        raise ImportError(
            f"{user}: cannot open {url!r}: {error}. Install the back-end of {protocol}://, e.g. "
            f"pip install 'feedax[{extra}]'"
        ) from error


def _url(fs: Any, path: str) -> str:
    return str(fs.unstrip_protocol(path))


def is_file(path: str, user: str) -> bool:
    """Whether ``path`` is an existing file."""
    if not is_url(path):
        return os.path.isfile(path)
    fs, stripped = _fs(path, user)
    return bool(fs.isfile(stripped))


def is_dir(path: str, user: str) -> bool:
    """Whether ``path`` is an existing directory."""
    if not is_url(path):
        return os.path.isdir(path)
    fs, stripped = _fs(path, user)
    return bool(fs.isdir(stripped))


def list_dir(path: str, user: str, *, dirs: bool) -> list[str]:
    """The sorted full paths of the sub-directories (``dirs``) or files directly in ``path``."""
    if not is_url(path):
        entries = [os.path.join(path, e) for e in os.listdir(path)]
        return sorted(e for e in entries if (os.path.isdir(e) if dirs else os.path.isfile(e)))
    fs, stripped = _fs(path, user)
    kind = "directory" if dirs else "file"
    return sorted(_url(fs, e["name"]) for e in fs.ls(stripped, detail=True) if e["type"] == kind)


def find(path: str, user: str) -> list[str]:
    """Every file under ``path``, recursively, sorted (following links for local folders)."""
    if not is_url(path):
        found = []
        for directory, subdirs, files in os.walk(path, followlinks=True):
            subdirs.sort()
            found += [os.path.join(directory, f) for f in sorted(files)]
        return found
    fs, stripped = _fs(path, user)
    return [_url(fs, p) for p in sorted(fs.find(stripped))]


def glob_files(pattern: str, user: str) -> list[str]:
    """The files matching a glob pattern, sorted."""
    if not is_url(pattern):
        return sorted(f for f in glob.glob(pattern) if os.path.isfile(f))
    fs, stripped = _fs(pattern, user)
    return sorted(_url(fs, p) for p in fs.glob(stripped) if fs.isfile(p))


def has_magic(path: str) -> bool:
    """Whether ``path`` is a glob pattern."""
    return glob.has_magic(path)


def size(path: str, user: str) -> int:
    """The size of a file in bytes."""
    if not is_url(path):
        return os.path.getsize(path)
    fs, stripped = _fs(path, user)
    return int(fs.size(stripped))


def open_file(path: str, user: str = "feedax") -> Any:
    """``path`` opened for binary reading (seekable); the caller closes it."""
    if not is_url(path):
        return open(path, "rb")
    fs, stripped = _fs(path, user)
    return fs.open(stripped, "rb")
