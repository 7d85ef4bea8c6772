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
            for k, step in enumerate(group):
                part = {f: v[k * rows : (k + 1) * rows] for f, v in fields.items()}
                yield self.placement.put(step, part, read=time.perf_counter() - step.began)

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
        """One packed field's rows, by vectorised gathers.

        A row's segments fill it from column 0 without gaps, in table order, so each
        output is one boolean-mask assignment of the concatenated segments. Positions in a
        segment are positions in its sequence with ``bos_id`` / ``eos_id`` added.
        """
        pack, L, name = self.pack, self.pack.sizes[f], self.pack.names(f)
        # Per-token work in int32 (a group's tokens are few): half the memory traffic of
        # int64, and arrays small enough to skip the allocator's fresh pages.
        lens = table[:, LEN].astype(np.int32)
        used = np.bincount(table[:, ROW], weights=lens, minlength=count).astype(np.int64)
        filled = np.arange(L) < used[:, None]
        begin = np.cumsum(lens, dtype=np.int32) - lens  # each segment's start, concatenated
        within = np.arange(int(lens.sum()), dtype=np.int32) - np.repeat(begin, lens)
        values = self._values(table, lens, within, source, dtype)
        tokens = np.full((count, L), pack.pad_id, values.dtype)
        tokens[filled] = values
        rows = table[:, ROW]
        first = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]]) if len(rows) else rows
        rank = np.arange(len(rows)) - np.repeat(first, np.diff(np.r_[first, len(rows)]))
        segment_ids = np.zeros((count, L), np.int32)
        segment_ids[filled] = np.repeat((rank + 1).astype(np.int32), lens)
        positions = np.zeros((count, L), np.int32)
        positions[filled] = within
        out = {name["tokens"]: tokens, name["segment_ids"]: segment_ids}
        out[name["positions"]] = positions
        if self.ids is not None:  # each token's record; -1 on padding
            for kind, values in self.ids(np.repeat(table[:, DOC], lens)).items():
                named = np.full((count, L), -1, values.dtype)
                named[filled] = values
                out[self.id_names[pack.fields[f], kind]] = named
        if pack.fields[f] in pack.targets:
            has = within + 1 < np.repeat(lens, lens)  # the next token is in the same segment
            following = np.where(has, np.roll(values, -1), pack.pad_id).astype(values.dtype)
            targets = np.full((count, L), pack.pad_id, values.dtype)
            targets[filled] = following
            mask = np.zeros((count, L), bool)
            mask[filled] = has
            out.update({name["targets"]: targets, name["loss_mask"]: mask})
        return out

    def _values(
        self, table: np.ndarray, lens: np.ndarray, within: np.ndarray, source: Any, dtype: Any
    ) -> np.ndarray:
        """The segments' tokens, concatenated: gathered, with BOS / EOS where they stand."""
        pack = self.pack
        lead = int(pack.bos_id is not None)
        first = source.starts(table[:, DOC])
        if not lead and pack.eos_id is None:  # one gather: the segments' slices, flat
            base = first + table[:, START]
            if len(base) and int(base.max()) + int(lens.max()) < 2**31:
                base = base.astype(np.int32)
            return np.asarray(source.gather(np.repeat(base, lens) + within))
        # Where each token stands in its sequence (BOS and EOS counted).
        at = np.repeat(table[:, START], lens) + within
        starts = np.repeat(first, lens)
        ends = np.repeat(source.lengths(table[:, DOC]), lens) + lead  # where EOS stands
        special = np.zeros(len(at), bool) if not lead else at == 0
        if pack.eos_id is not None:
            special |= at == ends
        values = np.empty(len(at), dtype)
        values[~special] = source.gather(starts[~special] + at[~special] - lead)
        if lead:
            values[at == 0] = pack.bos_id
        if pack.eos_id is not None:
            values[at == ends] = pack.eos_id
        return values


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
