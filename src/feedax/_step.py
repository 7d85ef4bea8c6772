"""The typed values that travel between the stages: a planned step, and its loaded batch."""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import numpy as np


class Position(NamedTuple):
    """Where a pipeline is: the value of its cursor.

    Attributes:
      epoch: the epoch.
      step: batches of that epoch already handed over.
      position: the order position (global, over all processes) of the next record to
        consider: filtered and skipped records before it are consumed. For packed rows:
        where the planning window of the next row starts.
      offset: rows of that window already handed over (packed rows; else 0).
    """

    epoch: int
    step: int
    position: int
    offset: int = 0


@dataclasses.dataclass(frozen=True)
class Step:
    """One planned batch: which records form its rows, global over all processes.

    Attributes:
      epoch: its epoch.
      step: its number in the epoch.
      start: the order position where it starts.
      end: the order position after the last one it consumed (filtered or skipped
        records included).
      indices: ``(B,)`` int64 record identities (padding rows repeat row 0), or None when
        the device computes them from ``(epoch, start)`` (data held on the device).
      valid: ``(B,)`` bool, False for padding rows.
      epochs: ``(B,)`` each record's own epoch (a mixture's sources run their own), or
        None when it is ``epoch`` for every row.
      last: the last batch of its epoch.
      positions: ``(B,)`` the rows' order positions (padding rows repeat row 0's), or
        None with ``indices``.
      skipped: record indices the skip policy left out between ``start`` and ``end``.
      began: ``time.perf_counter()`` when it was planned (for the profile).
      offset: for packed rows, the rows of the window at ``end`` this step used up.
      segments: for packed rows, the segment table (``feedax._pack``: row, sequence,
        start in it, length, column, tokens cut) of the whole global batch.
    """

    epoch: int
    step: int
    start: int
    end: int
    indices: np.ndarray | None
    valid: np.ndarray
    epochs: np.ndarray | None
    last: bool
    positions: np.ndarray | None = None
    skipped: tuple[int, ...] = ()
    began: float = 0.0
    offset: int = 0
    segments: np.ndarray | None = None

    @property
    def after(self) -> Position:
        """The cursor once this batch has been handed over."""
        if self.last:
            return Position(self.epoch + 1, 0, 0)
        return Position(self.epoch, self.step + 1, self.end, self.offset)


@dataclasses.dataclass(frozen=True)
class Loaded:
    """A step whose records are read (or, for data on the device, ready to gather).

    Attributes:
      step: the plan it realises.
      fields: field -> this process's rows, on the device (empty for on-device data).
      index: ``(B,)`` int32 record identities on the device (None for on-device data, or
        when no operator reads them).
      valid: ``(B,)`` bool on the device (None for on-device data, or when neither an
        operator nor the ``"valid"`` field needs it).
      epochs: ``(B,)`` int32 per-record epochs on the device, or None.
      read: host seconds spent reading (and in the host stage), per step.
      transfer: host seconds spent transferring, per step.
      more: further steps loaded with this one (see ``feedax._groups``): their rows follow
        ``step``'s in ``fields``, ``index`` and ``valid``, padded to the group's size with
        copies of the last, and one device call computes them all.
    """

    step: Step
    fields: dict[str, Any]
    index: Any
    valid: Any
    epochs: Any
    read: float
    transfer: float
    more: tuple[Step, ...] = ()

    @property
    def steps(self) -> tuple[Step, ...]:
        """The steps this load realises, in order."""
        return (self.step, *self.more)
