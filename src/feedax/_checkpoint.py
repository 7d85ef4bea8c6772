"""Saving and restoring pipelines (and models) with Orbax, in one call each."""

from __future__ import annotations

import json
import os
from typing import Any

import jax
from flax import nnx

from feedax._digest import digest
from feedax._errors import CheckpointError, StateMismatchError


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
    path = os.path.abspath(directory)
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(
            f"checkpoint.save: {path!r} already exists. Save each step to its own directory, "
            "or pass overwrite=True to replace it."
        )
    state = {name: nnx.state(module) for name, module in modules.items()}
    digests = {name: digest(tree) for name, tree in state.items()}
    checkpointer = _checkpointer()
    checkpointer.save(path, state, force=overwrite)
    checkpointer.wait_until_finished()
    if jax.process_index() == 0:
        with open(os.path.join(path, DIGEST_FILE), "w") as file:
            json.dump({"blake2b": digests}, file)


def restore(directory: str | os.PathLike[str], /, **modules: Any) -> None:
    """Restores, in place, the modules saved by :func:`save` under the same keywords.

    Build the modules exactly as for the run that saved them (same source, operators,
    model architecture); their current state gives the shapes to restore into. After
    this, iterating the pipeline yields exactly the batches the saved run would have.
    A pipeline whose checkpoint came from a different pipeline raises
    :class:`feedax.StateMismatchError` naming what differs, and nothing is loaded.

    Args:
      directory: the checkpoint written by :func:`save`.
      **modules: name -> NNX module to update in place.
    """
    if not modules:
        raise ValueError("checkpoint.restore: nothing to restore; pass e.g. pipeline=pipe.")
    import orbax.checkpoint as ocp

    path = os.path.abspath(directory)
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint.restore: no checkpoint at {path!r}.")
    target = {name: nnx.state(module) for name, module in modules.items()}
    checkpointer = _checkpointer()
    saved = checkpointer.metadata(path).item_metadata.tree
    for name, module in modules.items():
        _same_structure(name, module, target[name], saved)
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    restored = checkpointer.restore(path, abstract)
    _verify(path, {name: restored[name] for name in modules})
    for name, module in modules.items():
        nnx.update(module, restored[name])


DIGEST_FILE = "feedax_digest.json"
"""Beside Orbax's files: a digest of each saved item, checked on restore."""


def _verify(path: str, restored: dict[str, Any]) -> None:
    """Raises ``CheckpointError`` naming each item whose restored values differ from saved."""
    file = os.path.join(path, DIGEST_FILE)
    if not os.path.exists(file):  # saved by another tool: nothing to compare with
        return
    with open(file) as f:
        saved = json.load(f)["blake2b"]
    bad = [
        name
        for name, tree in restored.items()
        if saved.get(name) is not None and (got := digest(tree)) is not None and got != saved[name]
    ]
    if bad:
        raise CheckpointError(
            f"checkpoint.restore: {path!r} is damaged: the restored {', '.join(map(repr, bad))} "
            "differ from what was saved (digest mismatch), so nothing was loaded. Restore an "
            "earlier checkpoint."
        )


def _paths(tree: Any) -> set[str]:
    """The leaves' paths, as ``"operators.0.stream_key"`` (a Variable's value is its path)."""
    leaves = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: x is None)[0]
    paths = set()
    for path, _ in leaves:
        keys = [str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path]
        paths.add(".".join(k for k in keys if k not in ("", "value")))
    return paths


def _same_structure(name: str, module: Any, state: Any, saved: Any) -> None:
    """Raises, naming the differing entries, unless ``saved[name]`` has ``state``'s form."""
    from feedax._pipeline import Pipeline

    if name not in saved:
        raise ValueError(
            f"checkpoint.restore: the checkpoint holds no {name!r}; it holds {sorted(saved)}. "
            "Pass the modules under the keywords they were saved with."
        )
    mine = _paths(state)
    theirs = _paths(saved[name])
    if mine == theirs:
        return
    detail = (
        f"only in the checkpoint: {sorted(theirs - mine)[:6]}; only in {name!r}: "
        f"{sorted(mine - theirs)[:6]}"
    )
    if isinstance(module, Pipeline):
        raise StateMismatchError(
            f"checkpoint.restore: the checkpoint's {name!r} was saved by a different pipeline "
            f"(its state has other entries: {detail}), e.g. other operators or on_error. "
            "Restore it into a pipeline built like the one that saved it."
        )
    raise ValueError(
        f"checkpoint.restore: the checkpoint's {name!r} has another structure than the module "
        f"given ({detail}). Build it as in the run that saved it."
    )
