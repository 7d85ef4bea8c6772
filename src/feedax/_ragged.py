"""The spec of a variable-length field."""

from __future__ import annotations

from typing import Any

import numpy as np


class Ragged:
    """The spec of a variable-length field: a leading axis of any length, then ``shape``.

    It stands in a source's ``element_spec`` for such fields; a pipeline packs them
    (``Pipeline(pack=fx.Pack(...))``) into fixed-length rows.

    Attributes:
      dtype: the values' dtype.
      shape: the shape of each value after the variable axis (``()`` for tokens).
    """

    def __init__(self, dtype: Any, shape: tuple[int, ...] = ()):
        self.dtype = np.dtype(dtype)
        self.shape = tuple(shape)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ragged) and (self.dtype, self.shape) == (other.dtype, other.shape)

    def __hash__(self) -> int:
        return hash((self.dtype, self.shape))

    def __repr__(self) -> str:
        return f"Ragged({self.dtype}, (None, {', '.join(map(str, self.shape))}))"
