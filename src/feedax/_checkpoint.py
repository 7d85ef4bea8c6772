"""Saving and restoring pipelines (and models) with Orbax, in one call each."""

from __future__ import annotations

import os
from typing import Any

import jax
from flax import nnx


def _checkpointer() -> Any:
    import orbax.checkpoint as ocp  # deferred: orbax is slow to import

    return ocp.StandardCheckpointer()


def save(directory: str | os.PathLike[str], /, *, overwrite: bool = False, **modules: Any) -> None:
    """Saves the NNX state of each module under its keyword in one Orbax checkpoint.

    The pipeline's state is its cursor, RNG keys, running statistics and parameters:
    kilobytes, never the data. Pass the model and optimiser beside it so they are
    saved consistently.

    Args:
      directory: where to write; an absolute path is safest with Orbax.
      overwrite: replace an existing checkpoint in ``directory``.
      **modules: name -> NNX module (or nnx.Optimizer), e.g. ``pipeline=pipe, model=model``.

    Example:
      >>> fx.checkpoint.save("/tmp/ckpt/step_100", pipeline=pipe, model=model)  # doctest: +SKIP
      >>> fx.checkpoint.restore("/tmp/ckpt/step_100", pipeline=pipe, model=model)  # doctest: +SKIP
    """
    if not modules:
        raise ValueError("checkpoint.save: nothing to save; pass e.g. pipeline=pipe, model=model.")
    state = {name: nnx.state(module) for name, module in modules.items()}
    checkpointer = _checkpointer()
    checkpointer.save(os.path.abspath(directory), state, force=overwrite)
    checkpointer.wait_until_finished()


def restore(directory: str | os.PathLike[str], /, **modules: Any) -> None:
    """Restores, in place, the modules saved by :func:`save` under the same keywords.

    Build the modules exactly as for the run that saved them (same source, operators,
    model architecture); their current state gives the shapes to restore into. After
    this, iterating the pipeline yields exactly the batches the saved run would have.

    Args:
      directory: the checkpoint written by :func:`save`.
      **modules: name -> NNX module to update in place.
    """
    if not modules:
        raise ValueError("checkpoint.restore: nothing to restore; pass e.g. pipeline=pipe.")
    import orbax.checkpoint as ocp

    target = {name: nnx.state(module) for name, module in modules.items()}
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    path = os.path.abspath(directory)
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint.restore: no checkpoint at {path!r}.")
    restored = _checkpointer().restore(path, abstract)
    for name, module in modules.items():
        nnx.update(module, restored[name])
