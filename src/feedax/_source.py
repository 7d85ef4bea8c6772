"""Sources: where records come from, addressed by integer index."""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import jax
import numpy as np
from flax import nnx
from flax.nnx import reprlib

from feedax._dtypes import check_fits_device
from feedax._errors import SourceError
from feedax._ragged import Ragged

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
        """Returns the records at ``indices`` (int64, shape ``(k,)``), stacked per field.

        Called from several threads at once (read-ahead, thread workers): share no
        scratch state between calls. ``feedax.testing.check_source`` checks it.
        """

    def metadata(self, indices: np.ndarray, columns: Sequence[str]) -> Batch:
        """The values of ``columns`` for the records at ``indices`` (what a Filter reads).

        The default reads the whole records; sources that can read single columns
        cheaply (in-memory arrays, columnar files) override it.
        """
        return select(self, self.read(indices), columns)

    @property
    def on_device(self) -> bool:
        """Whether the source keeps its records on the device (see ``device_columns``)."""
        return False

    @property
    def location(self) -> str:
        """Where the records are: ``"memory"``, or their files or folder."""
        return "memory"

    def __nnx_repr__(self) -> Iterator[reprlib.Object | reprlib.Attr]:
        # What a user looks for in a printed pipeline: what the source is, not its internals.
        yield reprlib.Object(type=type(self).__name__)
        yield reprlib.Attr("name", self.name)
        yield reprlib.Attr("records", len(self))
        yield reprlib.Attr("location", self.location)
        fields = ", ".join(f"{k}: {spec_text(v)}" for k, v in self.element_spec.items())
        yield reprlib.Attr("fields", "{" + fields + "}", use_raw_value=True)

    @property
    def device_columns(self) -> dict[str, jax.Array] | None:
        """All records as arrays on the device, if the source keeps them there; else None."""
        return None

    def _check_indices(self, indices: np.ndarray) -> None:
        n = len(self)
        if indices.size and (indices.min() < 0 or indices.max() >= n):
            bad = indices[(indices < 0) | (indices >= n)][0]
            raise IndexError(
                f"{self.name}: record index {int(bad)} is out of range; the source has {n} "
                f"records (valid indices 0..{n - 1}). Check the indices you pass to read()."
            )


def spec_text(spec: Any) -> str:
    """``dtype[shape]`` of a field's spec (a :class:`Ragged` as its repr)."""
    if isinstance(spec, Ragged):
        return repr(spec)
    return f"{np.dtype(spec.dtype).name}{list(spec.shape)}"


def files_location(files: Sequence[str]) -> str:
    """A short text for a list of files: the one file, or the first and how many more."""
    if len(files) == 1:
        return files[0]
    return f"{files[0]} (+{len(files) - 1} more files)"


def select(source: Any, records: Batch, columns: Sequence[str]) -> Batch:
    """``columns`` of ``records``; a missing one raises naming the source and its fields."""
    missing = [c for c in columns if c not in records]
    if missing:
        raise SourceError(
            f"{source.name}: no metadata column {missing[0]!r}; its fields are "
            f"{sorted(records)}. Filter on one of those (or add the column to the source)."
        )
    return {c: records[c] for c in columns}


def _column(source: str, field: str, value: Any) -> tuple[np.ndarray, Ragged | None]:
    """``value`` as an array, or as an object array of arrays with its spec if it is ragged."""
    if isinstance(value, np.ndarray) and value.dtype != object:
        return value, None
    try:
        array = np.asarray(value)
        if array.dtype != object:
            return array, None
        if not all(isinstance(v, np.ndarray | list | tuple) for v in array.ravel()):
            return array, None  # Python objects (strings, bytes) for a host stage
    except ValueError:  # sequences of different lengths
        pass
    items = [np.asarray(v) for v in value]
    kinds = {(v.dtype, v.shape[1:]) for v in items if v.size}  # [] reads as float64: any kind
    if len(kinds) != 1 or any(v.ndim == 0 or v.dtype == object for v in items):
        raise SourceError(
            f"{source}: field {field!r} holds records of different kinds "
            f"({sorted(str(v.dtype) + str(v.shape) for v in items[:3])} ...). A field holds "
            "arrays of one dtype and rank; only their first dimension may vary (a ragged "
            "field). Convert them, e.g. np.asarray(v, np.int32) for each."
        )
    ((dtype, shape),) = kinds
    items = [v if v.size else np.zeros((0, *shape), dtype) for v in items]
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array, Ragged(dtype, shape)


class _Columns:
    """Holds a source's arrays outside NNX's state, so the data never enters a checkpoint.

    The device copy is made on first use: a pipeline starts compiling its step first, so
    the upload overlaps the compilation.
    """

    def __init__(self, columns: dict[str, np.ndarray], on_device: bool, ragged: dict[str, Ragged]):
        self.columns = columns
        self.on_device = on_device
        self.ragged = ragged
        self._device: dict[str, jax.Array] | None = None

    def device(self) -> dict[str, jax.Array]:
        if self._device is None:
            for field, column in self.columns.items():
                check_fits_device(field, column)
            self._device = {
                k: jax.device_put(v.astype(jax.dtypes.canonicalize_dtype(v.dtype), copy=False))
                for k, v in self.columns.items()
            }
        return self._device

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}: {v.dtype}{list(v.shape)}" for k, v in self.columns.items())
        return f"Columns({fields})"


class ArraySource(Source):
    """Records held in memory as a dict of arrays, one row per record.

    Arrays are kept as given (NumPy arrays and memory maps are not copied); reading a
    batch is one vectorised gather per field.

    With ``on_device=True`` a copy of the arrays is also placed on the default device once,
    and a pipeline without a host stage then computes each batch entirely on the device:
    order, gather and operators in one jitted call, with nothing read or transferred per
    batch. Use it when the data fits in device memory (it is replicated on every device
    of a sharded pipeline).

    Args:
      data: field name -> array; all arrays share their first dimension, the record count.
      name: a name used in error messages.
      on_device: also keep the data on the device, for device-side batching.

    Example:
      >>> import numpy as np
      >>> src = ArraySource({"image": np.zeros((10, 4, 4, 3), np.uint8), "label": np.arange(10)})
      >>> len(src), src.read(np.array([3, 1]))["label"].tolist()
      (10, [3, 1])
    """

    def __init__(
        self, data: Mapping[str, Any], *, name: str = "ArraySource", on_device: bool = False
    ):
        self.name = name
        if not isinstance(data, Mapping) or not data:
            raise SourceError(
                f"{name}: expected a non-empty dict of field name -> array, got "
                f"{type(data).__name__} {data!r:.80}. "
                "Pass e.g. {'image': images, 'label': labels}."
            )
        columns: dict[str, np.ndarray] = {}
        ragged: dict[str, Ragged] = {}
        for field, value in data.items():
            if not isinstance(field, str):
                raise SourceError(f"{name}: field names must be strings, got {field!r}.")
            array, spec = _column(name, field, value)
            if spec is not None:
                ragged[field] = spec
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
        if on_device:
            for field, array in columns.items():
                if array.dtype == np.dtype(object) or array.dtype.kind in "SUV":
                    raise SourceError(
                        f"{name}: field {field!r} holds {array.dtype} values, which cannot live "
                        "on the device. Use on_device=False and a host stage to decode them."
                    )
        self._columns = _Columns(columns, bool(on_device), ragged)

    def __len__(self) -> int:
        return len(next(iter(self._columns.columns.values())))

    @property
    def element_spec(self) -> dict[str, Any]:
        """The shape and dtype of each field of one record (``fx.Ragged`` for ragged ones)."""
        ragged = self._columns.ragged
        return {
            k: ragged[k] if k in ragged else jax.ShapeDtypeStruct(v.shape[1:], v.dtype)
            for k, v in self._columns.columns.items()
        }

    @property
    def on_device(self) -> bool:
        """Whether the data is also kept on the device (``on_device=True``)."""
        return self._columns.on_device

    @property
    def device_columns(self) -> dict[str, jax.Array] | None:
        """The data on the device (``on_device=True``; copied there on first use), else None."""
        return self._columns.device() if self._columns.on_device else None

    def read(self, indices: np.ndarray) -> Batch:
        """Returns the records at ``indices`` stacked per field (one gather per field)."""
        indices = np.asarray(indices, dtype=np.int64)
        self._check_indices(indices)
        return {k: v[indices] for k, v in self._columns.columns.items()}

    def metadata(self, indices: np.ndarray, columns: Sequence[str]) -> Batch:
        """``columns`` at ``indices``, gathering only those arrays."""
        indices = np.asarray(indices, dtype=np.int64)
        self._check_indices(indices)
        return {c: v[indices] for c, v in select(self, self._columns.columns, columns).items()}
