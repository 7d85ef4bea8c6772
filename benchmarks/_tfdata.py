"""tf.data peer (only when TensorFlow is installed).

Not written yet: TensorFlow is not part of the project's environment, so a tf.data pipeline
could not be checked against the others. The harness reports "not installed" when
TensorFlow is absent and "n/a" when it is present.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import tensorflow  # noqa: F401  (ImportError -> "not installed")

from benchmarks._data import Bundle


def w1(data: Bundle, cfg: Any) -> Iterator[dict[str, Any]]:
    """W1 with tf.data (not written)."""
    raise NotImplementedError("tf.data variant not written (TensorFlow not in the env)")


w2 = w1
w2folder = w1
w3 = w1
