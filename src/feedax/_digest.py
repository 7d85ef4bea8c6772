"""A digest of an NNX state's values, to catch damaged checkpoints (Orbax keeps no checksums)."""

from __future__ import annotations

import hashlib
from typing import Any

import jax
import numpy as np


def digest(tree: Any) -> str | None:
    """A blake2b digest of a state's leaves: their paths, dtypes, shapes and bytes.

    None if some leaf is not all on this process (a multi-host sharded array), where
    Orbax's own checks are all there is.
    """
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    h = hashlib.blake2b(digest_size=16)
    for path, leaf in leaves:
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
            return None
        if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        value = np.asarray(jax.device_get(leaf))
        h.update(f"{jax.tree_util.keystr(path)}|{value.dtype}|{value.shape}|".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    return h.hexdigest()
