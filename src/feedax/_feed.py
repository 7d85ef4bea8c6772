"""The host side of iteration: order, read (or host stage), and transfer to the devices."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Mapping
from typing import Any

import jax
import numpy as np

from feedax._errors import PipelineError
from feedax._host import HostMap
from feedax._order import round_keys
from feedax._skip import Planned, skipping_stream
from feedax._stream import stream_batches
from feedax._workers import HostExecutor, read_or_explain

Item = tuple[int, int]
"""A planned batch: (epoch, position of its first record in the epoch's order)."""


@dataclasses.dataclass(frozen=True)
class HostTiming:
    """Seconds the host spent on one batch."""

    read: float
    transfer: float


@dataclasses.dataclass(frozen=True)
class Feed:
    """Turns planned batches into this process's rows on its devices.

    Used from the pipeline's producer thread; one Feed serves one iteration.
    """

    source: Any
    host: HostMap | None
    spec: Mapping[str, jax.ShapeDtypeStruct]
    batch_size: int
    rows: tuple[int, int]
    seed: int
    shuffle: bool
    sharding: jax.sharding.Sharding | None
    read_ahead: int
    on_device: bool
    drop_remainder: bool
    delivered: int

    def _requests(self, plan: Iterator[Item]) -> Iterator[tuple[Any, np.ndarray, int]]:
        n = len(self.source)
        lo, hi = self.rows
        for epoch, start in plan:
            began = time.perf_counter()
            positions = np.arange(start + lo, start + hi, dtype=np.int64)
            valid = positions < n
            # Padding rows re-read real records (masked invalid): every row has a record's shape.
            indices, epochs = self.source.locate(
                epoch,
                np.where(valid, positions, positions % n),
                seed=self.seed,
                shuffle=self.shuffle,
                delivered=self.delivered,
            )
            yield ((epoch, start), indices, valid, epochs, began), indices, epoch

    def __call__(
        self, plan: Iterator[Item]
    ) -> Iterator[tuple[Item, dict[str, jax.Array], HostTiming]]:
        """Yields ``(item, device arrays, timing)`` for each planned batch, in order.

        For data held on the device nothing is read: the item carries the order keys and
        the batch's first position, and the device step gathers the records itself.
        """
        if self.on_device:
            keys: tuple[int, np.ndarray] | None = None
            for epoch, start in plan:
                began = time.perf_counter()
                if keys is None or keys[0] != epoch:
                    keys = (epoch, round_keys(self.seed, epoch))
                arrays: dict[str, Any] = {"__start": start, "__keys": keys[1]}
                yield (epoch, start), arrays, HostTiming(time.perf_counter() - began, 0.0)
            return
        requests = self._requests(plan)
        done: Iterator[tuple[Any, dict[str, np.ndarray]]]
        if self.host is None:
            done = ((key, read_or_explain(self.source, indices)) for key, indices, _ in requests)
        else:
            executor = HostExecutor(self.host, self.source, self.spec, read_ahead=self.read_ahead)
            done = executor.map(requests)
        for (item, indices, valid, epochs, started), records in done:
            read_done = time.perf_counter()
            records["__index"] = indices.astype(np.int32)
            records["__valid"] = valid
            if epochs is not None:
                records["__epoch"] = epochs.astype(np.int32)
            arrays = self._put(records)
            yield item, arrays, HostTiming(read_done - started, time.perf_counter() - read_done)

    def skipping(
        self, epoch: int, start: int
    ) -> Iterator[tuple[Planned, dict[str, jax.Array], HostTiming]]:
        """Like ``__call__`` under the skip policy: batches of good records from ``start``."""
        began = time.perf_counter()
        for planned, records in skipping_stream(self, epoch, start):
            read_done = time.perf_counter()
            arrays = self._put(records)
            yield planned, arrays, HostTiming(read_done - began, time.perf_counter() - read_done)
            began = time.perf_counter()

    def streaming(
        self, epoch: int, start: int, window: int
    ) -> Iterator[tuple[Planned, dict[str, jax.Array], HostTiming]]:
        """Like ``__call__`` for a stream source: one pass per epoch, windowed shuffle."""
        began = time.perf_counter()
        for planned, records in stream_batches(self, epoch, start, window=window):
            read_done = time.perf_counter()
            arrays = self._put(records)
            yield planned, arrays, HostTiming(read_done - began, time.perf_counter() - read_done)
            began = time.perf_counter()

    def _put(self, records: dict[str, np.ndarray]) -> dict[str, jax.Array]:
        local = {
            k: np.asarray(v).astype(jax.dtypes.canonicalize_dtype(v.dtype), copy=False)
            for k, v in records.items()
        }
        if self.sharding is None:
            # One call for all fields; uncommitted, like jax.device_put, so the consumer's
            # jitted step may mix these batches with arrays made anywhere without recompiling.
            return jax.device_put(local)
        return {
            k: jax.make_array_from_process_local_data(
                self.sharding, v, (self.batch_size, *v.shape[1:])
            )
            for k, v in local.items()
        }


class DeviceData:
    """The on-device columns a pipeline gathers from, placed for its sharding.

    A plain holder, so the arrays stay out of ``nnx.state`` (the data is never state).
    """

    def __init__(self, columns: dict[str, jax.Array], sharding: jax.sharding.Sharding | None):
        if sharding is not None:
            if isinstance(sharding, jax.sharding.NamedSharding):
                sharding = jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec())
            columns = jax.device_put(columns, sharding)
        self.columns = columns


def auto_axes(sharding: jax.sharding.Sharding) -> jax.sharding.Sharding:
    """The same layout on a mesh whose axes are all ``Auto``.

    JAX (0.10) cannot lower a collective over a vmapped axis whose input is sharded on an
    ``Explicit`` mesh axis (the default of ``jax.make_mesh``), and RunningNormalize needs
    one; so the device step runs on the Auto twin and batches are handed back on the
    user's sharding.
    """
    if not isinstance(sharding, jax.sharding.NamedSharding):
        return sharding
    mesh = sharding.mesh
    if all(t == jax.sharding.AxisType.Auto for t in mesh.axis_types):
        return sharding
    auto = (jax.sharding.AxisType.Auto,) * len(mesh.axis_names)
    twin = jax.sharding.Mesh(mesh.devices, mesh.axis_names, axis_types=auto)
    return jax.sharding.NamedSharding(twin, sharding.spec, memory_kind=sharding.memory_kind)


def replicated(sharding: jax.sharding.Sharding | None, state: Any) -> Any:
    """``state`` (small: operator keys, statistics, parameters) placed beside the batches.

    A state loaded from a run on other devices (another mesh, one device instead of
    eight) would otherwise not be usable with this pipeline's batches.
    """
    if sharding is None:
        return jax.tree.map(lambda x: _placed(x, None), state)
    if isinstance(sharding, jax.sharding.NamedSharding):
        sharding = jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec())
    return jax.tree.map(lambda x: _placed(x, sharding), state)


def _placed(x: Any, sharding: jax.sharding.Sharding | None) -> Any:
    """``x`` replicated on ``sharding`` (possibly spanning processes), or uncommitted."""
    if not isinstance(x, jax.Array):
        return x
    if (not x.committed) if sharding is None else x.sharding == sharding:
        return x  # already in place
    key = jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
    value = np.asarray(jax.random.key_data(x) if key else x)
    if sharding is None:
        placed = jax.device_put(value)
    else:
        # Every process holds the same value; this builds the global replicated array even
        # when the sharding spans devices of other processes (device_put cannot).
        placed = jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])
    return jax.random.wrap_key_data(placed, impl=jax.random.key_impl(x)) if key else placed


def local_rows(sharding: jax.sharding.Sharding, batch_size: int) -> tuple[int, int]:
    """The contiguous rows of a global batch that this process's devices hold."""
    try:
        index_map = sharding.addressable_devices_indices_map((batch_size,))
        slices = [slice(None) if idx is None else idx[0] for idx in index_map.values()]
    except ValueError as error:
        raise PipelineError(
            f"Pipeline: batch_size={batch_size} cannot be split by the sharding {sharding}: "
            f"{error}. Use a batch_size divisible by the number of data-parallel devices."
        ) from error
    starts = [s.start or 0 for s in slices]
    stops = [batch_size if s.stop is None else s.stop for s in slices]
    lo, hi = min(starts), max(stops)
    covered = set().union(*(range(a, b) for a, b in zip(starts, stops, strict=True)))
    if len(covered) != hi - lo:
        raise PipelineError(
            f"Pipeline: this process's devices hold non-contiguous rows of the batch under "
            f"{sharding}. Order the mesh so each process's devices are adjacent on the batch axis "
            "(jax.make_mesh does)."
        )
    return lo, hi
