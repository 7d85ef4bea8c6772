"""HFSource: a Hugging Face ``datasets.Dataset`` (map-style), read through Arrow."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np

from feedax._errors import SourceError
from feedax._ragged import Ragged
from feedax._source import Batch
from feedax._sources._arrow import RowError, columns_to_numpy
from feedax._sources._common import (
    StoreSource,
    batch_spec,
    check_declared,
    empty_batch,
    record_error,
    require,
    spec_repr,
)


class _Table:
    """The dataset formatted as Arrow (kept out of NNX state; pickles as the dataset does)."""

    def __init__(self, dataset: Any, columns: list[str], file: str):
        self.dataset = dataset
        self.columns = columns
        self.file = file
        self.spec: dict[str, jax.ShapeDtypeStruct] = {}
        self.declared: dict[str, jax.ShapeDtypeStruct] = {}

    def __len__(self) -> int:
        return len(self.dataset)

    def __repr__(self) -> str:
        return f"HFTable({len(self.dataset)} rows, {spec_repr(self.spec)})"


class HFSource(StoreSource[_Table]):
    """Rows of a Hugging Face ``datasets.Dataset``, read by index through Arrow.

    A batch is one Arrow ``take`` of the selected columns (honouring the dataset's own
    index mapping after ``select`` / ``shuffle`` / ``filter``), converted to NumPy
    without a Python object per value: primitive columns are views of Arrow buffers, and
    nested lists of fixed length (``Array2D``/``Array3D`` features, or
    ``Sequence``/``List`` features of equal length) become extra dimensions. A dataset
    loaded with ``load_from_disk`` (or ``load_dataset``) is memory-mapped, and pickles to
    process workers as its file paths; one built in memory is copied to each of them.
    ``Image()`` columns become ``object`` fields of encoded bytes (or paths) for
    :class:`feedax.DecodeImage`; binary and string columns are ``object`` too.

    Args:
      dataset: a map-style ``datasets.Dataset`` (pick a split of a ``DatasetDict``).
      columns: the columns to read (default: all).
      element_spec: declared field -> ``jax.ShapeDtypeStruct`` for some or all columns
        (``fx.Ragged(dtype)`` for a sequence column of any length per row, e.g. token ids),
        checked on every read (flat lists are reshaped to a declared shape of the same
        size); the others are taken from row 0.
      name: a name used in error messages.

    Example:
      >>> import numpy as np, datasets, feedax as fx
      >>> ds = datasets.Dataset.from_dict({"x": np.arange(10.0), "label": np.arange(10)})
      >>> src = fx.HFSource(ds, columns=["label"])
      >>> len(src), src.read(np.array([7, 2]))["label"].tolist()
      (10, [7, 2])
    """

    def __init__(
        self,
        dataset: Any,
        columns: Sequence[str] | None = None,
        *,
        element_spec: Mapping[str, Any] | None = None,
        name: str = "HFSource",
    ):
        self.name = name
        (datasets,) = require(["datasets"], extra="hf", user=name)
        if isinstance(dataset, datasets.DatasetDict):
            raise SourceError(
                f"{name}: got a DatasetDict with splits {list(dataset)}; pick one: "
                f"HFSource(dataset[{next(iter(dataset), 'train')!r}])."
            )
        if not isinstance(dataset, datasets.Dataset):
            raise SourceError(
                f"{name}: expected a map-style datasets.Dataset, got {type(dataset).__name__}. "
                "An IterableDataset has no random access: load it with load_dataset(..., "
                "streaming=False) or save_to_disk/load_from_disk first."
            )
        names = list(dataset.column_names)
        columns = names if columns is None else [str(c) for c in columns]
        missing = [c for c in columns if c not in names]
        if missing or not columns:
            raise SourceError(
                f"{name}: columns {missing or columns} are not in the dataset, which has "
                f"{names}. Pick existing columns."
            )
        if len(dataset) == 0:
            raise SourceError(f"{name}: the dataset is empty (0 rows). Pass a non-empty dataset.")
        files = [f["filename"] for f in dataset.cache_files]
        file = files[0] if len(files) == 1 else f"{len(files)} Arrow files" if files else "<memory>"
        self._store = _Table(dataset.with_format("arrow", columns=columns), columns, file)
        self._where = file
        if element_spec is not None:
            self._store.declared = check_declared(
                element_spec, columns, user=name, among="the columns"
            )
        self._store.spec = batch_spec(self._take(np.zeros(1, np.int64)))
        declared = self._store.declared.items()
        self._store.spec.update({k: v for k, v in declared if isinstance(v, Ragged)})

    @property
    def location(self) -> str:
        """The dataset's Arrow cache file(s), or ``"<memory>"``."""
        return self._where

    @property
    def columns(self) -> list[str]:
        """The selected columns (the record's fields)."""
        return list(self._store.columns)

    def read(self, indices: np.ndarray) -> Batch:
        """Returns the rows at ``indices``: one Arrow gather, then a conversion per column."""
        return self._take(self._checked(indices))

    def _take(self, indices: np.ndarray) -> Batch:
        table = self._store
        if not len(indices):
            return empty_batch(table.spec, 0)
        try:
            return columns_to_numpy(
                table.dataset[indices], table.columns, {**table.spec, **table.declared}
            )
        except RowError as error:
            raise record_error(
                self.name,
                int(indices[error.row]),
                table.file,
                error.cause,
                "Fix the dataset (e.g. dataset.map to pad or resize), or declare the column's "
                "element_spec to match it.",
            ) from error
