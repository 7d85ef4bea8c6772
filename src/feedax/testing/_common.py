"""What the checks share: failing with a message, and batches on the host."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np


def expect(condition: Any, message: str) -> None:
    """Raises ``AssertionError(message)`` unless ``condition`` (kept under ``python -O``)."""
    if not condition:
        raise AssertionError(message)


def on_host(batch: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """A batch as NumPy arrays."""
    return {k: np.asarray(v) for k, v in batch.items()}


def same_batches(
    expected: Iterable[Mapping[str, Any]], got: Iterable[Mapping[str, Any]], what: str
) -> None:
    """Every batch of ``got`` equals the one of ``expected`` at its place, field by field."""
    expected, got = list(expected), list(got)
    expect(len(expected) == len(got), f"{what}: {len(got)} batches, expected {len(expected)}")
    for i, (e, g) in enumerate(zip(expected, got, strict=True)):
        expect(e.keys() == g.keys(), f"{what}: batch {i} has fields {sorted(g)}, not {sorted(e)}")
        for field in e:
            expect(
                np.array_equal(np.asarray(e[field]), np.asarray(g[field])),
                f"{what}: batch {i}, field {field!r} differs",
            )
