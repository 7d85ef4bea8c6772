"""Checkpoints of pipelines beside models, with Orbax.

- ``save`` / ``restore``: one call each for a pipeline, model and optimizer.
- ``Save`` / ``Restore``: Orbax ``CheckpointArgs``, so that a pipeline is one item of an
  ``ocp.args.Composite`` under your own ``CheckpointManager`` (no abstract target).
- ``PipelineHandler``: the Orbax ``CheckpointHandler`` they are registered with.

``Save``, ``Restore`` and ``PipelineHandler`` import Orbax when first used.
"""

from typing import TYPE_CHECKING, Any

from feedax._checkpoint import restore, save

if TYPE_CHECKING:
    from feedax._orbax import PipelineHandler, Restore, Save

__all__ = ["PipelineHandler", "Restore", "Save", "restore", "save"]


def __getattr__(name: str) -> Any:
    if name in ("PipelineHandler", "Restore", "Save"):
        from feedax import _orbax

        return getattr(_orbax, name)
    raise AttributeError(f"module 'feedax.checkpoint' has no attribute {name!r}")
