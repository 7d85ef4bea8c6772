"""The pipeline: plan -> read -> host stage -> one device step, and the cursor, as one module."""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator, Sequence
from typing import Any, Literal

import jax
import numpy as np
from flax import nnx
from flax.nnx import reprlib

from feedax._apply import AnyOperator, apply_operators, traced_spec
from feedax._block_order import BlockShuffle
from feedax._device_step import VALID, CompileAhead, DeviceStep, Gather, Gathering
from feedax._errors import PipelineError, StateMismatchError
from feedax._feed import choose_feed
from feedax._filter import Filter
from feedax._groups import pipeline_group
from feedax._host import HostMap
from feedax._modes import ModeHolders, claim
from feedax._pack import Pack, truncated
from feedax._placement import DeviceData, auto_axes, local_rows, replicated
from feedax._prefetch import Prefetcher
from feedax._profile import Profile, StageTimes, run_profile
from feedax._ranges import label_ranges, unit_range_fields
from feedax._read import Placement, record_id_fields, record_id_names, record_id_spec
from feedax._skip import SkipLog, empty_log, record_skips
from feedax._source import Source
from feedax._sources.mix import Mix
from feedax._state import (
    Cursor,
    MixSchedule,
    Signature,
    TruncatedTokens,
    components,
    signature,
)
from feedax._step import Position, Step
from feedax._stream import StreamSource
from feedax._summary import Summary, refuse_tabulate, summarize
from feedax._validate import (
    check_arguments,
    check_eval_shape,
    check_record_ids,
    check_records,
    operator_list,
    record_spec,
)
from feedax._workers import stop_host_work

Batch = dict[str, jax.Array]


class Pipeline(nnx.Module, pytree=False):
    """Batches of augmented records from a source, in an exact, resumable order.

    Each epoch visits every record exactly once, in a keyed permutation of ``(seed,
    epoch)`` (or in index order without ``shuffle``). A batch travels one path: the
    *plan* decides which records form its rows (the order, a mixture's schedule, a
    filter), the *reader* reads this process's rows (through the *host stage*, if any),
    and one jitted *device step* applies the operators, vmapped over the batch. All that
    is needed to continue is in ``nnx.state(pipeline)``: the cursor (epoch, step,
    position), the operators' RNG keys, running statistics and parameters; never the data.

    Iterating:
      * ``pipe.epoch()`` yields the rest of the current epoch, from the cursor.
      * ``iter(pipe)`` is an endless stream across epochs.
      The cursor advances as each batch is handed over (not when it is prefetched), so a
      state taken after receiving batch ``k`` resumes at batch ``k + 1``. Loading a state
      with ``nnx.update`` (or switching a mode) redirects even an iteration in progress.

    Modes: ``pipe.train()`` / ``pipe.eval()`` (NNX). In eval mode random operators are the
    identity (random crops and resizes take their central window) and running statistics
    are frozen; batches keep their train shape. The pipeline owns its operators: building
    a second pipeline on operators another one holds raises (give it copies).

    A pipeline is an NNX graph node (``nnx.state``, ``nnx.grad``, ``nnx.jit`` take it) but
    not a JAX pytree, so that Orbax saves it through its own ``save`` / ``load`` (Orbax
    v1's ``StatefulCheckpointable``); see :mod:`feedax.checkpoint`.

    Batches are dicts of ``jax.Array`` with one shape for the whole run. The remainder of
    an epoch (the last, partial batch): by default (``drop_remainder=None``) it is dropped
    in train mode and padded in eval mode, so an evaluation covers every record; a
    pipeline that may pad adds a boolean ``"valid"`` field marking the real records.
    On a CPU, a batch array of 1 MiB or more that nothing refers to any more (not the
    consumer, nor a NumPy view of it) lends its memory to a later batch (see
    ``feedax._recycle``): a view taken with ``addressable_data`` does not keep it, so
    keep the batch while using one.

    Args:
      source: where records come from.
      operators: one-record operators applied in order on the device.
      batch_size: records per batch, summed over all processes and devices.
      shuffle: visit records in a new pseudo-random order each epoch; a
        :class:`BlockShuffle` shuffles blocks of consecutive records, then records within
        windows of blocks (for chunked files).
      seed: the seed of the order.
      drop_remainder: None (default): drop the last partial batch of an epoch in train
        mode, pad it in eval mode; True: always drop; False: always pad.
      sharding: where batches go, e.g. ``NamedSharding(mesh, P("data"))``; it splits the
        batch (first) axis. Default: the default device, uncommitted (as ``jax.device_put``).
      host: per-record host work (decode, tokenize) run in parallel workers before the
        operators; see :class:`HostMap`.
      filter: keep only the records whose metadata satisfy a predicate, decided when
        planning; see :class:`Filter`.
      pack: pack a ragged token field into rows of a fixed length (each row of the batch
        holds several sequences, with segment ids and positions); see :class:`Pack`.
      prefetch: batches read and transferred ahead in a background thread (0: none); the
        host stage also keeps this many batches in flight in its workers. Data kept on the
        device (``ArraySource(on_device=True)``) has nothing to read ahead: each batch is
        one XLA call, made when it is asked for.
      on_error: ``"raise"`` (default): a bad record (failed read or host stage, wrong
        shape) raises an error naming it. ``"skip"``: it is left out and the batch is filled
        with the next good records in the order, so batches stay full and the stream is
        the same in every run; the state counts them and lists the first 64 of each
        epoch (``pipe.skipped_count``, ``pipe.skipped_indices``), a few hundred bytes
        whatever the source's size. Single process only.
      max_skip_fraction: under ``"skip"``, raise once one epoch has skipped more than
        this fraction of the source's records.
      shuffle_window: for a :class:`StreamSource`: shuffle within consecutive windows of
        this many records (a bounded buffer whose state is the cursor); 0: stream order.
      record_ids: add the field ``"index"`` (each row's index in its source; a stream's
        position) and, under a :class:`Mix`, ``"source"`` (the position of the row's
        source in ``Mix.sources``), to trace a row back to its record. Padding rows
        repeat row 0's (``"valid"`` marks them). With ``pack``, the same per token, of
        the row's shape, -1 on padding (``"<field>_index"`` for aligned fields). Not for
        on-device data.

    Example:
      >>> import numpy as np, feedax as fx
      >>> from flax import nnx
      >>> src = fx.ArraySource({"image": np.zeros((10, 8, 8, 3), np.uint8), "label": np.arange(10)})
      >>> pipe = fx.Pipeline(src, [fx.RandomFlip(rngs=nnx.Rngs(augment=0))], batch_size=4,
      ...                    shuffle=True, seed=0)
      >>> [b["label"].shape for b in pipe.epoch()]
      [(4,), (4,)]
      >>> pipe.eval()
      >>> [int(b["valid"].sum()) for b in pipe.epoch()]  # eval covers every record
      [4, 4, 2]
    """

    def __init__(
        self,
        source: Source | StreamSource,
        operators: Sequence[AnyOperator] = (),
        *,
        batch_size: int,
        shuffle: bool | BlockShuffle = False,
        seed: int = 0,
        drop_remainder: bool | None = None,
        sharding: jax.sharding.Sharding | None = None,
        host: HostMap | None = None,
        filter: Filter | None = None,
        pack: Pack | None = None,
        prefetch: int = 2,
        on_error: Literal["raise", "skip"] = "raise",
        max_skip_fraction: float = 0.01,
        shuffle_window: int = 0,
        record_ids: bool = False,
    ):
        options = locals()
        del options["self"], options["source"], options["operators"], options["record_ids"]
        check_arguments(source, operator_list(operators), **options)
        self.source, self.host, self.filter, self.pack = source, host, filter, pack
        self.operators = nnx.List(operator_list(operators))
        claim(self, [(f"operators[{i}]", op) for i, op in enumerate(self.operators)])
        self.shuffle = shuffle if isinstance(shuffle, BlockShuffle) else bool(shuffle)
        self.batch_size, self.seed = batch_size, int(seed)
        self.drop_remainder, self.prefetch, self.on_error = drop_remainder, prefetch, on_error
        self.max_skip_fraction, self.shuffle_window = float(max_skip_fraction), shuffle_window
        self.sharding = sharding
        self._device_sharding = None if sharding is None else auto_axes(sharding)
        rows = (0, batch_size) if sharding is None else local_rows(sharding, batch_size)
        uses = bool(self.operators)  # operators read the rows' identities and mask
        masked = uses or drop_remainder is not True
        labels = label_ranges(self.operators)
        spec = record_spec(source, host, pack, skip=on_error == "skip")
        check_records(source, spec, host, may_pad=drop_remainder is not True)
        self.record_ids = check_record_ids(record_ids, source, spec, record_id_names(source, pack))
        self._ids = record_id_fields(source) if record_ids else None
        per_row = self._ids if pack is None else None  # packed rows name each token's
        self._placement = Placement(
            batch_size, rows, self._device_sharding, uses, masked, labels, per_row
        )
        self._input_spec = tuple(spec.items())
        self.deterministic = False  # the pipeline's own mode, set by train() / eval()
        self._holders = ModeHolders([self.operators, *([host] if host else [])])
        self._make_state(spec)
        check_eval_shape(self.operators, spec, batch_size)  # traces: bad records fail here
        self._group = pipeline_group(self, spec)
        self._gather = self._start_gathering(spec)
        self._rows, self._feed = choose_feed(self)

    def _make_state(self, spec: dict[str, jax.ShapeDtypeStruct]) -> None:
        """The pipeline's Variables: cursor, signature, and what its options keep."""
        source = self.source
        self.cursor = Cursor(np.zeros(4, np.int64))
        self.blueprint = Signature(signature(components(self, spec)))
        if isinstance(source, Mix):
            self.mixture = MixSchedule(source.schedule(self._delivered(self._drops())))
        if self.on_error == "skip" and isinstance(source, Source):
            self.skipped = SkipLog(empty_log())
        if self.pack is not None and self.pack.long == "truncate":
            self.truncated = TruncatedTokens(np.zeros((), np.int64))

    def _start_gathering(self, spec: dict[str, jax.ShapeDtypeStruct]) -> Gathering | None:
        """For on-device data: compile the step now, in the background, as the data uploads."""
        source = self.source
        if not isinstance(source, Source) or not source.on_device or self.host is not None:
            return None
        columns = source.device_columns
        assert columns is not None
        # The upload is lazy (the first read of device_columns' arrays), so it overlaps XLA.
        data = DeviceData(columns, self._device_sharding)
        n, sharding = len(source), self._device_sharding
        shuffle, group = bool(self.shuffle), self._group
        gather = Gather(data, n, self.batch_size, shuffle, self.seed, sharding, group)
        return Gathering(gather, CompileAhead(self.operators, gather, spec))

    def __nnx_repr__(self) -> Iterator[Any]:
        # NNX prints arrays inside a module as Array(shape=...); the cursor's four numbers
        # are what a reader of a printed pipeline wants, so it is printed by value.
        for elem in super().__nnx_repr__():
            if isinstance(elem, reprlib.Attr) and elem.key == "cursor":
                elem = reprlib.Attr("cursor", self.cursor)
            yield elem

    # -- shape of the stream ---------------------------------------------------------------

    def _drops(self) -> bool:
        """Whether the last partial batch of an epoch is dropped, in the current mode."""
        return (not self.deterministic) if self.drop_remainder is None else self.drop_remainder

    def _delivered(self, drop: bool) -> int:
        """Order positions of an epoch that batches consume (a mixture's slots per epoch)."""
        n = len(self.source)  # type: ignore[arg-type]
        if drop and self.filter is None and self.pack is None:
            return n - n % self.batch_size
        return n

    @property
    def truncated_tokens(self) -> int:
        """Tokens cut off sequences longer than a row so far (``Pack(long="truncate")``)."""
        return int(np.asarray(self.truncated[...])) if hasattr(self, "truncated") else 0

    @property
    def steps_per_epoch(self) -> int:
        """Batches in the current epoch in the current mode (an error for a stream)."""
        if self._rows is None:
            raise PipelineError(
                f"Pipeline: the stream {self.source.name!r} has no known length, so neither has "
                "an epoch; iterate pipe.epoch() to its end instead."
            )
        return self._rows.steps_per_epoch(self._drops(), self.position[0])

    @property
    def output_spec(self) -> dict[str, jax.ShapeDtypeStruct]:
        """The shape and dtype of each field of a batch (the same in train and eval mode)."""
        out = traced_spec(self.operators, dict(self._input_spec), self.batch_size)
        if self.record_ids:
            out.update(record_id_spec(self.source, self.pack, self.batch_size))
        if self.drop_remainder is not True:
            out[VALID] = jax.ShapeDtypeStruct((self.batch_size,), np.dtype(bool))
        return out

    @property
    def skipped_indices(self) -> list[int]:
        """The records skipped as bad in the latest epoch that skipped any (``on_error="skip"``).

        The first 64 of them, in the order met; :attr:`skipped_count` counts them all.
        """
        if self.on_error != "skip":
            return []
        listed = np.asarray(self.skipped[...])[2:]
        return listed[listed >= 0].tolist()

    @property
    def skipped_count(self) -> int:
        """How many records the latest epoch that skipped any has skipped so far."""
        return int(np.asarray(self.skipped[...])[1]) if self.on_error == "skip" else 0

    @property
    def position(self) -> tuple[int, int]:
        """The cursor as ``(epoch, order position of the next record to consider)``."""
        cursor = np.asarray(self.cursor[...])
        return int(cursor[0]), int(cursor[2])

    # -- applying the operators ------------------------------------------------------------

    def __call__(
        self, batch: dict[str, jax.Array], *, indices: jax.Array, epoch: int | jax.Array = 0
    ) -> dict[str, jax.Array]:
        """Applies the operators to a batch of records, as iteration does.

        Differentiable: ``nnx.grad`` of a loss of the output w.r.t. the pipeline reaches
        the operators' ``nnx.Param``s. In train mode running statistics are updated.

        Args:
          batch: field -> array with a leading batch axis.
          indices: the records' indices in the source (their identity), shape ``(B,)``.
          epoch: the epoch whose augmentation to draw.
        """
        if "_nnx_tabulate_id" in vars(self):
            refuse_tabulate(self)
        return apply_operators(list(self.operators), batch, indices=indices, epoch=epoch)

    # -- iteration -------------------------------------------------------------------------

    def epoch(self) -> Iterator[Batch]:
        """Yields the rest of the current epoch, from the cursor, then stops."""
        return self._iterate(single_epoch=True)

    def __iter__(self) -> Iterator[Batch]:
        """An endless stream of batches across epochs, from the cursor."""
        return self._iterate(single_epoch=False)

    def __next__(self) -> Batch:
        """Not an iterator itself: points to ``iter(pipe)`` / ``pipe.epoch()``."""
        raise TypeError(
            "Pipeline is iterable, not an iterator: use `it = iter(pipe); next(it)` for an "
            "endless stream, or `for batch in pipe.epoch():` for one epoch."
        )

    def _start(self) -> Position:
        """The cursor, checked; a mixture's schedule continued under its current weights."""
        cursor = np.asarray(self.cursor[...])
        stream = isinstance(self.source, StreamSource)
        n = 2**62 if stream else len(self.source)  # type: ignore[arg-type]
        if cursor.shape != (4,) or cursor.min() < 0 or cursor[2] > n:
            raise StateMismatchError(
                f"Pipeline: the cursor {cursor.tolist()} is not a valid [epoch, step, position, "
                f"offset] for a source of {n} records. Restore a state saved by this pipeline."
            )
        at = Position(*(int(v) for v in cursor))
        if isinstance(self.source, Mix):
            schedule = np.asarray(self.mixture[...])
            rebased = self.source.rebase(schedule, at, self._delivered(self._drops()))
            if rebased is not schedule:
                self.mixture.set_value(rebased)
        return at

    def _device_step(self) -> DeviceStep:
        nnx.update(self.operators, replicated(self._device_sharding, nnx.state(self.operators)))
        gather = None
        if self._gather is not None:
            self._gather.ahead.wait()  # the same program: compile it once
            gather = self._gather.gather
        return DeviceStep(
            self.operators,
            gather=gather,
            with_valid=self.drop_remainder is not True,
            sharding=self.sharding,
            device_sharding=self._device_sharding,
            unit_range=unit_range_fields(self.operators, dict(self._input_spec)),
            labels=self._placement.labels,
            group=self._group,
        )

    def _iterate(self, single_epoch: bool, times: StageTimes | None = None) -> Generator[Batch]:
        while True:
            at, mode = self._start(), self._holders.mode(self)
            step_fn = self._device_step()
            # On-device data has no host work to run ahead: a thread would only add a
            # hand-over per batch.
            depth = 0 if self._gather is not None else self.prefetch
            feed = self._feed.load(at, self._drops())
            with Prefetcher(feed, depth, on_stuck=stop_host_work) as ready:
                while True:
                    asked = time.perf_counter()
                    loaded = next(ready, None)
                    if loaded is None:
                        return
                    received, step = time.perf_counter(), loaded.step
                    if single_epoch and step.epoch != at.epoch:
                        # Nothing was left of the epoch (skipped or filtered records).
                        self.cursor.set_value(np.asarray((at.epoch + 1, 0, 0), np.int64))
                        return
                    replan = False
                    for step, batch in zip(loaded.steps, step_fn(loaded), strict=False):
                        if times is not None:
                            times.add(received - asked, loaded, received, batch)
                        mine = self._hand_over(step)
                        yield batch
                        if single_epoch and step.last:
                            return
                        if not _unchanged(self.cursor, mine) or self._holders.mode(self) != mode:
                            replan = True  # a state was loaded, or a mode changed
                            break
                    if replan:
                        break

    def _hand_over(self, step: Step) -> np.ndarray:
        """Records what ``step`` skipped and cut, and moves the cursor past it (returned)."""
        if step.skipped:
            self._record_skips(step.skipped, step.epoch)
        if step.segments is not None and hasattr(self, "truncated"):
            cut = truncated(step.segments)
            self.truncated.set_value(np.asarray(self.truncated[...]) + cut)
        # Replace, never write into, the array: snapshots keep theirs (a fresh array needs
        # none of set_value's copy, a tenth of a small step).
        mine = np.asarray(step.after, np.int64)
        self.cursor.set_raw_value(mine)
        return mine

    def _record_skips(self, skipped: tuple[int, ...], epoch: int) -> None:
        n, name, limit = len(self.source), self.source.name, self.max_skip_fraction  # type: ignore[arg-type]
        record_skips(self.skipped, skipped, epoch=epoch, n=n, limit=limit, name=name)

    # -- inspection ------------------------------------------------------------------------

    def summary(self) -> Summary:
        """A table of the stages: what each outputs, what is random or learnable, state bytes.

        ``print(pipe.summary())`` shows it; the returned :class:`Summary` holds the same
        facts as data. Nothing is read beyond what building the pipeline read: the
        operators' outputs are traced.

        Example:
          >>> import numpy as np, feedax as fx
          >>> from flax import nnx
          >>> src = fx.ArraySource({"image": np.zeros((8, 4, 4, 3), np.uint8)})
          >>> ops = [fx.RandomFlip(rngs=nnx.Rngs(augment=0)), fx.ToFloat()]
          >>> pipe = fx.Pipeline(src, ops, batch_size=2, drop_remainder=True)
          >>> print(pipe.summary())
          Pipeline over ArraySource 'ArraySource' (8 records, memory), batch 2
          stage         module       output                      random  params  state
          ------------  -----------  --------------------------  ------  ------  -----
          source        ArraySource  image: uint8[4, 4, 3]
          operators[0]  RandomFlip   image: uint8[2, 4, 4, 3]    yes             8 B
          operators[1]  ToFloat      image: float32[2, 4, 4, 3]
          ------------  -----------  --------------------------  ------  ------  -----
          batch: image: float32[2, 4, 4, 3]
          state: 80 B (nnx.state(pipe): what a checkpoint holds)
        """
        return summarize(self)

    # -- Orbax v1's StatefulCheckpointable protocol ----------------------------------------

    async def save(self, directory: Any) -> Any:
        """Orbax v1 (``ocp.v1.save_checkpointables``): the state, taken now, to write."""
        from feedax._state_file import background_write

        return background_write(self, directory)

    async def load(self, directory: Any) -> Any:
        """Orbax v1: loads the state saved by :meth:`save` into this pipeline, in place."""
        from feedax._state_file import background_read

        return background_read(self, directory)

    # -- profiling -------------------------------------------------------------------------

    def profile(self, n_batches: int = 20, *, verbose: bool = True) -> Profile:
        """Times each stage over ``n_batches`` batches and names the bottleneck.

        Stages: host read (or host-stage work), host-to-device transfer, device compute
        (the fused operators, waited for), and the consumer's wait for the next batch. The
        pipeline's state (cursor, statistics) is restored afterwards, so profiling does not
        move the stream.

        Args:
          n_batches: batches to time, after one warm-up batch (compilation).
          verbose: print the table.

        Example:
          >>> pipe.profile(10)  # doctest: +SKIP
        """
        return run_profile(self, n_batches, verbose=verbose)


def _unchanged(cursor: Cursor, mine: np.ndarray) -> bool:
    """Whether the cursor still holds the array the iteration put there, unmodified."""
    held = cursor.get_raw_value()
    return held is mine and held.shape == (4,) and held.tolist() == mine.tolist()
