"""One owner per mode: a pipeline's modules belong to it alone, and their mode is read live."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

from flax import nnx

from feedax._errors import PipelineError

MODE_ATTRIBUTES = ("deterministic", "use_running_average")
"""The attributes NNX's ``train()`` / ``eval()`` set."""

_OWNERS: weakref.WeakKeyDictionary[nnx.Module, weakref.ReferenceType[Any]] = (
    weakref.WeakKeyDictionary()
)


def claim(owner: nnx.Module, parts: Sequence[tuple[str, nnx.Module]]) -> None:
    """Makes ``owner`` the one owner of ``parts`` (``(label, module)``) and all they hold.

    Raises ``PipelineError`` if another live pipeline already holds one of them: it sets
    their mode (train/eval) and updates their statistics, so sharing them would let one
    pipeline switch the other's augmentation.
    """
    found: list[tuple[str, nnx.Module]] = []
    for label, part in parts:
        for _, module in nnx.iter_modules(part):
            other = _OWNERS.get(module)
            holder = None if other is None else other()
            if holder is not None and holder is not owner:
                raise PipelineError(
                    f"Pipeline: {label} ({type(module).__name__}) already belongs to another "
                    "Pipeline, which sets its mode (train/eval) and updates its statistics; "
                    "sharing it would let one pipeline switch the other's augmentation. Give "
                    "each pipeline its own operators: build them again, or pass copies "
                    "(nnx.clone(op)); to evaluate with a training pipeline's statistics, copy "
                    "them: nnx.update(eval_op, nnx.state(train_op, nnx.BatchStat))."
                )
            found.append((label, module))
    for _, module in found:
        _OWNERS[module] = weakref.ref(owner)


def mode_holders(parts: Sequence[nnx.Module]) -> list[tuple[nnx.Module, str]]:
    """``(module, attribute)`` for every mode attribute held inside ``parts``."""
    return [
        (module, name)
        for part in parts
        for _, module in nnx.iter_modules(part)
        for name in MODE_ATTRIBUTES
        if hasattr(module, name)
    ]


def mode_of(holders: Sequence[tuple[nnx.Module, str]]) -> tuple[bool, ...]:
    """The current mode: the value of every mode attribute (a few attribute reads)."""
    return tuple(bool(getattr(module, name)) for module, name in holders)
