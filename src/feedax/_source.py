"""Sources: where records come from, addressed by integer index."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from flax import nnx

from feedax._errors import SourceError

Batch = dict[str, np.ndarray]


class Source(nnx.Module, abc.ABC):
    """Base of random-access sources: ``len()`` records, read a list of indices at once.

    A source holds no training state, so it contributes nothing to ``nnx.state`` of
    the pipeline; the dataset itself never enters a checkpoint.
    """

    name: str

    @abc.abstractmethod
    def __len__(self) -> int:
        """The number of records."""

    @property
    @abc.abstractmethod
    def element_spec(self) -> dict[str, jax.ShapeDtypeStruct]:
        """The shape and dtype of each field of one record."""

    @abc.abstractmethod
    def read(self, indices: np.ndarray) -> Batch:
        """Returns the records at ``indices`` (int64, shape ``(k,)``), stacked per field."""

    def _check_indices(self, indices: np.ndarray) -> None:
        n = len(self)
        if indices.size and (indices.min() < 0 or indices.max() >= n):
            bad = indices[(indices < 0) | (indices >= n)][0]
            raise IndexError(
                f"{self.name}: record index {int(bad)} is out of range; the source has {n} "
                f"records (valid indices 0..{n - 1}). Check the indices you pass to read()."
            )


class _Columns:
    """Holds a source's arrays outside NNX's state, so the data never enters a checkpoint."""

    def __init__(self, columns: dict[str, np.ndarray]):
        self.columns = columns

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}: {v.dtype}{list(v.shape)}" for k, v in self.columns.items())
        return f"Columns({fields})"


class ArraySource(Source):
    """Records held in memory as a dict of arrays, one row per record.

    Arrays are kept as given (NumPy arrays and memory maps are not copied); reading a
    batch is one vectorised gather per field.

    Args:
      data: field name -> array; all arrays share their first dimension, the record count.
      name: a name used in error messages.

    Example:
      >>> import numpy as np
      >>> src = ArraySource({"image": np.zeros((10, 4, 4, 3), np.uint8), "label": np.arange(10)})
      >>> len(src), src.read(np.array([3, 1]))["label"].tolist()
      (10, [3, 1])
    """

    def __init__(self, data: Mapping[str, Any], *, name: str = "ArraySource"):
        self.name = name
        if not isinstance(data, Mapping) or not data:
            raise SourceError(
                f"{name}: expected a non-empty dict of field name -> array, got "
                f"{type(data).__name__} {data!r:.80}. "
                "Pass e.g. {'image': images, 'label': labels}."
            )
        columns: dict[str, np.ndarray] = {}
        for field, value in data.items():
            if not isinstance(field, str):
                raise SourceError(f"{name}: field names must be strings, got {field!r}.")
            array = value if isinstance(value, np.ndarray) else np.asarray(value)
            if array.ndim == 0:
                raise SourceError(
                    f"{name}: field {field!r} is a scalar; expected an array whose first "
                    "dimension indexes records. Wrap per-record scalars in a 1-D array."
                )
            columns[field] = array
        lengths = {field: len(array) for field, array in columns.items()}
        if len(set(lengths.values())) != 1:
            raise SourceError(
                f"{name}: all fields must have the same number of records (first dimension), "
                f"got {lengths}. Trim or fix the arrays so their lengths agree."
            )
        if next(iter(lengths.values())) == 0:
            raise SourceError(f"{name}: the source is empty (0 records). Pass at least one record.")
        self._columns = _Columns(columns)

    def __len__(self) -> int:
        return len(next(iter(self._columns.columns.values())))

    @property
    def element_spec(self) -> dict[str, jax.ShapeDtypeStruct]:
        """The shape and dtype of each field of one record."""
        return {
            k: jax.ShapeDtypeStruct(v.shape[1:], v.dtype) for k, v in self._columns.columns.items()
        }

    def read(self, indices: np.ndarray) -> Batch:
        """Returns the records at ``indices`` stacked per field (one gather per field)."""
        indices = np.asarray(indices, dtype=np.int64)
        self._check_indices(indices)
        return {k: v[indices] for k, v in self._columns.columns.items()}
