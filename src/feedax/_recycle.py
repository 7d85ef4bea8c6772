"""Reusing the memory of output batches the consumer has let go of, on a CPU.

XLA on a CPU allocates every output anew, and glibc maps an allocation over 32 MiB
fresh from the kernel each time: the first write to each of its 4 KiB pages then
faults. A float32 batch of 64 RGB images of 224 x 224 (38 MiB) costs about 13 ms of page
faults on a two-core machine, more than normalising it. Handed the buffer of an earlier
batch that nothing refers to any more (donated), XLA writes the new batch there instead.

An earlier batch is free when this holder has the only reference to its array: the
consumer dropped it (and any NumPy view of it, which refers to it). An array the
consumer's own program donated is deleted and skipped. A buffer whose donation is refused
(a DLPack consumer still reads it) is dropped from the holder, so the refusal costs one
copy at most. Views made with ``addressable_data`` or ``addressable_shards`` do not
refer to their array: keep the batch while using them.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

MIN_BYTES = 1 << 20
"""Outputs smaller than this are left to the allocator, which reuses freed small blocks."""

HELD = 3
"""Earlier outputs held per leaf: the batch the consumer has, the one before, one spare."""


def recyclable(arrays: Sequence[Any]) -> bool:
    """Whether a step fed ``arrays`` runs on one CPU device, where recycling pays."""
    if not getattr(sys, "_is_gil_enabled", lambda: True)():
        return False  # without the GIL a reference count is no proof that nobody holds it
    devices: set[Any] = set()
    for a in arrays:
        if not isinstance(a, jax.Array):
            return False
        devices |= a.sharding.device_set
    return len(devices) == 1 and next(iter(devices)).platform == "cpu"


class Recycler:
    """Spare buffers for a step's output leaves, from its earlier outputs nobody holds.

    Args:
      outputs: the step's output leaves (``jax.ShapeDtypeStruct``), in flattened order.
      device: where they live.
      skip: (shape, dtype) pairs not to recycle (outputs an input buffer is donated to).
    """

    def __init__(self, outputs: Sequence[Any], device: Any, skip: frozenset[Any] = frozenset()):
        self.avals = [
            o if o.size * o.dtype.itemsize >= MIN_BYTES and (o.shape, o.dtype) not in skip else None
            for o in outputs
        ]
        self.device = device
        self._held: list[list[jax.Array]] = [[] for _ in self.avals]

    def spares(self) -> list[jax.Array | None]:
        """A buffer to donate for each recycled leaf (a free earlier output, or zeros)."""
        return [None if a is None else self._free(i, a) for i, a in enumerate(self.avals)]

    def keep(self, leaves: Sequence[jax.Array]) -> None:
        """Holds the step's output ``leaves``.

        A spare it was given is gone from the holder: consumed, or, where its donation was
        refused (JAX copied it instead), left to whoever still reads it.
        """
        for held, leaf, aval in zip(self._held, leaves, self.avals, strict=True):
            if aval is not None:
                held.append(leaf)
                del held[:-HELD]

    def _free(self, i: int, aval: Any) -> jax.Array:
        held = self._held[i]
        for j in range(len(held)):
            if held[j].is_deleted():
                continue
            if _references(held, j) == _ALONE:
                return held.pop(j)
        held[:] = [h for h in held if not h.is_deleted()]
        return jnp.zeros(aval.shape, aval.dtype, device=self.device)


def _references(items: list[Any], j: int) -> int:
    """The reference count of ``items[j]``; measured the same way for every item."""
    return sys.getrefcount(items[j])


_ALONE = _references([object()], 0)
"""The count of an item only its list refers to, measured by the same function."""
