"""The pipeline's device step, and compiling it ahead, while the data is uploaded."""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Any

import jax
import numpy as np
from flax import nnx

from feedax._apply import BoundOperators
from feedax._feed import replicated
from feedax._order import round_keys

if TYPE_CHECKING:
    from feedax._pipeline import Pipeline

Batch = dict[str, jax.Array]
VALID = "valid"
"""The name of the padding mask field added when ``drop_remainder=False``."""


class DeviceStep:
    """The device step of one iteration: the fused operators, with their graph cached."""

    def __init__(self, pipe: Pipeline):
        self.pipe = pipe
        self.version = -1
        self.call: Any = None
        self.gathered: Any = None

    def __call__(self, epoch: int, arrays: dict[str, Any]) -> Batch:
        pipe = self.pipe
        if self.version != pipe._mode_version:
            # Traversing the graph once saves about a millisecond per batch; a mode change
            # (train/eval) changes the graph, so it is traversed again.
            self.call = BoundOperators(pipe.operators, donate=True)
            self.version = pipe._mode_version
            if pipe._device_data is not None:
                if pipe._ahead is not None:
                    pipe._ahead.wait()  # the same program: compile it once
                self.gathered = self.call.gathering(**gather_layout(pipe))
        if self.gathered is not None:
            out, valid = self.gathered(
                pipe._device_data.columns,  # type: ignore[union-attr]
                arrays["__keys"],
                arrays["__start"],
                np.int32(epoch),
            )
        else:
            indices, valid = arrays.pop("__index"), arrays.pop("__valid")
            epochs = arrays.pop("__epoch", np.int32(epoch))
            out = self.call(arrays, epochs, indices, valid)
        if not pipe.drop_remainder:
            out[VALID] = valid
        if pipe.sharding is not None and pipe._device_sharding is not pipe.sharding:
            out = jax.device_put(out, pipe.sharding)  # same layout: re-labels, copies nothing
        return out


def gather_layout(pipe: Pipeline) -> dict[str, Any]:
    """The static layout of a pipeline's on-device step (see ``BoundOperators.gathering``)."""
    return {
        "n": len(pipe.source),
        "batch_size": pipe.batch_size,
        "sharding": pipe._device_sharding,
        "shuffle": pipe.shuffle,
    }


class CompileAhead:
    """Compiles a pipeline's on-device step in a background thread.

    It is traced in the caller's thread, so a record or operator that does not fit raises
    when the pipeline is built; XLA then compiles while the caller goes on (uploading the
    data, building a model). The first batch waits for it and finds the program compiled.
    """

    def __init__(self, pipe: Pipeline, spec: dict[str, jax.ShapeDtypeStruct], n: int):
        sharding = pipe._device_sharding
        if isinstance(sharding, jax.sharding.NamedSharding):
            sharding = jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec())
        columns = {
            k: jax.ShapeDtypeStruct(
                (n, *v.shape), jax.dtypes.canonicalize_dtype(v.dtype), sharding=sharding
            )
            for k, v in spec.items()
        }
        # Exactly the arguments of the first batch (same shapes, placements, static layout),
        # so the first call finds this program in JAX's cache.
        state = replicated(pipe._device_sharding, nnx.state(pipe.operators))
        traced = BoundOperators(pipe.operators).trace_gathering(
            jax.tree.leaves(state), columns, round_keys(pipe.seed, 0), **gather_layout(pipe)
        )
        # Not a daemon: the interpreter waits for it at exit instead of killing it in XLA.
        self._thread = threading.Thread(target=self._compile, args=(traced,), name="feedax-compile")
        self._thread.start()

    @staticmethod
    def _compile(traced: Any) -> None:
        # A failure is left to the first batch, which compiles again and raises it there.
        with contextlib.suppress(Exception):
            traced.lower().compile()

    def wait(self) -> None:
        """Returns once the compilation has finished."""
        self._thread.join()
