"""The pipeline: source, order, operators, batching, sharding and the cursor, as one module."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from feedax._apply import apply_batch, apply_jit, apply_operators
from feedax._errors import PipelineError, StateMismatchError
from feedax._operator import Operator
from feedax._order import EpochOrder
from feedax._prefetch import Prefetcher
from feedax._source import Source
from feedax._state import Cursor, Signature

Batch = dict[str, jax.Array]
VALID = "valid"
"""The name of the padding mask field added when ``drop_remainder=False``."""


class Pipeline(nnx.Module):
    """Batches of augmented records from a source, in an exact, resumable order.

    Each epoch visits every record exactly once, in a keyed permutation of ``(seed,
    epoch)`` (or in index order without ``shuffle``). Operators run on the device, vmapped
    over the batch and fused into one jitted function, compiled once per mode. All that
    is needed to continue is in ``nnx.state(pipeline)``: the cursor (epoch, position), the
    operators' RNG keys, running statistics and parameters; never the data.

    Iterating:
      * ``pipe.epoch()`` yields the rest of the current epoch, from the cursor.
      * ``iter(pipe)`` is an endless stream across epochs.
      The cursor advances as each batch is handed over (not when it is prefetched), so a
      state taken after receiving batch ``k`` resumes at batch ``k + 1``. Loading a state
      with ``nnx.update`` redirects even an iteration in progress.

    Modes: ``pipe.train()`` / ``pipe.eval()`` (NNX) switch every operator it holds; in eval
    mode random operators are the identity and running statistics are frozen. Operators
    are shared by reference, so two pipelines built on the same operator objects share
    their mode and statistics too.

    Batches are dicts of ``jax.Array`` with one shape for the whole run. With
    ``drop_remainder=False`` the last batch of an epoch is padded and a boolean ``"valid"``
    field marks the real records.

    Args:
      source: where records come from.
      operators: one-record operators applied in order on the device.
      batch_size: records per batch, summed over all processes and devices.
      shuffle: visit records in a new pseudo-random order each epoch.
      seed: the seed of the order.
      drop_remainder: drop the last incomplete batch of each epoch (else pad and mask).
      sharding: where batches go, e.g. ``NamedSharding(mesh, P("data"))``; it splits the
        batch (first) axis. Default: the default device, uncommitted (as ``jax.device_put``).
      prefetch: batches read and transferred ahead in a background thread (0: none).

    Example:
      >>> import numpy as np, feedax as fx
      >>> from flax import nnx
      >>> src = fx.ArraySource({"image": np.zeros((10, 8, 8, 3), np.uint8), "label": np.arange(10)})
      >>> pipe = fx.Pipeline(src, [fx.RandomFlip(rngs=nnx.Rngs(augment=0))], batch_size=4,
      ...                    shuffle=True, seed=0)
      >>> [b["label"].shape for b in pipe.epoch()]
      [(4,), (4,)]
    """

    def __init__(
        self,
        source: Source,
        operators: Sequence[Operator] = (),
        *,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        drop_remainder: bool = True,
        sharding: jax.sharding.Sharding | None = None,
        prefetch: int = 2,
    ):
        if not isinstance(source, Source):
            raise PipelineError(
                f"Pipeline: source must be a feedax Source (e.g. fx.ArraySource), got "
                f"{type(source).__name__}."
            )
        operators = list(operators)
        for i, op in enumerate(operators):
            if not isinstance(op, Operator):
                raise PipelineError(
                    f"Pipeline: operators[{i}] must be a feedax Operator, got "
                    f"{type(op).__name__}. Subclass fx.Operator to write your own."
                )
        n = len(source)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise PipelineError(f"Pipeline: batch_size must be an int >= 1, got {batch_size!r}.")
        if drop_remainder and batch_size > n:
            raise PipelineError(
                f"Pipeline: batch_size={batch_size} is larger than the source {source.name!r} "
                f"({n} records) with drop_remainder=True, so no batch would ever be produced. "
                "Use batch_size <= the source length, or drop_remainder=False to pad the last "
                "batch (padding is marked by the 'valid' field)."
            )
        if not isinstance(prefetch, int) or prefetch < 0:
            raise PipelineError(f"Pipeline: prefetch must be an int >= 0, got {prefetch!r}.")
        if not drop_remainder and VALID in source.element_spec:
            raise PipelineError(
                f"Pipeline: the source has a field named {VALID!r}, which the pipeline adds as "
                "the padding mask when drop_remainder=False. Rename the source field."
            )
        self.source = source
        self.operators = nnx.List(operators)
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.drop_remainder = bool(drop_remainder)
        self.prefetch = prefetch
        if sharding is not None and not isinstance(
            sharding, jax.sharding.NamedSharding | jax.sharding.SingleDeviceSharding
        ):
            raise PipelineError(
                f"Pipeline: sharding must be a NamedSharding (or SingleDeviceSharding), got "
                f"{type(sharding).__name__}. Use NamedSharding(mesh, PartitionSpec('data'))."
            )
        self.sharding = sharding
        self._device_sharding = None if sharding is None else _auto_axes(sharding)
        self._rows = (0, batch_size) if sharding is None else _local_rows(sharding, batch_size)
        self._signature = _signature(source, self.operators, self.seed, self.shuffle)
        self.cursor = Cursor(np.zeros(2, np.int64))
        self.signature = Signature(np.asarray(self._signature, np.int64))
        self.output_spec  # noqa: B018  (traces the operators now, so bad records fail here)

    # -- shape of the stream ---------------------------------------------------------------

    @property
    def steps_per_epoch(self) -> int:
        """Batches in one epoch."""
        n, b = len(self.source), self.batch_size
        return n // b if self.drop_remainder else -(-n // b)

    @property
    def output_spec(self) -> dict[str, jax.ShapeDtypeStruct]:
        """The shape and dtype of each field of a batch (for the current mode)."""
        b = self.batch_size
        batch = {
            k: jax.ShapeDtypeStruct((b, *v.shape), jax.dtypes.canonicalize_dtype(v.dtype))
            for k, v in self.source.element_spec.items()
        }
        graphdef, state = nnx.split(self.operators)
        index = jax.ShapeDtypeStruct((b,), jnp.int32)
        valid = jax.ShapeDtypeStruct((b,), jnp.bool_)
        out, _ = jax.eval_shape(apply_batch, graphdef, state, batch, jnp.int32(0), index, valid)
        if not self.drop_remainder:
            out[VALID] = valid
        return out

    @property
    def position(self) -> tuple[int, int]:
        """The cursor as ``(epoch, records of that epoch already handed over)``."""
        epoch, position = (int(v) for v in self.cursor[...])
        return epoch, position

    # -- applying the operators ------------------------------------------------------------

    def __call__(
        self, batch: dict[str, jax.Array], *, indices: jax.Array, epoch: int | jax.Array = 0
    ) -> dict[str, jax.Array]:
        """Applies the operators to a batch of records, as iteration does.

        Differentiable: ``nnx.grad`` of a loss of the output w.r.t. the pipeline reaches
        the operators' ``nnx.Param``s. In train mode running statistics are updated.

        Args:
          batch: field -> array with a leading batch axis.
          indices: the records' indices in the source (their identity), shape ``(B,)``.
          epoch: the epoch whose augmentation to draw.
        """
        return apply_operators(list(self.operators), batch, indices=indices, epoch=epoch)

    # -- iteration -------------------------------------------------------------------------

    def epoch(self) -> Iterator[Batch]:
        """Yields the rest of the current epoch, from the cursor, then stops."""
        return self._iterate(single_epoch=True)

    def __iter__(self) -> Iterator[Batch]:
        """An endless stream of batches across epochs, from the cursor."""
        return self._iterate(single_epoch=False)

    def _has_batch(self, start: int) -> bool:
        n = len(self.source)
        return start + self.batch_size <= n if self.drop_remainder else start < n

    def _checked_cursor(self) -> tuple[int, int]:
        if int(np.asarray(self.signature[...])) != self._signature:
            raise StateMismatchError(
                "Pipeline: the loaded state was taken from a different pipeline (its signature "
                "does not match this pipeline's source length/fields, seed, shuffle and "
                "operators). Restore it into a pipeline built like the one that saved it."
            )
        cursor = np.asarray(self.cursor[...])
        n = len(self.source)
        if cursor.shape != (2,) or cursor[0] < 0 or not 0 <= cursor[1] <= n:
            raise StateMismatchError(
                f"Pipeline: the cursor {cursor.tolist()} is not a valid [epoch, position] for a "
                f"source of {n} records. Restore a state saved by this pipeline."
            )
        epoch, start = int(cursor[0]), int(cursor[1])
        return (epoch, start) if self._has_batch(start) else (epoch + 1, 0)

    def _plan(self, epoch: int, start: int) -> Iterator[tuple[int, int]]:
        while True:
            while self._has_batch(start):
                yield epoch, start
                start += self.batch_size
            epoch, start = epoch + 1, 0

    def _place_operator_state(self) -> None:
        """Replicates the operators' state on the pipeline's devices.

        A state loaded from a run on other devices (another mesh, one device instead of
        eight) would otherwise not be usable with this pipeline's batches.
        """
        state = nnx.state(self.operators)
        sharding = self._device_sharding
        if sharding is None:
            placed = jax.tree.map(_uncommitted, state)
        else:
            if isinstance(sharding, jax.sharding.NamedSharding):
                sharding = jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec())
            placed = jax.device_put(state, sharding)
        nnx.update(self.operators, placed)

    def _iterate(self, single_epoch: bool) -> Iterator[Batch]:
        while True:
            epoch, start = self._checked_cursor()
            self._place_operator_state()
            with Prefetcher(
                map(self._host_batch, self._plan(epoch, start)), self.prefetch
            ) as ready:
                for (epoch, start), host in ready:
                    batch = self._device_batch(epoch, host)
                    after = start + self.batch_size
                    cursor = (epoch, after) if self._has_batch(after) else (epoch + 1, 0)
                    # Replace, never write into, the array: snapshots of the state keep theirs.
                    self.cursor.set_value(np.asarray(cursor, np.int64))
                    yield batch
                    if single_epoch and cursor[1] == 0:
                        return
                    if tuple(np.asarray(self.cursor[...]).tolist()) != cursor:
                        break  # a state was loaded meanwhile: restart from its cursor
                    self._checked_cursor()

    def _host_batch(self, item: tuple[int, int]) -> tuple[tuple[int, int], Any]:
        """Reads this process's rows of the batch at ``item`` and puts them on its devices."""
        epoch, start = item
        n = len(self.source)
        lo, hi = self._rows
        positions = np.arange(start + lo, start + hi, dtype=np.int64)
        valid = positions < n
        order = EpochOrder(n, seed=self.seed, epoch=epoch, shuffle=self.shuffle)
        # Padding rows re-read real records (masked invalid), so every row has a record's shape.
        indices = order(np.where(valid, positions, positions % n))
        records = self.source.read(indices)
        records["__index"] = indices.astype(np.int32)
        records["__valid"] = valid
        return item, {k: self._put(np.asarray(v)) for k, v in records.items()}

    def _put(self, local: np.ndarray) -> jax.Array:
        local = local.astype(jax.dtypes.canonicalize_dtype(local.dtype), copy=False)
        global_shape = (self.batch_size, *local.shape[1:])
        if self._device_sharding is None:
            # Uncommitted, like jax.device_put: the consumer's jitted step may mix these
            # batches with arrays created anywhere without recompiling.
            return jax.device_put(local)
        return jax.make_array_from_process_local_data(self._device_sharding, local, global_shape)

    def _device_batch(self, epoch: int, host: dict[str, jax.Array]) -> Batch:
        indices, valid = host.pop("__index"), host.pop("__valid")
        graphdef, state = nnx.split(self.operators)
        out, new_state = apply_jit(graphdef, state, host, np.int32(epoch), indices, valid)
        nnx.update(self.operators, new_state)
        if not self.drop_remainder:
            out[VALID] = valid
        if self.sharding is not None and self._device_sharding is not self.sharding:
            out = jax.device_put(out, self.sharding)  # same layout: re-labels, copies nothing
        return out


def _uncommitted(x: Any) -> Any:
    """``x`` moved to the default device without committing it there (small state only)."""
    if not isinstance(x, jax.Array) or not x.committed:
        return x
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        data = jax.device_put(np.asarray(jax.random.key_data(x)))
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
    return jax.device_put(np.asarray(x))


def _auto_axes(sharding: jax.sharding.Sharding) -> jax.sharding.Sharding:
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


def _local_rows(sharding: jax.sharding.Sharding, batch_size: int) -> tuple[int, int]:
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


def _signature(source: Source, operators: Sequence[Operator], seed: int, shuffle: bool) -> int:
    spec = sorted((k, v.shape, str(v.dtype)) for k, v in source.element_spec.items())
    ops = [(type(op).__qualname__, op.field) for op in operators]
    text = repr((type(source).__qualname__, len(source), spec, seed, shuffle, ops))
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)
