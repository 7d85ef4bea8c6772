"""Mix: a deterministic weighted interleave of several sources."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import jax
import numpy as np
from flax import nnx

from feedax._errors import SourceError
from feedax._order import EpochOrder
from feedax._plan import Locate
from feedax._source import Batch, Source
from feedax._sources._common import locate
from feedax._step import Position


class Mix(Source):
    """Interleaves sources in exact proportions, each source in its own epochs.

    The mixed stream is a fixed schedule: slot ``g`` belongs to one source, chosen by
    splitting the slots source by source with Bresenham's rule, so over any window of
    ``m`` slots source ``s`` gets ``m * weights[s]`` of them up to a count of ``len(sources)``
    (not sampling with replacement). Source ``s``'s ``k``-th slot takes the record at
    position ``k % len(s)`` of ``s``'s own order for its epoch ``k // len(s)``: every record
    of every source is visited once per its epoch, and a small, heavily weighted source
    simply runs more epochs. Records are identified by ``offset of s + index in s``, and
    carry their source's epoch, so per-record augmentation keys differ between sources
    and between a source's epochs.

    One epoch of a pipeline over a Mix is ``len(mix) = sum of the sources' lengths``
    slots (less a dropped remainder, which is not skipped in any source). The pipeline's
    ``shuffle`` and ``seed`` shuffle each source within its epochs (with a seed of its
    own); the interleave itself is fixed, so the proportions hold in every window of the
    stream. The cursor is the slot, so a mixed stream resumes exactly.

    The weights may change mid-run: a pipeline whose Mix has other weights than the
    state it loads continues each source exactly where it was (no record skipped or
    repeated) and interleaves with the new weights from the cursor on. Its schedule
    (origin, weights, each source's count) is the pipeline's ``mixture`` state. Other
    sources (added, removed, resized) make another stream: loading raises.

    Args:
      sources: the sources; their records must have the same fields, shapes and dtypes.
      weights: relative proportions (positive); default: proportional to the lengths.
      count: what the weights count: ``"records"`` (default; slots of the schedule) or
        ``"tokens"`` (for token sources packed by ``fx.Pack``: each source's weight is
        divided by its mean sequence length, so the proportions hold for its tokens on
        average over a window, while the schedule stays exact in records).
      name: a name used in error messages.

    Example:
      >>> import numpy as np, feedax as fx
      >>> a = fx.ArraySource({"x": np.zeros(100, np.int32)})
      >>> b = fx.ArraySource({"x": np.ones(10, np.int32)})
      >>> pipe = fx.Pipeline(fx.Mix([a, b], weights=[3, 1]), batch_size=8)
      >>> np.asarray(next(pipe.epoch())["x"]).tolist()
      [0, 0, 1, 0, 0, 0, 1, 0]
    """

    def __init__(
        self,
        sources: Sequence[Source],
        weights: Sequence[float] | None = None,
        *,
        count: Literal["records", "tokens"] = "records",
        name: str = "Mix",
    ):
        self.name = name
        sources = list(sources)
        if not sources or not all(isinstance(s, Source) for s in sources):
            raise SourceError(
                f"{name}: expected a non-empty list of feedax Sources, got {sources!r:.120}."
            )
        spec = sources[0].element_spec
        for s in sources[1:]:
            if s.element_spec != spec:
                raise SourceError(
                    f"{name}: source {s.name!r} has records {s.element_spec}, but "
                    f"{sources[0].name!r} has {spec}. Mixed sources need the same fields, shapes "
                    "and dtypes: convert them first (or decode to one shape in a host stage)."
                )
        lengths = [len(s) for s in sources]
        raw = lengths if weights is None else list(weights)
        if len(raw) != len(sources) or not all(float(w) > 0 for w in raw):
            raise SourceError(
                f"{name}: weights must be one positive number per source ({len(sources)}), got "
                f"{weights!r}."
            )
        if count not in ("records", "tokens"):
            raise SourceError(f"{name}: count must be 'records' or 'tokens', got {count!r}.")
        self.count = count
        if count == "tokens":
            raw = [float(w) / _mean_length(s, name) for w, s in zip(raw, sources, strict=True)]
        total = float(sum(raw))
        self.weights = tuple(float(w) / total for w in raw)
        self.sources = nnx.List(sources)
        self._lengths = tuple(lengths)
        self._offsets = tuple(int(o) for o in np.cumsum([0, *lengths]))

    def __len__(self) -> int:
        return self._offsets[-1]

    @property
    def location(self) -> str:
        """The mixed sources' names and shares."""
        parts = ", ".join(
            f"{s.name} {w:.3g}" for s, w in zip(self.sources, self.weights, strict=True)
        )
        return f"mix of {parts}"

    @property
    def names(self) -> tuple[str, ...]:
        """The mixed sources' names, by position: what a batch's ``"source"`` field indexes."""
        return tuple(s.name for s in self.sources)

    def split(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Global record ids as (position of the source in ``sources``, index in it)."""
        return locate(np.asarray(self._offsets), np.asarray(ids, np.int64))

    @property
    def element_spec(self) -> dict[str, jax.ShapeDtypeStruct]:
        """The shape and dtype of each field (the same for every mixed source)."""
        return self.sources[0].element_spec

    def assign(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each global slot: its source and how many earlier slots that source had."""
        return assign(np.asarray(slots, np.int64), shares(self.weights))

    # -- the schedule as pipeline state ----------------------------------------------------

    def schedule(self, delivered: int) -> np.ndarray:
        """A fresh schedule (see :class:`feedax.MixSchedule`) for ``delivered`` slots an epoch."""
        k = len(self._lengths)
        return _pack(0, 0, delivered, self.weights, np.zeros(k, np.int64))

    def rebase(self, value: np.ndarray, at: Position, delivered: int) -> np.ndarray:
        """``value`` continued at ``at`` under this Mix's weights and ``delivered``.

        If the schedule in ``value`` was made with other weights (a mixture changed
        mid-run) or another number of slots per epoch, each source's count of records
        taken up to ``at`` is computed under the old schedule, and a new schedule starts
        there: every source continues exactly where it was, nothing skipped or repeated.
        """
        origin_epoch, origin, old_delivered, weights, base = _unpack(value)
        if weights == self.weights and old_delivered == delivered:
            return value
        taken = (at.epoch - origin_epoch) * old_delivered + at.position - origin
        counts = base + _counts(taken, shares(weights))
        return _pack(at.epoch, at.position, delivered, self.weights, counts)

    def order(self, value: np.ndarray, *, seed: int, shuffle: bool) -> Locate:
        """The mixed order of a schedule: (epoch, positions) -> (global ids, own epochs)."""
        origin_epoch, origin, delivered, weights, base = _unpack(value)
        split = shares(weights)

        def locate(epoch: int, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            taken = (epoch - origin_epoch) * delivered + np.asarray(positions, np.int64) - origin
            source, count = assign(taken, split)
            count = count + base[source]
            ids = np.empty(source.shape, np.int64)
            epochs = np.empty(source.shape, np.int64)
            for s, length in enumerate(self._lengths):
                mine = source == s
                if not mine.any():
                    continue
                own_epoch, position = np.divmod(count[mine], length)
                found = np.empty(position.shape, np.int64)
                for e in np.unique(own_epoch):
                    at = own_epoch == e
                    order = EpochOrder(
                        length, seed=source_seed(seed, s), epoch=int(e), shuffle=shuffle
                    )
                    found[at] = order(position[at])
                ids[mine] = self._offsets[s] + found
                epochs[mine] = own_epoch
            return ids, epochs

        return locate

    # -- token sequences (when every source holds them: see fx.Pack) ---------------------

    def lengths(self, indices: np.ndarray) -> np.ndarray:
        """The sequences' lengths, by global id, from each source."""
        return self._gather(indices, lambda s, at: {"n": s.lengths(at)})["n"]  # type: ignore[attr-defined]

    def starts(self, indices: np.ndarray) -> np.ndarray:
        """Where each sequence starts in the sources' flat arrays, laid end to end."""
        which, _ = locate(np.asarray(self._offsets), np.asarray(indices, np.int64))
        local = self._gather(indices, lambda s, at: {"n": s.starts(at)})["n"]  # type: ignore[attr-defined]
        return local + self._token_bases()[which]

    def gather(self, flat: np.ndarray) -> np.ndarray:
        """The tokens at positions ``flat`` of the sources' flat arrays laid end to end."""
        bases = self._token_bases()
        which, local = locate(bases, np.asarray(flat, np.int64))
        out: np.ndarray | None = None
        for s in np.unique(which):
            at = which == s
            part = self.sources[int(s)].gather(local[at])  # type: ignore[attr-defined]
            if out is None:
                out = np.empty(len(flat), part.dtype)
            out[at] = part
        return np.zeros(0, np.int32) if out is None else out

    def _token_bases(self) -> np.ndarray:
        return np.cumsum([0, *(s.size for s in self.sources)]).astype(np.int64)  # type: ignore[attr-defined]

    def metadata(self, indices: np.ndarray, columns: Sequence[str]) -> Batch:
        """``columns`` of the records by global id, read from each source's metadata."""
        return self._gather(indices, lambda s, at: s.metadata(at, columns))

    def read(self, indices: np.ndarray) -> Batch:
        """Records by global id (``offset of the source + index in it``), in order."""
        return self._gather(indices, lambda s, at: s.read(at))

    def _gather(self, indices: np.ndarray, read: Callable[[Source, np.ndarray], Batch]) -> Batch:
        indices = np.asarray(indices, np.int64)
        self._check_indices(indices)
        which, position = locate(np.asarray(self._offsets), indices)
        out: Batch | None = None
        for s in np.unique(which):
            at = np.flatnonzero(which == s)
            part = read(self.sources[int(s)], position[at])
            if out is None:
                out = {k: np.empty((len(indices), *v.shape[1:]), v.dtype) for k, v in part.items()}
            for k, v in part.items():
                out[k][at] = v
        assert out is not None
        return out


def _mean_length(source: Source, name: str) -> float:
    """A token source's mean sequence length (its offsets give all lengths at once)."""
    lengths = getattr(source, "lengths", None)
    if lengths is None:
        raise SourceError(
            f"{name}: count='tokens' weighs sources by their tokens, but source {source.name!r} "
            "holds no token sequences (e.g. an fx.TokenSource). Use count='records'."
        )
    return max(float(np.mean(lengths(np.arange(len(source))))), 1e-9)


def shares(weights: Sequence[float]) -> tuple[float, ...]:
    """Each source's share among itself and the sources after it.

    The chain of two-way splits that assigns the slots.
    """
    tail = np.cumsum(np.asarray(weights, np.float64)[::-1])[::-1]
    return tuple(float(w / t) for w, t in zip(weights, tail, strict=True))


def assign(slots: np.ndarray, split: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """For each slot (>= 0): its source, and how many earlier slots that source had."""
    source = np.full(slots.shape, len(split) - 1, np.int64)
    count = slots.copy()  # the slot's rank among the slots not yet assigned
    undecided = np.ones(slots.shape, bool)
    for s, share in enumerate(split[:-1]):
        # Of the first h remaining slots, round(h * share) are source s's.
        before = np.floor(count * share + 0.5).astype(np.int64)
        mine = undecided & (np.floor((count + 1) * share + 0.5).astype(np.int64) > before)
        source[mine] = s
        count = np.where(mine, before, np.where(undecided, count - before, count))
        undecided &= ~mine
    return source, count


def _counts(taken: int, split: Sequence[float]) -> np.ndarray:
    """How many of the first ``taken`` slots each source has (the same chain of splits)."""
    counts = np.zeros(len(split), np.int64)
    rest = int(taken)
    for s, share in enumerate(split[:-1]):
        counts[s] = int(np.floor(rest * share + 0.5))
        rest -= int(counts[s])
    counts[-1] = rest
    return counts


def _pack(
    origin_epoch: int, origin: int, delivered: int, weights: Sequence[float], counts: np.ndarray
) -> np.ndarray:
    bits = np.asarray(weights, np.float64).view(np.int64)
    return np.concatenate([np.array([origin_epoch, origin, delivered], np.int64), bits, counts])


def _unpack(value: np.ndarray) -> tuple[int, int, int, tuple[float, ...], np.ndarray]:
    value = np.asarray(value, np.int64)
    k = (len(value) - 3) // 2
    weights = tuple(float(w) for w in value[3 : 3 + k].view(np.float64))
    return int(value[0]), int(value[1]), int(value[2]), weights, value[3 + k :].copy()


def source_seed(seed: int, source: int) -> int:
    """A seed of its own for each mixed source, so their orders are independent."""
    return (seed * 0x9E3779B1 + 0x632BE5AB * (source + 1)) & 0x7FFFFFFFFFFFFFFF
