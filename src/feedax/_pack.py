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

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal

import jax
import numpy as np
from flax import nnx

from feedax._bins import best_fit, concat, first_fit, fit_aligned
from feedax._errors import PipelineError, SourceError
from feedax._filter import Filter
from feedax._order import EpochOrder
from feedax._plan import Locate
from feedax._step import Position, Step

Method = Literal["best_fit", "first_fit", "concat"]
Long = Literal["split", "truncate", "error"]

# Columns of a segment table: one row per piece of a sequence placed in a packed row; then
# (START, LEN, COL, CUT) again for each further field of an aligned packing.
ROW, DOC, START, LEN, COL, CUT = range(6)


def field_table(table: np.ndarray, f: int) -> np.ndarray:
    """The six columns (``ROW, DOC, START, LEN, COL, CUT``) of field ``f`` of a segment table."""
    return (
        table
        if f == 0 and table.shape[1] == 6
        else table[:, [ROW, DOC, *range(2 + 4 * f, 6 + 4 * f)]]
    )


def truncated(table: np.ndarray) -> int:
    """The tokens a segment table drops (``Pack(long='truncate')``), over all its fields."""
    return int(table[:, CUT::4].sum())


class Pack(nnx.Module):
    """Packs ragged token fields into rows of a fixed length, for language models.

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

    Several aligned fields (an encoder's inputs and a decoder's targets, of other lengths)
    pack together when ``length`` maps each field to its row length: a record goes into
    a row only where all its fields fit, and the record's fields get the same segment id in
    their rows. Each field ``f`` then gives ``f``, ``f_segment_ids``, ``f_positions`` and
    (for the fields in ``targets``) ``f_targets`` and ``f_loss_mask``.

    Args:
      length: tokens per row, or field -> tokens per row to pack several aligned fields.
      field: the ragged source field to pack (with an int ``length``).
      method: ``"best_fit"`` (default): the sequences of a window, longest first, each
        into the fullest row it fits (best-fit decreasing: the highest fill);
        ``"first_fit"``: in order, each into the first row it fits; ``"concat"``: the
        window's sequences concatenated and cut into rows, so sequences are split across
        rows (no padding but the window's last row; one field only).
      window: sequences packed together (more: higher fill, more planning per resume).
      long: sequences longer than a row: ``"split"`` into pieces of a row (every token
        used; one field only: pieces of aligned fields would not correspond),
        ``"truncate"`` to the row (the dropped tokens are counted in
        ``pipe.truncated_tokens``), or ``"error"``. Default: ``"split"`` for one field,
        ``"error"`` for several.
      max_segments: at most this many sequences per row (None: no limit).
      targets: add next-token targets within each sequence: True / False for every field,
        or the names of the fields that get them.
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

      Two aligned fields (inputs and targets of a translation pair):

      >>> pairs = fx.ArraySource({
      ...     "inputs": [np.array([5, 6, 7]), np.array([8, 9])],
      ...     "targets": [np.array([1]), np.array([2, 3])]})
      >>> pack = fx.Pack({"inputs": 5, "targets": 3}, targets=["targets"])
      >>> row = next(fx.Pipeline(pairs, batch_size=1, pack=pack).epoch())
      >>> np.asarray(row["inputs_segment_ids"]).tolist(), np.asarray(row["targets"]).tolist()
      ([[1, 1, 1, 2, 2]], [[1, 2, 3]])
    """

    def __init__(
        self,
        length: int | Mapping[str, int],
        *,
        field: str = "tokens",
        method: Method = "best_fit",
        window: int = 2048,
        long: Long | None = None,
        max_segments: int | None = None,
        targets: bool | Sequence[str] = True,
        pad_id: int = 0,
        bos_id: int | None = None,
        eos_id: int | None = None,
    ):
        self.aligned = isinstance(length, Mapping)
        if isinstance(length, Mapping):
            if field != "tokens":
                raise PipelineError(
                    f"Pack: give the fields as the keys of length, not also field={field!r}; "
                    f"got length={dict(length)!r}."
                )
            if not length:
                raise PipelineError("Pack: length maps no field; give field -> row length.")
            self.fields, self.sizes = tuple(length), tuple(length.values())
        else:
            self.fields, self.sizes = (field,), (length,)
        for what, value in (*zip(self.fields, self.sizes, strict=True), ("window", window)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise PipelineError(f"Pack: {what} must be an int >= 1, got {value!r}.")
        long = ("error" if len(self.fields) > 1 else "split") if long is None else long
        _check_choices(method, long, max_segments, len(self.fields))
        names = self.fields if targets is True else () if targets is False else tuple(targets)
        if not set(names) <= set(self.fields) or isinstance(targets, str):
            raise PipelineError(
                f"Pack: targets must be True, False or names among {list(self.fields)}, got "
                f"{targets!r}."
            )
        self.method, self.window, self.long, self.max_segments = method, window, long, max_segments
        self.targets = tuple(f for f in self.fields if f in names)
        self.pad_id = int(pad_id)
        self.bos_id = None if bos_id is None else int(bos_id)
        self.eos_id = None if eos_id is None else int(eos_id)

    @property
    def length(self) -> int:
        """Tokens per row (of the first field, with several)."""
        return self.sizes[0]

    @property
    def field(self) -> str:
        """The packed field (the first, with several)."""
        return self.fields[0]

    def config(self) -> tuple[Any, ...]:
        """The arguments that decide the rows (part of the pipeline's signature)."""
        return (
            self.sizes if self.aligned else self.length,
            self.fields if self.aligned else self.field,
            self.method,
            self.window,
            self.long,
            self.max_segments,
            self.targets if self.aligned else bool(self.targets),
            self.pad_id,
            self.bos_id,
            self.eos_id,
        )

    def names(self, f: int) -> dict[str, str]:
        """The output names of field ``f``: what -> name (``tokens``, ``segment_ids``, ...)."""
        kinds = ("segment_ids", "positions", "targets", "loss_mask")
        if not self.aligned:
            return {"tokens": "tokens", **{k: k for k in kinds}}
        name = self.fields[f]
        return {"tokens": name, **{k: f"{name}_{k}" for k in kinds}}

    def output_spec(self, dtypes: Sequence[Any]) -> dict[str, jax.ShapeDtypeStruct]:
        """The fields of one packed row (the tokens of field ``f`` of ``dtypes[f]``)."""
        spec = {}
        for f, (field, size, dtype) in enumerate(zip(self.fields, self.sizes, dtypes, strict=True)):
            row, name = (size,), self.names(f)
            spec[name["tokens"]] = jax.ShapeDtypeStruct(row, np.dtype(dtype))
            spec[name["segment_ids"]] = jax.ShapeDtypeStruct(row, np.dtype(np.int32))
            spec[name["positions"]] = jax.ShapeDtypeStruct(row, np.dtype(np.int32))
            if field in self.targets:
                spec[name["targets"]] = jax.ShapeDtypeStruct(row, np.dtype(dtype))
                spec[name["loss_mask"]] = jax.ShapeDtypeStruct(row, np.dtype(bool))
        return spec

    def pieces(self, docs: np.ndarray, lengths: np.ndarray, source: str) -> np.ndarray:
        """The items to place: ``doc``, then ``(start, length, cut)`` of each field, per piece.

        ``lengths`` is ``(len(docs), fields)``. Longer sequences are cut as ``long`` says.
        """
        sizes = np.asarray(self.sizes, np.int64)
        empty = (lengths == 0).all(axis=1)
        if empty.any():
            raise SourceError(
                f"{source}: record index {int(docs[empty][0])} is an empty sequence, which has "
                "nothing to pack. Remove it, or drop such records with "
                "filter=fx.Filter(lambda m: m['length'] > 0, columns=['length'])."
            )
        over = lengths > sizes
        if self.method == "concat" or not over.any():
            return _items(docs, np.zeros_like(lengths), lengths, np.zeros_like(lengths))
        if self.long == "error":
            at, f = np.argwhere(over)[0]
            field = f" in field {self.fields[f]!r}" if self.aligned else ""
            raise SourceError(
                f"{source}: record index {int(docs[at])} has {int(lengths[at, f])} tokens{field}, "
                f"more than a row ({int(sizes[f])}), with Pack(long='error'). "
                + (
                    ""
                    if self.aligned
                    else "Use long='split' to cut it into pieces (every token used) or "
                )
                + "long='truncate' to keep its first tokens, or drop such records with a filter."
            )
        if self.long == "truncate":
            kept = np.minimum(lengths, sizes)
            return _items(docs, np.zeros_like(lengths), kept, lengths - kept)
        L, lengths = self.length, lengths[:, 0]
        counts = -(-lengths // L)
        doc = np.repeat(docs, counts)
        first = np.repeat(np.cumsum(counts) - counts, counts)
        start = (np.arange(len(doc)) - first) * L
        size = np.minimum(np.repeat(lengths, counts) - start, L)
        return np.stack([doc, start, size, np.zeros_like(doc)], axis=1)

    def place(self, items: np.ndarray) -> np.ndarray:
        """The segment table (``ROW, DOC``, then ``START, LEN, COL, CUT`` per field)."""
        if self.method == "concat":
            return concat(items, self.length)
        if self.aligned:
            rows = fit_aligned(items, self.sizes, self.max_segments, best=self.method == "best_fit")
        elif self.method == "best_fit":
            rows = best_fit(items, self.length, self.max_segments)
        else:
            rows = first_fit(items, self.length, self.max_segments)
        order = np.lexsort((np.arange(len(rows)), rows))  # by row, then in the window's order
        items, rows = items[order], rows[order]
        first = np.r_[True, rows[1:] != rows[:-1]]
        columns = [rows, items[:, 0]]
        for f in range(len(self.sizes)):
            lens = items[:, 2 + 3 * f]
            ends = np.cumsum(lens)
            row_start = np.maximum.accumulate(np.where(first, ends - lens, 0))
            columns += [items[:, 1 + 3 * f], lens, ends - lens - row_start, items[:, 3 + 3 * f]]
        return np.stack(columns, axis=1)


def _check_choices(method: Any, long: Any, max_segments: Any, fields: int) -> None:
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
    if fields > 1 and (method == "concat" or long == "split"):
        raise PipelineError(
            f"Pack: with several aligned fields, a sequence cannot be cut into pieces (the "
            f"pieces of the fields would not correspond); got method={method!r}, long={long!r}. "
            "Use method='best_fit' or 'first_fit' with long='truncate' or 'error'."
        )


def _items(docs: np.ndarray, start: np.ndarray, size: np.ndarray, cut: np.ndarray) -> np.ndarray:
    """Items of whole sequences: ``doc``, then ``(start, size, cut)`` per field."""
    fields = [np.stack([start[:, f], size[:, f], cut[:, f]], axis=1) for f in range(size.shape[1])]
    return np.concatenate([docs[:, None], *fields], axis=1)


class PackPlan:
    """The packed rows of each epoch, window by window of the keyed order.

    Args:
      n: sequences per epoch.
      batch_size: rows per step.
      order: makes the order (positions -> sequence indices), read at each start.
      lengths: sequence indices -> lengths, ``(sequences, fields)``.
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
            return np.zeros((0, 2 + 4 * len(self.pack.fields)), np.int64)
        extra = (self.pack.bos_id is not None) + (self.pack.eos_id is not None)
        items = self.pack.pieces(docs, self.lengths(docs) + extra, self.source.name)
        table = self.pack.place(items)
        rows = int(table[-1, ROW]) + 1
        if self.shuffle and rows > 1:
            # A keyed order of the window's rows, from (seed, epoch, window start) alone.
            order = EpochOrder(rows, seed=self.seed, epoch=(epoch << 32) + start + 1)
            table[:, ROW] = order(np.arange(rows))[table[:, ROW]]
            table = table[np.argsort(table[:, ROW], kind="stable")]  # keeps each row's order
        return table

    def steps(self, at: Position, drop: bool) -> Iterator[Step]:
        """The steps from ``at`` on, endlessly across epochs."""
        locate = self.order()
        epoch, step, start, offset = at
        while True:
            fresh = (step, start, offset) == (0, 0, 0)
            any_step = False
            for planned in self._epoch(locate, epoch, step, start, offset, drop):
                any_step = True
                yield planned
            if fresh and not any_step:
                raise PipelineError(
                    f"Pipeline: epoch {epoch} of {self.source.name!r} packs into fewer rows than "
                    f"one batch of {self.batch_size}, and incomplete batches are dropped "
                    "(drop_remainder). Pass drop_remainder=False, a smaller batch_size or a "
                    "shorter Pack length."
                )
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
