"""The resume check every pipeline must pass."""

from __future__ import annotations

import itertools
from collections.abc import Callable

from flax import nnx

from feedax._pipeline import Pipeline
from feedax.testing._common import on_host, same_batches


def assert_resumes_exactly(make: Callable[[], Pipeline], steps: int, *, check: int = 2) -> None:
    """Checks that a pipeline restored from the state after any step continues exactly.

    A fresh pipeline given the state after each of the first ``steps`` batches yields
    next the ``check`` batches the uninterrupted stream does.

    ``make()`` must build the same pipeline each time (same source, seed, operators built
    with the same ``rngs``). Iteration is ``iter(pipe)``, so ``steps`` may cross epochs.

    Args:
      make: builds a fresh, identical pipeline.
      steps: resume after 0, 1, ..., ``steps - 1`` batches.
      check: batches compared after each resume.

    Example:
      >>> import numpy as np, feedax as fx
      >>> from feedax.testing import assert_resumes_exactly
      >>> make = lambda: fx.Pipeline(fx.ArraySource({"x": np.arange(10)}), batch_size=3,
      ...                            shuffle=True)
      >>> assert_resumes_exactly(make, steps=7)  # 3 batches per epoch: crosses two epochs
    """
    reference = _first(make(), steps + check)
    for k in range(steps):
        partial = make()
        _first(partial, k)
        fresh = make()
        nnx.update(fresh, nnx.clone(nnx.state(partial)))
        same_batches(reference[k : k + check], _first(fresh, check), f"resumed after {k} batches")


def _first(pipe: Pipeline, k: int) -> list[dict]:
    it = pipe._iterate(single_epoch=False)  # a generator: closed, it stops its read-ahead
    batches = [on_host(b) for b in itertools.islice(it, k)]
    it.close()
    return batches
