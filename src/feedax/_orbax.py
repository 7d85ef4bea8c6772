"""Orbax-native checkpoints of a pipeline: ``CheckpointManager`` arguments, registered.

``fx.checkpoint.Save(pipe)`` / ``fx.checkpoint.Restore(pipe)`` are Orbax
``CheckpointArgs`` bound to :class:`PipelineHandler`, so a pipeline is one item of an
``ocp.args.Composite`` beside the model, with no abstract target to build. The state is
written once (by process 0, as two small files) and restores under any process count.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import orbax.checkpoint as ocp

from feedax import _state_file


class PipelineHandler(ocp.CheckpointHandler):
    """The Orbax ``CheckpointHandler`` of a feedax pipeline's state (see :class:`Save`)."""

    def save(self, directory: Any, args: Save | None = None, *, item: Any = None) -> None:
        """Writes the state taken when ``args`` was made (process 0 only: it is global)."""
        if args is None:
            raise ValueError("PipelineHandler.save: pass args=fx.checkpoint.Save(pipe).")
        if jax.process_index() == 0:
            _state_file.write_values(directory, args.values)

    def restore(self, directory: Any, args: Restore | None = None, *, item: Any = None) -> Any:
        """Loads the saved state into ``args.pipeline``, in place, and returns it."""
        if args is None:
            raise ValueError(
                "PipelineHandler.restore: a pipeline is restored in place: pass "
                "args=fx.checkpoint.Restore(pipe) with a pipeline built as the saved one."
            )
        _state_file.read(directory, args.pipeline, "fx.checkpoint.Restore")
        return args.pipeline

    def metadata(self, directory: Any) -> Any:
        """None: the index file (``pipeline_state.json``) describes the state."""
        return None

    def finalize(self, directory: Any) -> None:
        """Nothing to do: the files are complete when ``save`` returns."""

    def close(self) -> None:
        """Nothing to release."""


@ocp.args.register_with_handler(PipelineHandler, for_save=True)
@dataclasses.dataclass
class Save(ocp.args.CheckpointArgs):
    """Orbax ``CheckpointArgs`` that save a pipeline's state: its value when this is made.

    Args:
      pipeline: the pipeline (any NNX module with a small, global state works).

    Example:
      >>> import orbax.checkpoint as ocp  # doctest: +SKIP
      >>> manager.save(step, args=ocp.args.Composite(  # doctest: +SKIP
      ...     model=ocp.args.StandardSave(nnx.state(model)), data=fx.checkpoint.Save(pipe)))
    """

    pipeline: Any
    values: dict[str, Any] = dataclasses.field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Taken now: Orbax may write in the background while training moves the cursor.
        self.values = _state_file.snapshot(self.pipeline)


@ocp.args.register_with_handler(PipelineHandler, for_restore=True)
@dataclasses.dataclass
class Restore(ocp.args.CheckpointArgs):
    """Orbax ``CheckpointArgs`` that restore a pipeline's state into it, in place.

    A checkpoint saved by a different pipeline raises :class:`feedax.StateMismatchError`
    and loads nothing.

    Args:
      pipeline: a pipeline built as the one that saved (source, operators, options).

    Example:
      >>> restored = manager.restore(step, args=ocp.args.Composite(  # doctest: +SKIP
      ...     model=ocp.args.StandardRestore(abstract_model), data=fx.checkpoint.Restore(pipe)))
    """

    pipeline: Any
