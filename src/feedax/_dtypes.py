"""What the device can hold: 64-bit host values checked before they are narrowed."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from feedax._errors import SourceError


def check_fits_device(field: str, values: Any) -> None:
    """Raises if 64-bit values would change on the device (JAX's default 32-bit mode).

    One min / max pass per batch over each 64-bit field only (labels, ids): int64 beyond
    int32 would wrap and float64 beyond float32 would become inf.
    """
    values = np.asarray(values)
    narrow = jax.dtypes.canonicalize_dtype(values.dtype)
    if narrow == values.dtype or not values.size or values.dtype.kind not in "iuf":
        return
    limits = np.iinfo(narrow) if values.dtype.kind in "iu" else np.finfo(narrow)
    finite = values if values.dtype.kind in "iu" else values[np.isfinite(values)]
    if finite.size and (finite.min() < limits.min or finite.max() > limits.max):
        bad = (finite.max() if finite.max() > limits.max else finite.min()).item()
        raise SourceError(
            f"field {field!r} holds {bad!r} ({values.dtype}), which {narrow} (the device "
            f"dtype while jax_enable_x64 is off) cannot hold: it would arrive as another "
            "number. Store it in a narrower range (ids as offsets, values rescaled), keep it "
            "on the host, or enable 64-bit mode: jax.config.update('jax_enable_x64', True)."
        )
