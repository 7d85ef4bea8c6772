"""Conformance checks for your own operators, sources and pipelines.

The project's own test suites are parametrisations of these functions, so an operator or
source that passes them keeps the guarantees feedax's own do. Each raises
``AssertionError`` naming what broke; use them inside pytest (or anywhere).

- :func:`check_operator`: a one-record operator: same key same output, per-record and
  per-epoch draws, the one-record call equal to its row of the vmapped batch, eval mode,
  shapes and dtypes, gradients when it says it is differentiable.
- :func:`check_batch_operator`: the same for a batch operator (MixUp-like).
- :func:`check_source`: a random-access source on your data: reads in the order asked,
  out-of-range errors, every record once per epoch, resume at every step, batch-size and
  shard-count invariance, pickling, reads from several threads at once.
- :func:`assert_resumes_exactly`: any pipeline, restored from the state after every step.

Example:
  >>> import numpy as np, feedax as fx
  >>> from feedax import testing
  >>> from flax import nnx
  >>> images = np.random.default_rng(0).integers(0, 256, (8, 6, 6, 3), np.uint8)
  >>> testing.check_operator(lambda: fx.RandomFlip(rngs=nnx.Rngs(augment=0)), {"image": images})
  >>> testing.check_source(fx.ArraySource({"image": images, "label": np.arange(8)}))
"""

from feedax.testing._operators import check_batch_operator, check_operator
from feedax.testing._pipelines import assert_resumes_exactly
from feedax.testing._sources import check_source

__all__ = ["assert_resumes_exactly", "check_batch_operator", "check_operator", "check_source"]
