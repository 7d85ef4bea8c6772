"""TokenSource: variable-length token sequences stored flat, as language-model corpora are.

The layout Megatron and Levanter use: one flat array of all tokens (``tokens.npy``) and
the offsets of each sequence in it (``offsets.npy``, ``N + 1`` values, starting at 0).
Both are memory-mapped, so a corpus larger than memory is read by slices, and a
sequence's length is known from the offsets alone, without reading a token.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from feedax._errors import SourceError
from feedax._ragged import Ragged
from feedax._source import Batch, Source, select
from feedax._sources._common import PathLike
from feedax._sources._files import local_only

TOKENS, OFFSETS = "tokens.npy", "offsets.npy"


class TokenSource(Source):
    """Token sequences of any length, held flat: ``tokens`` plus ``offsets``.

    Record ``i`` is ``tokens[offsets[i]:offsets[i + 1]]``. Its one field (``field``) is
    ragged: a pipeline packs such records into rows of a fixed length (see
    :class:`feedax.Pack`); :meth:`lengths` gives their lengths from the offsets alone.

    Args:
      tokens: the flat token array (1-D integers), or the path of a ``.npy`` file
        (memory-mapped).
      offsets: ``N + 1`` non-decreasing offsets into ``tokens`` (``offsets[0] == 0``,
        ``offsets[-1] == len(tokens)``), or the path of a ``.npy`` file.
      field: the name of the token field.
      name: a name used in error messages.

    Example:
      >>> import numpy as np, feedax as fx
      >>> src = fx.TokenSource(np.arange(10, dtype=np.int32), np.array([0, 3, 3, 10]))
      >>> len(src), src.lengths(np.arange(3)).tolist(), src.sequence(0).tolist()
      (3, [3, 0, 7], [0, 1, 2])
    """

    def __init__(
        self,
        tokens: np.ndarray | PathLike,
        offsets: np.ndarray | PathLike,
        *,
        field: str = "tokens",
        name: str = "TokenSource",
    ):
        self.name = name
        self.field = field
        self._flat = _Flat(_load(tokens, name, "tokens"), _load(offsets, name, "offsets"), name)
        self._where = "memory"
        if isinstance(tokens, str | os.PathLike):
            self._where = os.path.dirname(os.path.abspath(tokens))

    @property
    def location(self) -> str:
        """The folder of ``tokens.npy``, or ``"memory"``."""
        return self._where

    @classmethod
    def from_directory(cls, directory: PathLike, **kwargs: Any) -> TokenSource:
        """The corpus written by :func:`write_tokens` into ``directory``, memory-mapped."""
        path = os.fspath(directory)
        return cls(os.path.join(path, TOKENS), os.path.join(path, OFFSETS), **kwargs)

    def __len__(self) -> int:
        return len(self._flat.offsets) - 1

    @property
    def element_spec(self) -> dict[str, Any]:
        """``{field: Ragged(dtype)}``: one variable-length field."""
        return {self.field: Ragged(self._flat.tokens.dtype)}

    def lengths(self, indices: np.ndarray) -> np.ndarray:
        """The sequences' lengths (int64), from the offsets alone."""
        indices = np.asarray(indices, np.int64)
        self._check_indices(indices)
        offsets = self._flat.offsets
        return (offsets[indices + 1] - offsets[indices]).astype(np.int64)

    @property
    def size(self) -> int:
        """Tokens in the flat array (the positions :meth:`gather` takes are below it)."""
        return len(self._flat.tokens)

    def starts(self, indices: np.ndarray) -> np.ndarray:
        """Where each sequence starts in the flat token array."""
        return np.asarray(self._flat.offsets[np.asarray(indices, np.int64)], np.int64)

    def gather(self, flat: np.ndarray) -> np.ndarray:
        """The tokens at positions ``flat`` of the flat array (one vectorised gather)."""
        return np.take(self._flat.tokens, flat)  # faster than indexing, for any index dtype

    def sequence(self, index: int) -> np.ndarray:
        """Record ``index``'s tokens."""
        at = np.array([index])
        start, length = int(self.starts(at)[0]), int(self.lengths(at)[0])
        return np.asarray(self._flat.tokens[start : start + length])

    def read(self, indices: np.ndarray) -> Batch:
        """The records as an object array of token arrays (for inspection; packing is faster)."""
        out = np.empty(len(indices), dtype=object)
        out[:] = [self.sequence(int(i)) for i in np.asarray(indices, np.int64)]
        return {self.field: out}

    def metadata(self, indices: np.ndarray, columns: Sequence[str]) -> Batch:
        """``length`` (from the offsets) is the one metadata column."""
        return select(self, {"length": self.lengths(indices)}, columns)


class _Flat:
    """The two arrays, checked, held outside NNX's state."""

    def __init__(self, tokens: np.ndarray, offsets: np.ndarray, name: str):
        if tokens.ndim != 1 or not np.issubdtype(tokens.dtype, np.integer):
            raise SourceError(
                f"{name}: tokens must be a 1-D integer array, got {tokens.dtype} of shape "
                f"{tokens.shape}. Concatenate the sequences' token ids into one array."
            )
        if offsets.ndim != 1 or len(offsets) < 2 or not np.issubdtype(offsets.dtype, np.integer):
            raise SourceError(
                f"{name}: offsets must be a 1-D integer array of N + 1 >= 2 values, got "
                f"{offsets.dtype} of shape {offsets.shape}."
            )
        if offsets[0] != 0 or offsets[-1] != len(tokens) or (np.diff(offsets) < 0).any():
            raise SourceError(
                f"{name}: offsets must start at 0, never decrease and end at len(tokens) = "
                f"{len(tokens)}; got {offsets[:3].tolist()}...{offsets[-2:].tolist()}. Write the "
                "corpus with fx.write_tokens."
            )
        self.tokens = tokens
        self.offsets = offsets

    def __repr__(self) -> str:
        return f"Flat({len(self.tokens)} tokens, {len(self.offsets) - 1} sequences)"


def _load(value: Any, name: str, what: str) -> np.ndarray:
    if isinstance(value, str | os.PathLike):
        local_only(os.fspath(value), name, "its token files are memory-mapped")
        if not os.path.isfile(value):
            raise SourceError(f"{name}: no {what} file at {os.fspath(value)!r}. Check the path.")
        return np.load(value, mmap_mode="r")
    return np.asarray(value)


def write_tokens(
    directory: PathLike, sequences: Iterable[Sequence[int] | np.ndarray], *, dtype: Any = np.int32
) -> TokenSource:
    """Writes token sequences as ``tokens.npy`` + ``offsets.npy`` and returns their source.

    The sequences are streamed to disk (never all held in memory) and the files are
    memory-mapped by :meth:`TokenSource.from_directory`.

    Args:
      directory: created if needed.
      sequences: each a 1-D sequence of token ids.
      dtype: the token dtype (int32 by default; uint16 halves a small vocabulary's size).

    Example:
      >>> import tempfile, feedax as fx
      >>> src = fx.write_tokens(tempfile.mkdtemp(), [[1, 2, 3], [4], [5, 6]])
      >>> src.lengths([0, 1, 2]).tolist()
      [3, 1, 2]
    """
    path = os.fspath(directory)
    os.makedirs(path, exist_ok=True)
    raw = os.path.join(path, TOKENS + ".raw")
    offsets = [0]
    with open(raw, "wb") as out:
        for i, sequence in enumerate(sequences):
            values = np.asarray(sequence)
            if values.ndim != 1 or (values.size and not np.issubdtype(values.dtype, np.integer)):
                raise SourceError(
                    f"write_tokens: sequence {i} must be a 1-D sequence of integer token ids, got "
                    f"{values.dtype} of shape {values.shape}."
                )
            out.write(values.astype(dtype).tobytes())
            offsets.append(offsets[-1] + len(values))
    tokens = np.memmap(raw, dtype=dtype, mode="r", shape=(offsets[-1],)) if offsets[-1] else None
    np.save(os.path.join(path, TOKENS), np.zeros(0, dtype) if tokens is None else tokens)
    del tokens
    os.remove(raw)
    np.save(os.path.join(path, OFFSETS), np.asarray(offsets, np.int64))
    return TokenSource.from_directory(path)


def is_token_source(source: Any) -> bool:
    """Whether ``source`` holds token sequences a pipeline can pack (lengths, starts, gather)."""
    from feedax._sources.mix import Mix

    if isinstance(source, Mix):
        return all(is_token_source(s) for s in source.sources)
    return all(callable(getattr(source, m, None)) for m in ("lengths", "starts", "gather"))
