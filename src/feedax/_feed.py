"""How a pipeline's steps are planned and read, chosen in one place for its kind of source."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import numpy as np

from feedax._block_order import BlockOrder, BlockShuffle
from feedax._filter import Filter
from feedax._host import HostMap, Mapped
from feedax._order import ChunkedOrder, EpochOrder
from feedax._pack import Pack, PackPlan
from feedax._packed_rows import PackedReader
from feedax._plan import Locate, Planner, RowPlan
from feedax._read import GatherReader, HostReader, Placement
from feedax._skip import SkipReader
from feedax._source import Source
from feedax._sources._ragged import length_index
from feedax._sources.mix import Mix
from feedax._step import Loaded, Position
from feedax._stream import StreamReader, StreamSource


class Feed(Protocol):
    """Plans and reads a pipeline's steps from a cursor on: ``plan -> read -> host``."""

    def load(self, at: Position, drop: bool) -> Iterator[Loaded]:
        """The loaded steps from ``at`` on, endlessly; ``drop``: no partial last step."""
        ...


@dataclasses.dataclass(frozen=True)
class PlannedFeed:
    """Rows decided by the plan alone; each process reads its own rows of each step."""

    plan: Planner
    reader: HostReader | GatherReader | PackedReader

    def load(self, at: Position, drop: bool) -> Iterator[Loaded]:
        """The loaded steps from ``at`` on."""
        return self.reader.load(self.plan.steps(at, drop))


@dataclasses.dataclass(frozen=True)
class SkipFeed:
    """Rows of good records: the plan's records, less those that fail to read."""

    plan: RowPlan
    reader: SkipReader

    def load(self, at: Position, drop: bool) -> Iterator[Loaded]:
        """The loaded steps from ``at`` on."""
        return self.reader.load(self.plan.steps(at, False), at, drop)


def order_of(
    source: Any,
    *,
    seed: int,
    shuffle: bool | BlockShuffle,
    schedule: Callable[[], np.ndarray] | None,
) -> Locate:
    """The keyed order of ``source``: a mixture's schedule, or the Feistel permutation."""
    if isinstance(source, Mix):
        assert schedule is not None
        return source.order(
            schedule(), seed=seed, shuffle=bool(shuffle)
        )  # a Mix never has a BlockShuffle (checked)
    n = len(source)
    orders: dict[int, ChunkedOrder | BlockOrder] = {}

    def locate(epoch: int, positions: np.ndarray) -> tuple[np.ndarray, None]:
        if epoch not in orders:
            orders.clear()  # one epoch at a time: its round keys, derived once
            if isinstance(shuffle, BlockShuffle):
                orders[epoch] = BlockOrder(n, shuffle, seed=seed, epoch=epoch)
            else:
                order = EpochOrder(n, seed=seed, epoch=epoch, shuffle=shuffle)
                orders[epoch] = ChunkedOrder(order)
        return orders[epoch](positions), None

    return locate


def plan_of(
    source: Any,
    *,
    batch_size: int,
    seed: int,
    shuffle: bool | BlockShuffle,
    filter: Filter | None,
    schedule: Callable[[], np.ndarray] | None,
    on_device: bool,
) -> RowPlan:
    """The plan of a random-access source (the device orders on-device data itself)."""
    return RowPlan(
        n=len(source),
        batch_size=batch_size,
        order=None if on_device else _order_factory(source, seed, shuffle, schedule),
        filter=filter,
        source=source,
        mixed=isinstance(source, Mix),
    )


def _order_factory(
    source: Any, seed: int, shuffle: bool | BlockShuffle, schedule: Callable[[], np.ndarray] | None
) -> Callable[[], Locate]:
    """Makes the order afresh at each start of an iteration (a schedule may have moved)."""

    def order() -> Locate:
        return order_of(source, seed=seed, shuffle=shuffle, schedule=schedule)

    return order


def packed_feed(
    source: Any,
    pack: Pack,
    *,
    host: HostMap | None,
    batch_size: int,
    seed: int,
    shuffle: bool,
    filter: Filter | None,
    schedule: Callable[[], np.ndarray] | None,
    placement: Placement,
    ids: Callable[[np.ndarray], dict[str, np.ndarray]] | None = None,
) -> tuple[PackPlan, Feed]:
    """The plan and feed of a packing pipeline: rows planned from the sequences' lengths."""
    sequences = source if host is None else Mapped(source, host, pack.fields)
    own = getattr(sequences, "lengths", None)
    if own is not None and len(pack.fields) == 1:  # a source of flat token sequences

        def lengths(docs: np.ndarray) -> np.ndarray:
            return own(docs)[:, None]

    else:  # ragged fields of another source: their lengths, indexed once
        table = length_index(sequences, pack.fields)

        def lengths(docs: np.ndarray) -> np.ndarray:
            return table[docs]

    plan = PackPlan(
        n=len(source),
        batch_size=batch_size,
        order=_order_factory(source, seed, shuffle, schedule),
        lengths=lengths,
        pack=pack,
        filter=filter,
        source=source,
        seed=seed,
        shuffle=shuffle,
    )
    return plan, PlannedFeed(plan, PackedReader(sequences, pack, placement, ids))


def build_feed(
    source: Any,
    plan: RowPlan | None,
    *,
    host: HostMap | None,
    spec: Any,
    placement: Placement,
    skip: bool,
    window: int,
    seed: int,
    read_ahead: int,
    group: int = 1,
) -> Feed:
    """The feed of a pipeline: a stream's reader, the skip policy's, or plan and reader.

    ``group``: steps read (or gathered) as one (``feedax._groups``).
    """
    if isinstance(source, StreamSource):
        return StreamReader(
            source, host, spec, placement, window=window, seed=seed, read_ahead=read_ahead
        )
    assert plan is not None
    if skip:
        return SkipFeed(plan, SkipReader(source, host, spec, placement, read_ahead))
    if plan.order is None:
        return PlannedFeed(plan, GatherReader(group))
    return PlannedFeed(plan, HostReader(source, host, spec, placement, read_ahead, group))


def choose_feed(pipe: Any) -> tuple[Planner | None, Feed]:
    """The plan (None for a stream) and the feed of a pipeline being built, chosen once.

    Its source, options, placement, mixture schedule and group size are set.
    """
    source, plan = pipe.source, None
    mixture = pipe.mixture if isinstance(source, Mix) else None
    schedule = None if mixture is None else lambda: np.asarray(mixture[...])
    if pipe.pack is not None:
        return packed_feed(
            source,
            pipe.pack,
            host=pipe.host,
            batch_size=pipe.batch_size,
            seed=pipe.seed,
            shuffle=bool(pipe.shuffle),  # never a BlockShuffle (checked)
            filter=pipe.filter,
            schedule=schedule,
            placement=pipe._placement,
            ids=pipe._ids,
        )
    if isinstance(source, Source):
        plan = plan_of(
            source,
            batch_size=pipe.batch_size,
            seed=pipe.seed,
            shuffle=pipe.shuffle,
            filter=pipe.filter,
            schedule=schedule,
            on_device=pipe._gather is not None,
        )
    feed = build_feed(
        source,
        plan,
        host=pipe.host,
        spec=dict(pipe._input_spec),
        placement=pipe._placement,
        skip=pipe.on_error == "skip",
        window=pipe.shuffle_window,
        seed=pipe.seed,
        read_ahead=max(pipe.prefetch, 1),
        group=pipe._group,
    )
    return plan, feed
