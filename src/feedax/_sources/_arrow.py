"""Arrow columns as NumPy arrays, one row per record (shared by Parquet and Hugging Face)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np

from feedax._ragged import Ragged
from feedax._sources._common import OBJECT


class RowError(Exception):
    """A column cannot become one array: ``row`` (0-based, in the converted table) is bad."""

    def __init__(self, row: int, cause: str):
        super().__init__(cause)
        self.row = row
        self.cause = cause


def column_to_numpy(column: Any) -> np.ndarray:
    """An Arrow column (``Array`` or ``ChunkedArray``) as an array ``(rows, *record shape)``.

    Primitive columns without nulls become views of the Arrow buffers (zero-copy). Nested
    lists (``list`` or ``fixed_size_list``, also inside extension types such as the
    Hugging Face ``Array3D``) become extra dimensions and must have the same length in
    every row. Binary and string columns, and structs with a ``bytes`` child (the Hugging
    Face ``Image`` feature) become object arrays of ``bytes`` / ``str``.

    Raises:
      RowError: a null value, or a list whose length differs from the first row's.
    """
    import pyarrow as pa

    array = _single_array(column, pa)
    rows = len(array)
    shape = [rows]
    while True:
        array = _storage(array, pa)
        kind = array.type
        if not (
            pa.types.is_list(kind)
            or pa.types.is_large_list(kind)
            or pa.types.is_fixed_size_list(kind)
        ):
            break
        per_row = int(np.prod(shape[1:], dtype=np.int64))
        if array.null_count:
            first = int(np.flatnonzero(array.is_null().to_numpy(zero_copy_only=False))[0])
            raise RowError(first // per_row, "holds a null list; expected a value in every row")
        if pa.types.is_fixed_size_list(kind):
            length = kind.list_size
        else:
            lengths = array.value_lengths().to_numpy(zero_copy_only=False)
            length = int(lengths[0]) if len(lengths) else 0
            bad = np.flatnonzero(lengths != length)
            if bad.size:
                at = int(bad[0])
                raise RowError(
                    at // per_row,
                    f"has a list of {int(lengths[at])} values along axis {len(shape) - 1} of "
                    f"the record, where the first record has {length}; every record needs the "
                    "same shape",
                )
        shape.append(length)
        array = array.flatten()
    values = _leaf(array, pa, per_row=int(np.prod(shape[1:], dtype=np.int64)))
    return values.reshape(shape)


def columns_to_numpy(
    table: Any, columns: Sequence[str], spec: Mapping[str, jax.ShapeDtypeStruct]
) -> dict[str, np.ndarray]:
    """The ``columns`` of an Arrow table as arrays, each fitted to ``spec`` where it names it.

    Raises:
      RowError: a column cannot become one array (see :func:`column_to_numpy`) or does not
        fit (see :func:`fit_column`); its cause starts with the column's name.
    """
    out = {}
    for column in columns:
        try:
            want = spec.get(column)
            if isinstance(want, Ragged):
                out[column] = ragged_column(table.column(column), want)
                continue
            values = column_to_numpy(table.column(column))
            out[column] = values if want is None else fit_column(values, want)
        except RowError as error:
            raise RowError(error.row, f"column {column!r} {error.cause}") from error
    return out


def _single_array(column: Any, pa: Any) -> Any:
    if isinstance(column, pa.ChunkedArray):
        if column.num_chunks == 1:
            return column.chunk(0)
        if column.num_chunks == 0:
            return pa.array([], type=column.type)
        return column.combine_chunks()
    return column


def _storage(array: Any, pa: Any) -> Any:
    if isinstance(array, pa.ExtensionArray):
        return array.storage
    if pa.types.is_dictionary(array.type):
        return array.dictionary_decode()
    return array


def _leaf(array: Any, pa: Any, *, per_row: int) -> np.ndarray:
    kind = array.type
    if pa.types.is_struct(kind) and kind.get_field_index("bytes") >= 0:
        data = array.field("bytes").to_numpy(zero_copy_only=False)
        if kind.get_field_index("path") >= 0:  # e.g. HF Image() stored as a path only
            paths = array.field("path").to_numpy(zero_copy_only=False)
            data = np.where(_is_none(data), paths, data)
        array_values = np.asarray(data, dtype=object)
        missing = np.flatnonzero(_is_none(array_values))
        if missing.size:
            raise RowError(int(missing[0]) // max(per_row, 1), "holds neither bytes nor a path")
        return array_values
    if array.null_count:
        first = int(np.flatnonzero(array.is_null().to_numpy(zero_copy_only=False))[0])
        raise RowError(
            first // max(per_row, 1), "holds a null value; expected a value in every row"
        )
    values = array.to_numpy(zero_copy_only=False)
    if values.dtype.kind in "OSU":
        return np.asarray(values, dtype=object)
    return values


def _is_none(values: np.ndarray) -> np.ndarray:
    return np.fromiter((v is None for v in values), dtype=bool, count=len(values))


def fit_column(values: np.ndarray, want: jax.ShapeDtypeStruct) -> np.ndarray:
    """``values`` (rows, ...) checked against, and reshaped to, the declared spec of a record.

    A column whose records have the declared number of elements but another shape (e.g. a
    flat list of 3072 values declared as ``(32, 32, 3)``: Parquet has no tensor type) is
    reshaped.

    Raises:
      RowError: the dtype or the number of elements per record differs from ``want``.
    """
    got = values.shape[1:]
    if (values.dtype == OBJECT) != (want.dtype == OBJECT) or (
        want.dtype != OBJECT and values.dtype != want.dtype
    ):
        raise RowError(0, f"has dtype {values.dtype}, but the element_spec says {want.dtype}")
    if got != tuple(want.shape):
        if np.prod(got, dtype=np.int64) != np.prod(want.shape, dtype=np.int64):
            raise RowError(0, f"has shape {got} per record, but the element_spec says {want.shape}")
        values = values.reshape(len(values), *want.shape)
    return values


def ragged_column(column: Any, want: Ragged) -> np.ndarray:
    """An Arrow list column as an object array of 1-D arrays: views of its values buffer.

    One NumPy view per record, sliced by the list offsets (no Python object per value).

    Raises:
      ValueError: (as ``RowError`` by the caller) a null list, or values of another dtype.
    """
    import pyarrow as pa

    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if isinstance(array, pa.ExtensionArray):
        array = array.storage
    if not (pa.types.is_list(array.type) or pa.types.is_large_list(array.type)):
        raise RowError(0, f"has type {array.type}, but the element_spec says {want}: a list")
    if array.null_count:
        first = int(np.flatnonzero(array.is_null().to_numpy(zero_copy_only=False))[0])
        raise RowError(first, "holds a null list; expected a list in every row")
    offsets = array.offsets.to_numpy()
    values = array.values.to_numpy(zero_copy_only=False)
    if values.dtype != want.dtype:
        if not np.can_cast(values.dtype, want.dtype, "safe"):
            raise RowError(0, f"holds {values.dtype} values, but the element_spec says {want}")
        values = values.astype(want.dtype)
    out = np.empty(len(array), dtype=object)
    out[:] = [values[a:b] for a, b in itertools.pairwise(offsets)]
    return out
