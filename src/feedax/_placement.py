"""Where batches and state live: the devices' layout of a pipeline's arrays."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from feedax._errors import PipelineError


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
