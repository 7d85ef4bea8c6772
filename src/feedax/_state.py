"""The pipeline's own NNX Variable types: its cursor and its signature."""

from __future__ import annotations

from flax import nnx


class Cursor(nnx.Variable):
    """Where a pipeline is: ``[epoch, position]``, an int64 array of shape ``(2,)``.

    ``position`` counts the records of the epoch already handed to the consumer, in the
    global order (summed over all processes), so a run can resume on another number of
    hosts. It advances when a batch is handed over, not when it is prefetched.
    """


class Signature(nnx.Variable):
    """A hash of what defines a pipeline's stream (source size, order, operators).

    It travels in ``nnx.state(pipeline)`` so that loading a state taken from a different
    pipeline is detected before a single wrong batch is produced.
    """
