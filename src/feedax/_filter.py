"""Filter: keep the records whose metadata satisfy a predicate, decided when planning."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from flax import nnx

from feedax._errors import PipelineError

Predicate = Callable[[Mapping[str, np.ndarray]], Any]


class Filter(nnx.Module):
    """Keeps the records whose metadata columns satisfy ``predicate``.

    The predicate is vectorised: it receives a window of records as ``column -> array``
    (one value per record, read with ``source.metadata(indices, columns)``) and returns a
    boolean array, True for the records to keep. It is evaluated while the pipeline plans
    its rows, window by window of the epoch's order, from metadata alone: so a filtered
    pipeline keeps full static batches, resumes exactly (the cursor records where the next
    unread record is), and every process derives the same global plan and reads only its
    own rows. It must be a pure function of the columns (no randomness, no state).

    To drop records by what a host stage computes (a decoded size, a token count), use
    ``on_error="skip"`` with a host function that raises for them: that reads records to
    decide, so it needs a single process.

    Args:
      predicate: ``columns -> bool array`` of the records to keep.
      columns: the metadata columns it reads (cheap ones: a length, a score, a label).
      name: a name for messages (default: the predicate's name).

    Example:
      >>> import numpy as np, feedax as fx
      >>> src = fx.ArraySource({"x": np.arange(10), "label": np.arange(10) % 3})
      >>> keep = fx.Filter(lambda m: m["label"] != 0, columns=["label"])
      >>> pipe = fx.Pipeline(src, batch_size=3, filter=keep, drop_remainder=True)
      >>> [np.asarray(b["x"]).tolist() for b in pipe.epoch()]
      [[1, 2, 4], [5, 7, 8]]
    """

    def __init__(self, predicate: Predicate, columns: Sequence[str], *, name: str | None = None):
        if not callable(predicate):
            raise PipelineError(
                f"Filter: predicate must be callable (columns -> bool array), got "
                f"{type(predicate).__name__}."
            )
        names = (columns,) if isinstance(columns, str) else tuple(columns)
        if not names or not all(isinstance(c, str) and c for c in names):
            raise PipelineError(
                f"Filter: columns must name the metadata columns the predicate reads, got "
                f"{columns!r}. Pass e.g. columns=['length']."
            )
        self.predicate = predicate
        self.columns = names
        self.name = name or getattr(predicate, "__qualname__", type(predicate).__name__)

    def keep(self, source: Any, indices: np.ndarray) -> np.ndarray:
        """The boolean mask of the records at ``indices`` of ``source`` to keep."""
        columns = source.metadata(indices, self.columns)
        mask = np.asarray(self.predicate(columns))
        if mask.shape != indices.shape or mask.dtype != np.bool_:
            raise PipelineError(
                f"Filter {self.name!r}: the predicate must return one bool per record, shape "
                f"{indices.shape}, got {mask.dtype} of shape {mask.shape} on records "
                f"{indices[:8].tolist()}... of source {source.name!r}. Return a boolean array, "
                "e.g. columns['length'] >= 16."
            )
        return mask
