"""Reading planned steps: this process's rows, from the source or the host stage, to the devices."""

from __future__ import annotations

import dataclasses
import functools
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jax
import numpy as np

from feedax._dtypes import check_fits_device
from feedax._groups import groups, padded
from feedax._host import HostMap
from feedax._ranges import check_labels
from feedax._sources.mix import Mix
from feedax._step import Loaded, Step
from feedax._worker_side import read_or_explain
from feedax._workers import HostExecutor

Spec = Mapping[str, jax.ShapeDtypeStruct]


@dataclasses.dataclass(frozen=True)
class Placement:
    """How one process's rows of a batch reach the devices.

    Attributes:
      batch_size: the global batch.
      rows: this process's rows ``[lo, hi)`` of each global batch.
      sharding: the batch's sharding (its all-``Auto`` twin), or None for the default
        device, uncommitted.
      identities: also transfer the rows' record indices and epochs (operators need them).
      masks: also transfer the valid mask (operators or the ``"valid"`` field need it).
      labels: ``(field, num_classes)`` whose values must lie in range (a OneHot reads them),
        checked on the host for every batch (a comparison over one value per row).
      ids: adds fields naming each row's record (``Pipeline(record_ids=True)``), from
        the rows' record identities; None: none.
    """

    batch_size: int
    rows: tuple[int, int]
    sharding: jax.sharding.Sharding | None
    identities: bool = True
    masks: bool = True
    labels: tuple[tuple[str, int], ...] = ()
    ids: Callable[[np.ndarray], dict[str, np.ndarray]] | None = None

    def put(
        self, group: tuple[Step, ...], records: dict[str, np.ndarray], read: float, size: int = 1
    ) -> Loaded:
        """``records`` (this process's rows of ``group`` padded to ``size``) on the devices.

        With their identities; a group of several steps (``feedax._groups``) is loaded as one.
        """
        began = time.perf_counter()
        lo, hi = self.rows
        steps = padded(group, size)

        def rows(name: str) -> np.ndarray:
            parts = [getattr(step, name)[lo:hi] for step in steps]
            return parts[0] if len(parts) == 1 else np.concatenate(parts)

        indices = rows("indices")
        for field, values in records.items():
            check_fits_device(field, values)
        check_labels(self.labels, records, indices)
        if self.ids is not None:
            records = {**records, **self.ids(indices)}
        arrays: dict[str, Any] = {"fields": records}
        if self.identities:
            arrays["index"] = indices.astype(np.int32)
            if steps[0].epochs is not None:
                arrays["epochs"] = rows("epochs").astype(np.int32)
        if self.masks:
            arrays["valid"] = rows("valid")
        placed = self._transfer(arrays)
        return Loaded(
            group[0],
            placed["fields"],
            placed.get("index"),
            placed.get("valid"),
            placed.get("epochs"),
            read=read / len(group),
            transfer=(time.perf_counter() - began) / len(group),
            more=group[1:],
        )

    def put_steps(
        self, steps: list[Step], records: dict[str, np.ndarray], read: float
    ) -> Iterator[Loaded]:
        """Each step's rows on the devices, from ``records`` holding all their rows in turn.

        Rows that need nothing but their fields on the default device cross in one
        transfer for all the steps, then each step's are sliced out on the device (one
        dispatch a step, against one transfer per field and step).
        """
        rows = self.rows[1] - self.rows[0]
        plain = not (self.identities or self.masks or self.labels or self.ids)
        if self.sharding is not None or not plain or len(steps) == 1:
            for k, step in enumerate(steps):
                part = {f: v[k * rows : (k + 1) * rows] for f, v in records.items()}
                yield self.put((step,), part, read=read)
            return
        began = time.perf_counter()
        for field, values in records.items():
            check_fits_device(field, values)
        placed = self._transfer(records)
        transfer = (time.perf_counter() - began) / len(steps)
        for k, step in enumerate(steps):
            began = time.perf_counter()
            fields = _rows_of(placed, k * rows, rows)
            spent = transfer + time.perf_counter() - began
            yield Loaded(step, fields, None, None, None, read=read, transfer=spent)

    def _transfer(self, arrays: dict[str, Any]) -> dict[str, Any]:
        local = jax.tree.map(
            lambda v: np.asarray(v).astype(jax.dtypes.canonicalize_dtype(v.dtype), copy=False),
            arrays,
        )
        if self.sharding is None:
            # One call for everything; uncommitted, like jax.device_put, so the consumer's
            # jitted step may mix these batches with arrays made anywhere without recompiling.
            return jax.device_put(local)
        return jax.tree.map(
            lambda v: jax.make_array_from_process_local_data(
                self.sharding, v, (self.batch_size, *v.shape[1:])
            ),
            local,
        )


@functools.partial(jax.jit, static_argnums=2)
def _rows_of(fields: dict[str, Any], start: Any, rows: int) -> dict[str, Any]:
    return {f: jax.lax.dynamic_slice_in_dim(v, start, rows) for f, v in fields.items()}


def record_id_fields(source: Any) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """The fields ``Pipeline(record_ids=True)`` adds: ``"index"``, and ``"source"`` for a Mix.

    ``"index"`` is the record's index in its own source (what ``source.read`` takes);
    under a Mix, ``"source"`` is the position of that source in ``Mix.sources``.
    """
    if isinstance(source, Mix):
        mix = source

        def mixed(ids: np.ndarray) -> dict[str, np.ndarray]:
            which, index = mix.split(ids)
            return {ID_FIELDS[1]: which.astype(np.int32), ID_FIELDS[0]: index}

        return mixed
    return lambda ids: {ID_FIELDS[0]: np.asarray(ids, np.int64)}


ID_FIELDS = ("index", "source")
"""The names of the fields ``record_ids=True`` adds."""


def record_id_spec(source: Any, pack: Any, batch_size: int) -> dict[str, jax.ShapeDtypeStruct]:
    """The shapes and dtypes of the fields ``record_ids=True`` adds to a batch."""
    sizes = {} if pack is None else dict(zip(pack.fields, pack.sizes, strict=True))
    out = {}
    for name, (kind, follows) in record_id_names(source, pack).items():
        shape = (batch_size,) if follows is None else (batch_size, sizes[follows])
        index = kind == ID_FIELDS[0]
        dtype = jax.dtypes.canonicalize_dtype(np.int64) if index else np.dtype(np.int32)
        out[name] = jax.ShapeDtypeStruct(shape, dtype)
    return out


def record_id_names(source: Any, pack: Any) -> dict[str, tuple[str, str | None]]:
    """Output name of each field ``record_ids=True`` adds -> (its kind, the packed field).

    The kind is a key of :func:`record_id_fields`' output (an ``ID_FIELDS`` entry).

    One record per row: ``"index"`` (and ``"source"`` under a Mix), following no field.
    Packed rows name each token's record: ``"index"`` per token of the packed field, or
    ``"<field>_index"`` per field when several pack together.
    """
    kinds = ID_FIELDS if isinstance(source, Mix) else ID_FIELDS[:1]
    if pack is None:
        return {k: (k, None) for k in kinds}
    if not pack.aligned:
        return {k: (k, pack.field) for k in kinds}
    return {f"{f}_{k}": (k, f) for f in pack.fields for k in kinds}


class HostReader:
    """Reads this process's rows of each step: from the source, or through a host stage.

    The host stage keeps ``read_ahead`` steps in flight in its workers.
    """

    def __init__(
        self,
        source: Any,
        host: HostMap | None,
        spec: Spec,
        placement: Placement,
        read_ahead: int,
        group: int = 1,
    ):
        self.source = source
        self.host = host
        self.spec = spec
        self.placement = placement
        self.read_ahead = read_ahead
        self.group = group
        self._executor: HostExecutor | None = None

    def load(self, steps: Iterator[Step]) -> Iterator[Loaded]:
        """The loaded steps, in order.

        The host stage's workers are started once and kept for the pipeline's next
        iterations (epochs); they stop when the pipeline is garbage collected.
        """
        lo, hi = self.placement.rows
        if self.host is None and self.group > 1:
            for group in groups(steps, self.group):
                full = padded(group, self.group)
                rows = np.concatenate([step.indices[lo:hi] for step in full])  # type: ignore[index]
                records = read_or_explain(self.source, rows)
                read = time.perf_counter() - group[0].began
                yield self.placement.put(group, records, read=read, size=self.group)
            return
        requests = ((step, step.indices[lo:hi], step.epoch) for step in steps)  # type: ignore[index]
        done: Iterator[tuple[Step, dict[str, np.ndarray]]]
        if self.host is None:
            done = ((step, read_or_explain(self.source, rows)) for step, rows, _ in requests)
        else:
            if self._executor is None:
                self._executor = HostExecutor(
                    self.host, self.source, self.spec, read_ahead=self.read_ahead, keep=True
                )
                weakref.finalize(self, self._executor.close)
            done = self._executor.map(requests)
        for step, records in done:
            yield self.placement.put((step,), records, read=time.perf_counter() - step.began)


class GatherReader:
    """Data held on the device: nothing to read; the device step gathers each batch.

    Args:
      group: steps gathered and computed by one device call (``feedax._groups``).
    """

    def __init__(self, group: int = 1):
        self.group = group

    def load(self, steps: Iterator[Step]) -> Iterator[Loaded]:
        """The steps (in groups), to be gathered on the device."""
        for group in groups(steps, self.group):
            read = time.perf_counter() - group[0].began
            yield Loaded(group[0], {}, None, None, None, read / len(group), 0.0, group[1:])
