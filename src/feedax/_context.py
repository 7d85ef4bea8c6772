"""What an operator knows about the record it transforms."""

from __future__ import annotations

import dataclasses

import jax

BATCH_AXIS = "batch"
"""The name of the vmapped batch axis; operators may use collectives over it."""


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class RecordContext:
    """The identity of one record, passed to operators next to the record.

    Attributes:
      epoch: int32 scalar, the record's epoch (for a mixture, its own source's epoch).
      index: int32 scalar, the record's index in its source (its identity).
      valid: bool scalar, False for padding rows of the last batch of an epoch.
    """

    epoch: jax.Array
    index: jax.Array
    valid: jax.Array

    def key(self, stream_key: jax.Array) -> jax.Array:
        """The record's key for a random operator: a function of (stream, epoch, index) only.

        So a record gets the same draw in a given epoch whatever the batch size, worker
        count, number of hosts or devices, its position in the order, or a restart.
        """
        return jax.random.fold_in(jax.random.fold_in(stream_key, self.epoch), self.index)
