"""Running a chain of one-record operators in order, a flip folded into the resize before it.

A resize (or resized crop) followed by a flip of its output is, pixel for pixel, the same
resize with its output's rows or columns taken in reverse order. Folded so, the flip costs
nothing; run after it, it is one more pass over the image, and the compiler either
computes the warp inside the flip's gather (several times slower) or stores and reloads
it (measured: 1.8 times slower for W2's device work). A plain crop is not folded: on
32-pixel images a separate flip measured faster. The fold applies when the warp says it
can mirror (``SpatialOperator.mirrorable``), the next operator is a mirror
(``SpatialOperator.mirror``) in train mode, and both act on the same fields; the output
is then identical to running them one after the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from feedax._context import RecordContext
from feedax._operator import Operator, Record, SpatialOperator, in_eval


def run_chain(operators: Sequence[Operator], record: Record, ctx: RecordContext) -> dict[str, Any]:
    """``record`` through ``operators`` in order (as ``op(record, ctx)`` one by one)."""
    record = dict(record)
    i = 0
    while i < len(operators):
        op = operators[i]
        after = operators[i + 1] if i + 1 < len(operators) else None
        folded = _folded(op, after, record, ctx) if after is not None else None
        if folded is None:
            record = op(record, ctx)
            i += 1
        else:
            record = folded
            i += 2
    return record


def _folded(
    warp: Operator, flip: Operator, record: Record, ctx: RecordContext
) -> dict[str, Any] | None:
    """``flip(warp(record))`` in one warp, or None where the two do not fold."""
    if not (isinstance(warp, SpatialOperator) and warp.mirrorable):
        return None
    if not isinstance(flip, SpatialOperator) or in_eval(flip) or flip.field != warp.field:
        return None
    if set(flip.fields) != set(warp.fields):
        return None
    mirror = flip.mirror(ctx)
    if mirror is None:
        return None
    out = warp.mirrored(record, ctx, mirror)
    if out is not None:
        flip.checked(out)  # what the flip would reject, it still rejects
    return out
