"""Packing: variable-length sequences into rows of a fixed length, planned from lengths alone.

The plan of an epoch is computed window by window of its keyed order: the sequences of a
window (``Pack.window`` of them) are packed into rows, and the rows of consecutive
windows follow each other. Which sequences form which rows is a pure function of (seed,
epoch, position in the order) and the sequences' lengths; windows never straddle epochs;
every token of every sequence lands in exactly one row once per epoch (or is counted as
truncated). The cursor is (epoch, step, window start, rows of that window handed over),
so resuming re-plans one window.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Iterator
from typing import Any, Literal

import jax
import numpy as np
from flax import nnx

from feedax._errors import PipelineError, SourceError
from feedax._filter import Filter
from feedax._order import EpochOrder
from feedax._plan import Locate
from feedax._step import Position, Step

Method = Literal["best_fit", "first_fit", "concat"]
Long = Literal["split", "truncate", "error"]

# Columns of a segment table: one row per piece of a sequence placed in a packed row.
ROW, DOC, START, LEN, COL, CUT = range(6)


class Pack(nnx.Module):
    """Packs a ragged token field into rows of ``length`` tokens, for language models.

    Each batch row holds several sequences (documents) end to end, with the fields a
    trainer needs (all ``(batch, length)``):

    - ``tokens`` (the source's dtype; ``pad_id`` where no sequence is),
    - ``segment_ids`` int32: 1, 2, ... for the sequences of the row, 0 for padding (give
      them to the attention mask so no sequence attends to another),
    - ``positions`` int32: each token's position in its segment (restarting at 0 in each;
      a sequence split across rows restarts in each piece, which attends only to itself),
    - ``targets`` (with ``targets=True``): the next token of the same segment,
    - ``loss_mask`` bool: where ``targets`` is a real next token (not at a segment's
      last token, nor in padding).

    Args:
      length: tokens per row.
      field: the ragged source field to pack.
      method: ``"best_fit"`` (default): the sequences of a window, longest first, each
        into the fullest row it fits (best-fit decreasing: the highest fill);
        ``"first_fit"``: in order, each into the first row it fits; ``"concat"``: the
        window's sequences concatenated and cut into rows, so sequences are split across
        rows (no padding but the window's last row).
      window: sequences packed together (more: higher fill, more planning per resume).
      long: sequences longer than ``length``: ``"split"`` into pieces of ``length``
        (default; every token used), ``"truncate"`` to ``length`` (the dropped tokens are
        counted in ``pipe.truncated_tokens``), or ``"error"``.
      max_segments: at most this many sequences per row (None: no limit).
      targets: add ``targets`` (next-token ids within each sequence).
      pad_id: the token of padding positions.
      bos_id: a token put before every sequence (None: none; for corpora tokenized
        without it). It counts in the sequence's length when packing.
      eos_id: a token put after every sequence (None: none).

    Example:
      >>> import numpy as np, feedax as fx
      >>> src = fx.TokenSource(np.arange(1, 10, dtype=np.int32), np.array([0, 4, 6, 9]))
      >>> pipe = fx.Pipeline(src, batch_size=2, pack=fx.Pack(5), drop_remainder=False)
      >>> batch = next(pipe.epoch())
      >>> np.asarray(batch["tokens"]).tolist(), np.asarray(batch["segment_ids"]).tolist()
      ([[1, 2, 3, 4, 0], [5, 6, 7, 8, 9]], [[1, 1, 1, 1, 0], [1, 1, 2, 2, 2]])
    """

    def __init__(
        self,
        length: int,
        *,
        field: str = "tokens",
        method: Method = "best_fit",
        window: int = 2048,
        long: Long = "split",
        max_segments: int | None = None,
        targets: bool = True,
        pad_id: int = 0,
        bos_id: int | None = None,
        eos_id: int | None = None,
    ):
        for what, value in (("length", length), ("window", window)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise PipelineError(f"Pack: {what} must be an int >= 1, got {value!r}.")
        if method not in ("best_fit", "first_fit", "concat"):
            raise PipelineError(
                f"Pack: method must be 'best_fit', 'first_fit' or 'concat', got {method!r}."
            )
        if long not in ("split", "truncate", "error"):
            raise PipelineError(f"Pack: long must be 'split', 'truncate' or 'error', got {long!r}.")
        if max_segments is not None and (not isinstance(max_segments, int) or max_segments < 1):
            raise PipelineError(
                f"Pack: max_segments must be None or an int >= 1, got {max_segments!r}."
            )
        self.length, self.field, self.method, self.window = length, field, method, window
        self.long, self.max_segments = long, max_segments
        self.targets, self.pad_id = bool(targets), int(pad_id)
        self.bos_id = None if bos_id is None else int(bos_id)
        self.eos_id = None if eos_id is None else int(eos_id)

    def config(self) -> tuple[Any, ...]:
        """The arguments that decide the rows (part of the pipeline's signature)."""
        return (
            self.length,
            self.field,
            self.method,
            self.window,
            self.long,
            self.max_segments,
            self.targets,
            self.pad_id,
            self.bos_id,
            self.eos_id,
        )

    def output_spec(self, dtype: Any) -> dict[str, jax.ShapeDtypeStruct]:
        """The fields of one packed row (tokens of ``dtype``)."""
        row = (self.length,)
        spec = {
            "tokens": jax.ShapeDtypeStruct(row, np.dtype(dtype)),
            "segment_ids": jax.ShapeDtypeStruct(row, np.dtype(np.int32)),
            "positions": jax.ShapeDtypeStruct(row, np.dtype(np.int32)),
        }
        if self.targets:
            spec["targets"] = jax.ShapeDtypeStruct(row, np.dtype(dtype))
            spec["loss_mask"] = jax.ShapeDtypeStruct(row, np.dtype(bool))
        return spec

    def pieces(self, docs: np.ndarray, lengths: np.ndarray, source: str) -> np.ndarray:
        """The items to place: ``(doc, start, length, cut)`` per piece, longer ones cut."""
        L = self.length
        empty = lengths == 0
        if empty.any():
            raise SourceError(
                f"{source}: record index {int(docs[empty][0])} is an empty sequence, which has "
                "nothing to pack. Remove it, or drop such records with "
                "filter=fx.Filter(lambda m: m['length'] > 0, columns=['length'])."
            )
        cut = np.zeros(len(docs), np.int64)
        if self.method == "concat" or (lengths <= L).all():
            return np.stack([docs, np.zeros_like(docs), lengths, cut], axis=1)
        if self.long == "error":
            bad = int(docs[lengths > L][0])
            raise SourceError(
                f"{source}: record index {bad} has {int(lengths[docs == bad][0])} tokens, more "
                f"than a row ({L}), with Pack(long='error'). Use long='split' to cut it into "
                "pieces (every token used) or long='truncate' to keep its first tokens."
            )
        if self.long == "truncate":
            cut = np.maximum(lengths - L, 0)
            return np.stack([docs, np.zeros_like(docs), np.minimum(lengths, L), cut], axis=1)
        counts = -(-lengths // L)
        doc = np.repeat(docs, counts)
        first = np.repeat(np.cumsum(counts) - counts, counts)
        start = (np.arange(len(doc)) - first) * L
        size = np.minimum(np.repeat(lengths, counts) - start, L)
        return np.stack([doc, start, size, np.zeros_like(doc)], axis=1)

    def place(self, items: np.ndarray) -> np.ndarray:
        """The segment table (``ROW, DOC, START, LEN, COL, CUT``) of one window's items."""
        if self.method == "concat":
            return _concat(items, self.length)
        rows = _best_fit(items, self) if self.method == "best_fit" else _first_fit(items, self)
        order = np.lexsort((np.arange(len(rows)), rows))  # by row, then in the window's order
        items, rows = items[order], rows[order]
        lens = items[:, 2]
        first = np.r_[True, rows[1:] != rows[:-1]]
        ends = np.cumsum(lens)
        row_start = np.maximum.accumulate(np.where(first, ends - lens, 0))
        col = ends - lens - row_start
        return np.stack([rows, items[:, 0], items[:, 1], lens, col, items[:, 3]], axis=1)


def _best_fit(items: np.ndarray, pack: Pack) -> np.ndarray:
    """Best-fit decreasing: longest first, each into the open row with least room left."""
    L, cap = pack.length, pack.max_segments
    order = np.argsort(-items[:, 2], kind="stable")
    rows = np.empty(len(items), np.int64)
    room: list[tuple[int, int]] = []  # (room left, row), sorted, rows that take more
    counts: list[int] = []
    for i in order.tolist():
        size = int(items[i, 2])
        at = bisect.bisect_left(room, (size, -1))
        if at == len(room):
            row, left = len(counts), L - size
            counts.append(1)
        else:
            left, row = room.pop(at)
            left -= size
            counts[row] += 1
        rows[i] = row
        if left > 0 and (cap is None or counts[row] < cap):
            bisect.insort(room, (left, row))
    return rows


def _first_fit(items: np.ndarray, pack: Pack) -> np.ndarray:
    """First fit: in order, each into the first open row with room."""
    L, cap = pack.length, pack.max_segments
    room = np.full(len(items), -1, np.int64)  # a row per item at most
    counts = np.zeros(len(items), np.int64)
    rows = np.empty(len(items), np.int64)
    opened = 0
    for i, size in enumerate(items[:, 2].tolist()):
        fits = np.flatnonzero(room[:opened] >= size)
        row = int(fits[0]) if len(fits) else opened
        if row == opened:
            room[row], opened = L, opened + 1
        room[row] -= size
        counts[row] += 1
        rows[i] = row
        if cap is not None and counts[row] >= cap:
            room[row] = -1
    return rows


def _concat(items: np.ndarray, L: int) -> np.ndarray:
    """The items end to end, cut into rows of ``L``: pieces cross row boundaries."""
    lens = items[:, 2]
    begin = np.cumsum(lens) - lens
    first_row, last_row = begin // L, (begin + lens - 1) // L
    counts = last_row - first_row + 1
    item = np.repeat(np.arange(len(items)), counts)
    row = (
        np.repeat(first_row, counts)
        + np.arange(len(item))
        - np.repeat(np.cumsum(counts) - counts, counts)
    )
    lo = np.maximum(begin[item], row * L)
    hi = np.minimum(begin[item] + lens[item], (row + 1) * L)
    start = items[item, 1] + lo - begin[item]
    cut = np.where(lo == begin[item], items[item, 3], 0)
    return np.stack([row, items[item, 0], start, hi - lo, lo - row * L, cut], axis=1)


class PackPlan:
    """The packed rows of each epoch, window by window of the keyed order.

    Args:
      n: sequences per epoch.
      batch_size: rows per step.
      order: makes the order (positions -> sequence indices), read at each start.
      lengths: sequence indices -> lengths.
      pack: the packing.
      filter: keeps sequences by their metadata before packing.
      source: the source (for the filter and messages).
      seed: the seed of the order (with ``shuffle``, a window's rows are emitted in a keyed
        order of their own: best fit creates rows longest sequences first).
      shuffle: shuffle each window's rows.
    """

    def __init__(
        self,
        *,
        n: int,
        batch_size: int,
        order: Callable[[], Locate],
        lengths: Callable[[np.ndarray], np.ndarray],
        pack: Pack,
        filter: Filter | None,
        source: Any,
        seed: int = 0,
        shuffle: bool = False,
    ):
        self.n, self.batch_size, self.order, self.lengths = n, batch_size, order, lengths
        self.pack, self.filter, self.source = pack, filter, source
        self.seed, self.shuffle = seed, shuffle

    def window(self, locate: Locate, epoch: int, start: int) -> np.ndarray:
        """The segment table of the window of the order that starts at ``start``."""
        positions = np.arange(start, min(start + self.pack.window, self.n), dtype=np.int64)
        docs, _ = locate(epoch, positions)
        if self.filter is not None:
            docs = docs[self.filter.keep(self.source, docs)]
        if not len(docs):
            return np.zeros((0, 6), np.int64)
        extra = (self.pack.bos_id is not None) + (self.pack.eos_id is not None)
        items = self.pack.pieces(docs, self.lengths(docs) + extra, self.source.name)
        table = self.pack.place(items)
        rows = int(table[-1, ROW]) + 1
        if self.shuffle and rows > 1:
            # A keyed order of the window's rows, from (seed, epoch, window start) alone.
            order = EpochOrder(rows, seed=self.seed, epoch=(epoch << 32) + start + 1)
            table[:, ROW] = order(np.arange(rows))[table[:, ROW]]
            table = table[np.lexsort((table[:, COL], table[:, ROW]))]
        return table

    def steps(self, at: Position, drop: bool) -> Iterator[Step]:
        """The steps from ``at`` on, endlessly across epochs."""
        locate = self.order()
        epoch, step, start, offset = at
        while True:
            yield from self._epoch(locate, epoch, step, start, offset, drop)
            epoch, step, start, offset = epoch + 1, 0, 0, 0

    def steps_per_epoch(self, drop: bool, epoch: int = 0) -> int:
        """Steps in ``epoch`` (plans the whole epoch: lengths only)."""
        locate, rows = self.order(), 0
        for start in range(0, self.n, self.pack.window):
            table = self.window(locate, epoch, start)
            rows += int(table[:, ROW].max()) + 1 if len(table) else 0
        b = self.batch_size
        return rows // b if drop else -(-rows // b)

    def _windows(
        self, locate: Locate, epoch: int, start: int
    ) -> Iterator[tuple[int, int, np.ndarray]]:
        """``(start, rows, table)`` of each window with rows, from ``start`` to the epoch's end."""
        for lo in range(start, self.n, self.pack.window):
            table = self.window(locate, epoch, lo)
            if len(table):
                yield lo, int(table[:, ROW].max()) + 1, table

    def _epoch(
        self, locate: Locate, epoch: int, step: int, start: int, offset: int, drop: bool
    ) -> Iterator[Step]:
        b = self.batch_size
        windows = self._windows(locate, epoch, start)
        pending: list[tuple[int, int, np.ndarray]] = []  # planned windows not yet used up
        while True:
            began = time.perf_counter()
            # Plan ahead until this batch and the next row (or the epoch's end) are known.
            while sum(rows for _, rows, _ in pending) - offset < b + (b if drop else 1):
                window = next(windows, None)
                if window is None:
                    break
                pending.append(window)
            available = sum(rows for _, rows, _ in pending) - offset
            count = min(b, available)
            if count == 0 or (drop and count < b):
                return
            first_start = pending[0][0]
            tables, taken = [], 0
            while taken < count:
                _, rows, table = pending[0]
                use = min(rows - offset, count - taken)
                part = table[(table[:, ROW] >= offset) & (table[:, ROW] < offset + use)].copy()
                part[:, ROW] += taken - offset
                tables.append(part)
                taken, offset = taken + use, offset + use
                if offset == rows:
                    pending.pop(0)
                    offset = 0
            rest = sum(rows for _, rows, _ in pending) - offset
            last = rest == 0 or (drop and rest < b)
            end = pending[0][0] if pending else self.n
            segments = np.concatenate(tables)
            valid = np.arange(b) < count
            rows_id = step * b + np.arange(b, dtype=np.int64)
            yield Step(
                epoch,
                step,
                first_start,
                end,
                rows_id,
                valid,
                None,
                last,
                offset=offset,
                segments=segments,
                began=began,
            )
            step += 1
            if last:
                return
