"""The device step: a loaded step's records through the fused operators, one XLA call."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from typing import Any

import jax
import numpy as np
from flax import nnx

from feedax._apply import AnyOperator, BoundOperators
from feedax._order import round_keys
from feedax._placement import DeviceData, replicated
from feedax._ranges import check_labels, check_values
from feedax._step import Loaded

Batch = dict[str, jax.Array]
VALID = "valid"
"""The name of the padding mask field of pipelines that may pad a batch."""


@dataclasses.dataclass(frozen=True)
class Gather:
    """What the device needs to order and gather batches of data it holds itself.

    Attributes:
      data: the columns on the device.
      n: records.
      batch_size: the global batch.
      shuffle: whether the order is shuffled.
      seed: the order's seed.
      sharding: the batch's (all-``Auto``) sharding, or None.
      group: steps one call gathers (``feedax._groups``).
    """

    data: DeviceData
    n: int
    batch_size: int
    shuffle: bool
    seed: int
    sharding: jax.sharding.Sharding | None
    group: int = 1

    @property
    def layout(self) -> dict[str, Any]:
        """The static layout of the program (see ``BoundOperators.gathering``)."""
        return {
            "n": self.n,
            "batch_size": self.batch_size,
            "sharding": self.sharding,
            "shuffle": self.shuffle,
            "parts": self.group,
        }


class DeviceStep:
    """The device step of one iteration, for one mode: the operators' graph is bound once.

    Args:
      operators: the pipeline's operators (their state is read and written in place).
      gather: for data on the device; None when batches arrive loaded.
      with_valid: add the padding mask as the field ``"valid"``.
      sharding: the user's sharding of the batch (None: uncommitted).
      device_sharding: its all-``Auto`` twin, which the program runs on.
      unit_range: (operator, field) pairs whose float values must lie in [0, 1],
        checked on the first batch (with every float field's finiteness).
      labels: ``(field, num_classes)`` of OneHot labels, checked in on-device columns.
      group: the steps of a grouped load (``feedax._groups``) from host-read data.
    """

    def __init__(
        self,
        operators: nnx.List[AnyOperator],
        *,
        gather: Gather | None,
        with_valid: bool,
        sharding: jax.sharding.Sharding | None,
        device_sharding: jax.sharding.Sharding | None,
        unit_range: tuple[tuple[str, str], ...] = (),
        labels: tuple[tuple[str, int], ...] = (),
        group: int = 1,
    ):
        # Re-labelled outputs share their buffers with the arrays handed over, which the
        # recycler would not see referred to: it only runs without.
        self.relabel = sharding if sharding is not device_sharding else None
        # Without operators (packed token rows, say) there is nothing to run per batch.
        self.call = (
            BoundOperators(operators, donate=True, recycle=self.relabel is None)
            if len(operators) or gather
            else None
        )
        self.gather = gather
        self.gathered = None
        if gather is not None:
            assert self.call is not None
            self.gathered = self.call.gathering(**gather.layout)
        self.with_valid = with_valid
        self.group = group
        self.unit_range, self.labels = unit_range, labels
        self._first = True  # the first batch's values are looked at, then never
        self._keys: tuple[int, np.ndarray] = (-1, np.zeros(0, np.uint32))

    def __call__(self, loaded: Loaded) -> list[Batch]:
        """The batches of ``loaded``'s steps, with the operators applied.

        A group's padding steps are computed too; the caller zips with ``loaded.steps``.
        """
        step = loaded.step
        if self._first:
            self._first = False
            if self.gather is not None:  # data on the device: its columns, whole, once
                columns = self.gather.data.columns
                check_values(columns, None, self.unit_range)
                held = {f: columns[f] for f, _ in self.labels if f in columns}
                check_labels(self.labels, jax.device_get(held), None)
            else:
                check_values(loaded.fields, loaded.index, self.unit_range)
        if self.gathered is not None:
            assert self.gather is not None
            if self._keys[0] != step.epoch:
                self._keys = (step.epoch, round_keys(self.gather.seed, step.epoch))
            outs, valids = self.gathered(
                self.gather.data.columns, self._keys[1], step.start, np.int32(step.epoch)
            )
        else:
            epochs = np.int32(step.epoch) if loaded.epochs is None else loaded.epochs
            outs, valids = [dict(loaded.fields)], [loaded.valid]
            if self.call is not None:  # grouped loads (all padded to the group) have operators
                outs, valids = self.call.parts(outs[0], epochs, loaded.index, valids[0], self.group)
        for out, valid in zip(outs, valids, strict=True):
            if self.with_valid:
                out[VALID] = valid
        if self.relabel is not None:
            outs = jax.device_put(outs, self.relabel)  # same layout: re-labels, copies nothing
        return outs


class CompileAhead:
    """Compiles an on-device pipeline's step in a background thread.

    It is traced in the caller's thread, so a record or operator that does not fit raises
    when the pipeline is built; XLA then compiles while the caller goes on (uploading the
    data, building a model). The first batch waits for it and finds the program compiled.
    """

    def __init__(
        self,
        operators: nnx.List[AnyOperator],
        gather: Gather,
        spec: dict[str, jax.ShapeDtypeStruct],
    ):
        sharding = gather.sharding
        if isinstance(sharding, jax.sharding.NamedSharding):
            sharding = jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec())
        columns = {
            k: jax.ShapeDtypeStruct(
                (gather.n, *v.shape), jax.dtypes.canonicalize_dtype(v.dtype), sharding=sharding
            )
            for k, v in spec.items()
        }
        # Exactly the arguments of the first batch (same shapes, placements, static layout),
        # so the first call finds this program in JAX's cache.
        state = replicated(gather.sharding, nnx.state(operators))
        traced = BoundOperators(operators).trace_gathering(
            jax.tree.leaves(state), columns, round_keys(gather.seed, 0), **gather.layout
        )
        # Not a daemon: the interpreter waits for it at exit instead of killing it in XLA.
        self._thread = threading.Thread(target=self._compile, args=(traced,), name="feedax-compile")
        self._thread.start()

    @staticmethod
    def _compile(traced: Any) -> None:
        # A failure is left to the first batch, which compiles again and raises it there.
        with contextlib.suppress(Exception):
            traced.lower().compile()

    def wait(self) -> None:
        """Returns once the compilation has finished."""
        self._thread.join()


class Gathering:
    """A plain holder of an on-device pipeline's gather and its compilation ahead."""

    def __init__(self, gather: Gather, ahead: CompileAhead):
        self.gather = gather
        self.ahead = ahead
