"""The value-range checks: float images read as [0, 1] by the colour rules.

Colour operators clip float images to [0, 1]; fed floats in [0, 255], or images already
normalised, they would silently clip most pixels. A colour operator after a normaliser is
an error when the pipeline is built; which (operator, field) pairs read floats is known
then too, and their values are looked at once per iteration, on its first batch, where
every float field is also checked for NaN and inf.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from feedax._errors import PipelineError
from feedax._operator import Operator
from feedax._ops.label import OneHot
from feedax._ops.normalize import Normalize, RunningNormalize

SLACK = 1e-3
"""How far outside [0, 1] a value may stray (rounding) before it counts as another scale."""


def unit_range_fields(operators: Any, spec: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """``(operator name, field)`` for each operator, nested ones too, reading floats as [0, 1]."""
    found: dict[tuple[str, str], None] = {}
    for _, node in reversed(list(nnx.iter_graph(operators))):  # outer operators first
        if not (isinstance(node, Operator) and node.unit_range and node.field in spec):
            continue
        dtype = getattr(spec[node.field], "dtype", None)
        if dtype is not None and jnp.issubdtype(dtype, jnp.floating):
            found[(type(node).__name__, node.field)] = None
    return tuple(found)


def label_ranges(operators: Any) -> tuple[tuple[str, int], ...]:
    """``(field, num_classes)`` of each OneHot, nested ones too: labels must lie in range."""
    found = {
        (node.field, node.num_classes): None
        for _, node in nnx.iter_graph(operators)
        if isinstance(node, OneHot)
    }
    return tuple(found)


def check_labels(
    labels: tuple[tuple[str, int], ...], arrays: Mapping[str, Any], index: Any
) -> None:
    """Raises if a label a OneHot reads lies outside ``[0, num_classes)`` (an all-zero row).

    ``index``: the rows' record indices (None: a row is the record index).
    """
    for field, classes in labels:
        if field not in arrays:
            continue
        values = np.asarray(arrays[field])
        bad = (values < 0) | (values >= classes)
        if bad.any():
            row = int(np.flatnonzero(bad.ravel())[0])
            record = row if index is None else int(np.asarray(index)[row])
            raise PipelineError(
                f"Pipeline: field {field!r} of record index {record} holds the label "
                f"{values.ravel()[row]}, outside [0, {classes}) of OneHot({classes}), which "
                "would give an all-zero row. Fix the label, or num_classes."
            )


def check_unit_order(operators: Any) -> None:
    """Raises if a colour rule reads a field after it was normalised (it would clip it)."""
    normalised: dict[str, str] = {}
    for top in operators:
        nodes = [n for _, n in reversed(list(nnx.iter_graph(top))) if isinstance(n, Operator)]
        for node in nodes:
            if node.unit_range and node.field in normalised:
                raise PipelineError(
                    f"Pipeline: {type(node).__name__} reads field {node.field!r} after "
                    f"{normalised[node.field]} has moved it off [0, 1]; colour operators clip "
                    "float images to [0, 1] (torchvision does not clamp some of them). Put "
                    f"{type(node).__name__} before {normalised[node.field]}."
                )
        for node in nodes:
            if isinstance(node, Normalize | RunningNormalize):
                normalised.setdefault(node.field, type(node).__name__)


def check_values(
    arrays: Mapping[str, Any], index: Any, readers: tuple[tuple[str, str], ...]
) -> None:
    """The checks of a first batch: finite floats, and [0, 1] where colour rules read.

    ``index``: the rows' record indices (None: unknown, or ``arrays`` are whole on-device
    columns, where a row is a record index).
    One reduction per float field, once per iteration.
    """
    for field, values in arrays.items():
        if not jnp.issubdtype(values.dtype, jnp.floating):
            continue
        bad = ~jnp.isfinite(values).reshape(len(values), -1).all(axis=1)
        if bool(bad.any()):
            row = int(jnp.argmax(bad))
            where = f"row {row}" if index is None else f"record index {jax.device_get(index)[row]}"
            raise PipelineError(
                f"Pipeline: field {field!r} of {where} holds NaN or inf, which "
                "every operator would spread (a blur or resize smears it over its "
                "neighbours). Fix or drop such records at the source (a filter, or a host "
                "stage that checks np.isfinite)."
            )
    check_unit_range(readers, arrays)


def check_unit_range(readers: tuple[tuple[str, str], ...], arrays: Mapping[str, Any]) -> None:
    """Raises if a field that a colour rule reads holds floats outside [0, 1]."""
    for name, field in readers:
        if field not in arrays:
            continue
        values = arrays[field]
        low, high = (float(v) for v in jax.device_get((jnp.min(values), jnp.max(values))))
        if low < -SLACK or high > 1 + SLACK:
            raise PipelineError(
                f"Pipeline: {name} reads field {field!r} as float values in [0, 1] and clips "
                f"to it, but the first batch holds values in [{low:.4g}, {high:.4g}]. Scale "
                "the images to [0, 1] (divide by 255, or feed uint8 and let the operator scale "
                "it), and put colour operators before Normalize."
            )
