"""Packed rows, materialised: this process's rows of each packed step, by vectorised gathers."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from feedax._errors import SourceError
from feedax._pack import DOC, LEN, ROW, START, Pack, field_table
from feedax._read import record_id_names
from feedax._sources.tokens import is_token_source
from feedax._step import Step

GROUP = 8
"""Steps whose rows a reader builds in one pass."""


class PackedReader:
    """Materialises this process's packed rows of each step with vectorised gathers."""

    def __init__(self, source: Any, pack: Pack, placement: Any, ids: Any = None):
        self.source = source
        self.pack = pack
        self.placement = placement
        self.ids = ids  # record_ids=True: names each token's record (see _read.record_id_fields)
        names = record_id_names(source, pack) if ids is not None else {}
        self.id_names = {(follows, kind): name for name, (kind, follows) in names.items()}

    def load(self, steps: Iterator[Step]) -> Iterator[Any]:
        """The loaded steps, in order.

        This process's rows of ``GROUP`` consecutive steps are built in one pass (the
        plan is cheap to run ahead), then handed over step by step.
        """
        lo, hi = self.placement.rows
        rows = hi - lo
        while group := list(itertools.islice(steps, GROUP)):
            tables = []
            for k, step in enumerate(group):
                assert step.segments is not None
                table = step.segments
                mine = table[(table[:, ROW] >= lo) & (table[:, ROW] < hi)].copy()
                mine[:, ROW] += k * rows - lo
                tables.append(mine)
            fields = self.rows(np.concatenate(tables), len(group) * rows)
            read = (time.perf_counter() - group[0].began) / len(group)
            yield from self.placement.put_steps(group, fields, read)

    def rows(self, table: np.ndarray, count: int) -> dict[str, np.ndarray]:
        """The fields of ``count`` rows holding the segments of ``table``, for every field."""
        pack, source = self.pack, self.source
        flat = is_token_source(source)
        if not flat:  # ragged fields: read the batch's records once
            docs = np.unique(table[:, DOC])
            records = source.read(docs)
        fields: dict[str, np.ndarray] = {}
        for f, field in enumerate(pack.fields):
            own = source if flat else _Sequences(source.name, field, docs, records[field])
            dtype = self.source.element_spec[field].dtype
            fields.update(self._field(field_table(table, f), count, f, own, dtype))
        return fields

    def _field(
        self, table: np.ndarray, count: int, f: int, source: Any, dtype: Any
    ) -> dict[str, np.ndarray]:
        """One packed field's rows, by vectorised gathers over the whole grid.

        A row's segments fill it from column 0 without gaps, in table order, so the grid,
        row after row, is the segments with each row's padding as one more segment after
        them: every output is one pass over that sequence of runs, with no mask to apply.
        """
        pack, L, name = self.pack, self.pack.sizes[f], self.pack.names(f)
        runs = _Runs(table, count, L)
        values = self._values(runs, source, dtype)
        segment_ids = np.repeat(runs.rank, runs.lens).reshape(count, L)
        positions = runs.within.copy()
        positions[runs.pads] = 0
        out = {name["tokens"]: values.reshape(count, L), name["segment_ids"]: segment_ids}
        out[name["positions"]] = positions.reshape(count, L)
        if self.ids is not None:  # each token's record; -1 on padding
            for kind, named in self.ids(np.repeat(runs.doc, runs.lens)).items():
                named[runs.pads] = -1
                out[self.id_names[pack.fields[f], kind]] = named.reshape(count, L)
        if pack.fields[f] in pack.targets:
            has = runs.within + 1 < np.repeat(runs.lens, runs.lens)  # next token, same segment
            has[runs.pads] = False
            following = np.where(has, np.roll(values, -1), pack.pad_id).astype(values.dtype)
            out[name["targets"]] = following.reshape(count, L)
            out[name["loss_mask"]] = has.reshape(count, L)
        return out

    def _values(self, runs: _Runs, source: Any, dtype: Any) -> np.ndarray:
        """The grid's tokens, flat: gathered, with BOS / EOS where they stand, pad_id after."""
        pack = self.pack
        lead = int(pack.bos_id is not None)
        if not runs.segments:
            return np.full(len(runs.within), pack.pad_id, dtype)
        first = runs.insert(source.starts(runs.docs), 0)
        if not lead and pack.eos_id is None:  # one gather: the segments' slices, flat
            base = first + runs.start
            if int(base.max()) + int(runs.lens.max()) < 2**31:
                base = base.astype(np.int32)
            index = np.repeat(base, runs.lens) + runs.within
            index[runs.pads] = 0  # read anything: overwritten
            values = np.asarray(source.gather(index))
            values[runs.pads] = pack.pad_id
            return values
        # Where each token stands in its sequence (BOS and EOS counted).
        at = np.repeat(runs.start, runs.lens) + runs.within
        ends = runs.insert(source.lengths(runs.docs), 0) + lead  # where EOS stands
        ends = np.repeat(ends, runs.lens)
        bos = at == 0 if lead else np.zeros(len(at), bool)
        eos = at == ends if pack.eos_id is not None else np.zeros(len(at), bool)
        bos[runs.pads] = eos[runs.pads] = False
        take = ~(bos | eos)
        take[runs.pads] = False
        values = np.full(len(at), pack.pad_id, dtype)
        values[take] = source.gather((np.repeat(first, runs.lens) + at - lead)[take])
        if lead:
            values[bos] = pack.bos_id
        if pack.eos_id is not None:
            values[eos] = pack.eos_id
        return values


class _Runs:
    """The grid of ``count`` rows of ``L``, row after row, as runs: segments and padding.

    Each row's padding is one run after its segments (of length 0 when the row is full).

    Attributes:
      docs: each segment's sequence (the table's rows, in order).
      segments: how many runs are segments.
      lens, rank, start, doc: per run: its length, its segment id in its row (0 for
        padding), where it starts in its sequence, its sequence (0 for padding).
      within: per grid cell: its place in its run.
      pads: the grid cells that are padding (flat indices; few in a well-packed batch).
    """

    def __init__(self, table: np.ndarray, count: int, L: int):
        self.docs, self.segments = table[:, DOC], len(table)
        rows = table[:, ROW]
        # Per-token work in int32 (a group's tokens are few): half the memory traffic of
        # int64, and arrays small enough to skip the allocator's fresh pages.
        lens = table[:, LEN].astype(np.int32)
        used = np.bincount(rows, weights=lens, minlength=count).astype(np.int32)
        self._after = np.searchsorted(rows, np.arange(count), side="right")  # rows sorted
        first = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]]) if len(rows) else rows
        rank = np.arange(len(rows)) - np.repeat(first, np.diff(np.r_[first, len(rows)]))
        pad = L - used
        self.lens = self.insert(lens, pad)
        self.rank = self.insert((rank + 1).astype(np.int32), 0)
        self.start = self.insert(table[:, START], 0)
        self.doc = self.insert(self.docs, 0)
        begin = np.cumsum(self.lens, dtype=np.int32) - self.lens
        self.within = np.arange(count * L, dtype=np.int32) - np.repeat(begin, self.lens)
        tail = np.arange(count, dtype=np.int64) * L + used  # where each row's padding starts
        in_pad = np.arange(int(pad.sum())) - np.repeat(np.cumsum(pad) - pad, pad)
        self.pads = np.repeat(tail, pad) + in_pad

    def insert(self, per_segment: np.ndarray, per_row: Any) -> np.ndarray:
        """``per_segment`` with each row's padding run's value inserted after its segments."""
        return np.insert(per_segment, self._after, per_row)


class _Sequences:
    """One ragged field of some records of a source, laid out flat.

    What a packed batch needs of a source that is not stored flat (a Parquet list column,
    an in-memory object array): its records are read once per batch.
    """

    def __init__(self, source: str, field: str, docs: np.ndarray, values: Any):
        self.docs = docs  # sorted, unique
        for index, value in zip(self.docs, values, strict=True):
            value = np.asarray(value)
            if value.ndim != 1 or not np.issubdtype(value.dtype, np.integer):
                raise SourceError(
                    f"{source}: record index {int(index)} has {value.dtype} of shape "
                    f"{value.shape} in field {field!r}; packing needs a 1-D array of integer "
                    "token ids."
                )
        self.length = np.array([len(v) for v in values], np.int64)
        self.flat = np.concatenate([np.asarray(v) for v in values]) if len(values) else values
        self.begin = np.cumsum(self.length) - self.length

    def starts(self, docs: np.ndarray) -> np.ndarray:
        return self.begin[np.searchsorted(self.docs, docs)]

    def lengths(self, docs: np.ndarray) -> np.ndarray:
        return self.length[np.searchsorted(self.docs, docs)]

    def gather(self, flat: np.ndarray) -> np.ndarray:
        return np.take(self.flat, flat)
