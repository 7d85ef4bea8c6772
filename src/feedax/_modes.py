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
            if module.__hash__ is None:  # a container (nnx.List): its items are claimed
                continue
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


class ModeHolders:
    """A pipeline's mode: its own, and every mode attribute of what it holds, read live.

    A plain holder (not a list), so NNX keeps the modules it refers to out of the graph.
    """

    def __init__(self, parts: Sequence[nnx.Module]):
        self.holders = [
            (module, name)
            for part in parts
            for _, module in nnx.iter_modules(part)
            for name in MODE_ATTRIBUTES
            if hasattr(module, name)
        ]

    def mode(self, owner: nnx.Module) -> tuple[bool, ...]:
        """The owner's ``deterministic`` and every held mode attribute (attribute reads)."""
        held = (bool(getattr(module, name)) for module, name in self.holders)
        return (bool(getattr(owner, "deterministic", False)), *held)
