"""Step groups: several consecutive steps read, moved and computed as one.

On a CPU a jitted call runs in the calling thread, and the fixed costs of a step (reading
a batch's rows, one transfer per field, one dispatch, Python's share of the loop) weigh
as much as the operators' work on small records (32 x 32 images: about half). So a
pipeline whose batches are independent of each other reads, transfers and computes
``size`` steps at once, and hands them over one by one.

A record's output depends only on the record, its index and its epoch (its keys), never
on the step it falls in, so a group yields exactly the batches the steps would one by one.
That holds for one-record operators without running statistics: a pipeline with a batch
operator (MixUp, CutMix), an ``nnx.BatchStat`` (running normalisation), a host stage, a
sharded or multi-process placement, or packing, steps one at a time.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np
from flax import nnx

from feedax._operator import BatchOperator
from feedax._source import Source
from feedax._step import Step

MAX_STEPS = 8
"""The most steps in a group."""
MAX_BYTES = 16 << 20
"""The most bytes of records a group reads (so large records keep small groups)."""


def pipeline_group(pipe: Any, spec: dict[str, jax.ShapeDtypeStruct]) -> int:
    """The group size of a pipeline being built (its options and operators set)."""
    plain = (
        isinstance(pipe.source, Source)
        and pipe.host is None
        and pipe.pack is None
        and pipe.filter is None
        and pipe.on_error == "raise"
        and pipe.sharding is None
        and jax.process_count() == 1
    )
    return group_size(pipe.operators, spec, pipe.batch_size, plain=plain)


def group_size(
    operators: nnx.List[Any],
    spec: dict[str, jax.ShapeDtypeStruct],
    batch_size: int,
    *,
    plain: bool,
) -> int:
    """How many steps a group holds (1: none are grouped).

    Args:
      operators: the pipeline's operators.
      spec: a record's fields (shapes and dtypes).
      batch_size: the rows of a step.
      plain: the pipeline reads a random-access source without a host stage, packing or
        skip policy, onto the default device of a single process.
    """
    if not plain or not len(operators) or any(isinstance(op, BatchOperator) for op in operators):
        return 1  # without operators a step costs little beyond its transfer
    if jax.tree.leaves(nnx.state(operators, nnx.BatchStat)):
        return 1
    row = sum(math.prod(v.shape) * np.dtype(v.dtype).itemsize for v in spec.values())
    return max(1, min(MAX_STEPS, MAX_BYTES // max(1, row * batch_size)))


def groups(steps: Iterator[Step], size: int) -> Iterator[tuple[Step, ...]]:
    """Consecutive steps in tuples of at most ``size``, never across an epoch's end."""
    group: list[Step] = []
    for step in steps:
        if group and step.epoch != group[0].epoch:
            yield tuple(group)
            group = []
        group.append(step)
        if len(group) == size or step.last:
            yield tuple(group)
            group = []
    if group:
        yield tuple(group)


def padded(group: tuple[Step, ...], size: int) -> tuple[Step, ...]:
    """``group`` filled to ``size`` with copies of its last step (computed, then dropped).

    Every group then has one shape, so one compiled program serves them all.
    """
    return group + (group[-1],) * (size - len(group))
