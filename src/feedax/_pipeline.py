"""The pipeline: source, order, operators, batching, sharding and the cursor, as one module."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Generator, Iterator, Sequence
from typing import Any, Literal, cast

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from feedax._apply import AnyOperator, apply_batch, apply_operators
from feedax._device_step import VALID, CompileAhead, DeviceStep
from feedax._errors import PipelineError, StateMismatchError
from feedax._feed import DeviceData, Feed, auto_axes, local_rows, replicated
from feedax._host import HostMap
from feedax._operator import BatchOperator, Operator
from feedax._prefetch import Prefetcher
from feedax._profile import Profile, StageTimes
from feedax._skip import Planned, SkipLog, record_skips
from feedax._source import Source
from feedax._state import Cursor, Signature
from feedax._stream import StreamSource

Batch = dict[str, jax.Array]


class Pipeline(nnx.Module):
    """Batches of augmented records from a source, in an exact, resumable order.

    Each epoch visits every record exactly once, in a keyed permutation of ``(seed,
    epoch)`` (or in index order without ``shuffle``). Operators run on the device, vmapped
    over the batch and fused into one jitted function, compiled once per mode. All that
    is needed to continue is in ``nnx.state(pipeline)``: the cursor (epoch, position), the
    operators' RNG keys, running statistics and parameters; never the data.

    Iterating:
      * ``pipe.epoch()`` yields the rest of the current epoch, from the cursor.
      * ``iter(pipe)`` is an endless stream across epochs.
      The cursor advances as each batch is handed over (not when it is prefetched), so a
      state taken after receiving batch ``k`` resumes at batch ``k + 1``. Loading a state
      with ``nnx.update`` redirects even an iteration in progress.

    Modes: ``pipe.train()`` / ``pipe.eval()`` (NNX) switch every operator it holds; in eval
    mode random operators are the identity and running statistics are frozen. Operators
    are shared by reference, so two pipelines built on the same operator objects share
    their mode and statistics too.

    Batches are dicts of ``jax.Array`` with one shape for the whole run. With
    ``drop_remainder=False`` the last batch of an epoch is padded and a boolean ``"valid"``
    field marks the real records.

    Args:
      source: where records come from.
      operators: one-record operators applied in order on the device.
      batch_size: records per batch, summed over all processes and devices.
      shuffle: visit records in a new pseudo-random order each epoch.
      seed: the seed of the order.
      drop_remainder: drop the last incomplete batch of each epoch (else pad and mask).
      sharding: where batches go, e.g. ``NamedSharding(mesh, P("data"))``; it splits the
        batch (first) axis. Default: the default device, uncommitted (as ``jax.device_put``).
      host: per-record host work (decode, tokenize) run in parallel workers before the
        operators; see :class:`HostMap`.
      prefetch: batches read and transferred ahead in a background thread (0: none); the
        host stage also keeps this many batches in flight in its workers. Data kept on the
        device (``ArraySource(on_device=True)``) has nothing to read ahead: each batch is
        one XLA call, made when it is asked for.
      on_error: ``"raise"`` (default): a bad record (failed read or host stage, wrong
        shape) raises an error naming it. ``"skip"``: it is left out and the batch is filled
        with the next good records in the order, so batches stay full and the stream is
        the same in every run; skipped indices are kept in the state
        (``pipe.skipped_indices``). Single process only.
      max_skip_fraction: under ``"skip"``, raise once more than this fraction of the
        source's records have been skipped.
      shuffle_window: for a :class:`StreamSource`: shuffle within consecutive windows of
        this many records (a bounded buffer whose state is the cursor); 0: stream order.

    Example:
      >>> import numpy as np, feedax as fx
      >>> from flax import nnx
      >>> src = fx.ArraySource({"image": np.zeros((10, 8, 8, 3), np.uint8), "label": np.arange(10)})
      >>> pipe = fx.Pipeline(src, [fx.RandomFlip(rngs=nnx.Rngs(augment=0))], batch_size=4,
      ...                    shuffle=True, seed=0)
      >>> [b["label"].shape for b in pipe.epoch()]
      [(4,), (4,)]
    """

    def __init__(
        self,
        source: Source,
        operators: Sequence[AnyOperator] = (),
        *,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        drop_remainder: bool = True,
        sharding: jax.sharding.Sharding | None = None,
        host: HostMap | None = None,
        prefetch: int = 2,
        on_error: Literal["raise", "skip"] = "raise",
        max_skip_fraction: float = 0.01,
        shuffle_window: int = 0,
    ):
        if not isinstance(source, Source | StreamSource):
            raise PipelineError(
                f"Pipeline: source must be a feedax Source (e.g. fx.ArraySource) or "
                f"StreamSource, got {type(source).__name__}."
            )
        streaming = isinstance(source, StreamSource)
        _check_stream_options(source, streaming, shuffle, shuffle_window, on_error, host)
        operators = list(operators)
        for i, op in enumerate(operators):
            if not isinstance(op, Operator | BatchOperator):
                raise PipelineError(
                    f"Pipeline: operators[{i}] must be a feedax Operator or BatchOperator, got "
                    f"{type(op).__name__}. Subclass fx.Operator to write your own."
                )
        n = -1 if streaming else len(source)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise PipelineError(f"Pipeline: batch_size must be an int >= 1, got {batch_size!r}.")
        if drop_remainder and not streaming and batch_size > n:
            raise PipelineError(
                f"Pipeline: batch_size={batch_size} is larger than the source {source.name!r} "
                f"({n} records) with drop_remainder=True, so no batch would ever be produced. "
                "Use batch_size <= the source length, or drop_remainder=False to pad the last "
                "batch (padding is marked by the 'valid' field)."
            )
        if not isinstance(prefetch, int) or prefetch < 0:
            raise PipelineError(f"Pipeline: prefetch must be an int >= 0, got {prefetch!r}.")
        if on_error not in ("raise", "skip"):
            raise PipelineError(f"Pipeline: on_error must be 'raise' or 'skip', got {on_error!r}.")
        if not 0.0 < max_skip_fraction <= 1.0:
            raise PipelineError(
                f"Pipeline: max_skip_fraction must lie in (0, 1], got {max_skip_fraction!r}."
            )
        on_device = not streaming and source.on_device
        if on_error == "skip" and (jax.process_count() > 1 or on_device):
            raise PipelineError(
                "Pipeline: on_error='skip' needs a single process reading from the host (which "
                "records are skipped decides the batches); use on_error='raise' with several "
                "processes or an on_device source."
            )
        if host is not None and not isinstance(host, HostMap):
            raise PipelineError(
                f"Pipeline: host must be an fx.HostMap, got {type(host).__name__}. Wrap your "
                "function: host=fx.HostMap(fn)."
            )
        spec = source.element_spec if host is None else host.output_spec(source)
        if host is None:
            _check_device_ready(source, spec)
        if not drop_remainder and VALID in spec:
            raise PipelineError(
                f"Pipeline: the records have a field named {VALID!r}, which the pipeline adds as "
                "the padding mask when drop_remainder=False. Rename the source field."
            )
        self.source = source
        self.host = host
        self.operators = nnx.List(operators)
        self._input_spec = tuple(spec.items())
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.drop_remainder = bool(drop_remainder)
        self.prefetch = prefetch
        self.shuffle_window = shuffle_window
        self.on_error = on_error
        self.max_skip_fraction = float(max_skip_fraction)
        if sharding is not None and not isinstance(
            sharding, jax.sharding.NamedSharding | jax.sharding.SingleDeviceSharding
        ):
            raise PipelineError(
                f"Pipeline: sharding must be a NamedSharding (or SingleDeviceSharding), got "
                f"{type(sharding).__name__}. Use NamedSharding(mesh, PartitionSpec('data'))."
            )
        self.sharding = sharding
        self._device_sharding = None if sharding is None else auto_axes(sharding)
        self._rows = (0, batch_size) if sharding is None else local_rows(sharding, batch_size)
        self._signature = _signature(
            source, spec, host, self.operators, self.seed, self.shuffle, on_error
        )
        if on_error == "skip":
            capacity = int(max_skip_fraction * n)
            self.skipped = SkipLog(np.full(capacity, -1, np.int64))
        on_device = on_device and host is None
        if on_device and jax.process_count() > 1:
            raise PipelineError(
                f"Pipeline: source {source.name!r} keeps its data on the device (on_device=True), "
                "which is supported in a single process only. Use on_device=False on several "
                "hosts: each then reads only its own rows."
            )
        self._mode_version = 0
        self.cursor = Cursor(np.zeros(2, np.int64))
        self.signature = Signature(np.asarray(self._signature, np.int64))
        self._ahead: CompileAhead | None = None
        self._device_data: DeviceData | None = None
        if on_device:
            # Traced now (bad records fail here), compiled while the data is uploaded.
            self._ahead = CompileAhead(self, dict(spec), n)
            columns = cast(dict[str, jax.Array], source.device_columns)
            self._device_data = DeviceData(columns, self._device_sharding)
        else:
            self.output_spec  # noqa: B018  (traces the operators now, so bad records fail here)

    # -- shape of the stream ---------------------------------------------------------------

    @property
    def steps_per_epoch(self) -> int:
        """Batches in one epoch (unknown, so an error, for a stream)."""
        if isinstance(self.source, StreamSource):
            raise PipelineError(
                f"Pipeline: the stream {self.source.name!r} has no known length, so neither has "
                "an epoch; iterate pipe.epoch() to its end instead."
            )
        n, b = len(self.source), self.batch_size
        return n // b if self.drop_remainder else -(-n // b)

    @property
    def output_spec(self) -> dict[str, jax.ShapeDtypeStruct]:
        """The shape and dtype of each field of a batch (for the current mode)."""
        b = self.batch_size
        batch = {
            k: jax.ShapeDtypeStruct((b, *v.shape), jax.dtypes.canonicalize_dtype(v.dtype))
            for k, v in self._input_spec
        }
        graphdef, state = nnx.split(self.operators)
        index = jax.ShapeDtypeStruct((b,), jnp.int32)
        valid = jax.ShapeDtypeStruct((b,), jnp.bool_)
        out, _ = jax.eval_shape(apply_batch, graphdef, state, batch, jnp.int32(0), index, valid)
        if not self.drop_remainder:
            out[VALID] = valid
        return out

    @property
    def skipped_indices(self) -> list[int]:
        """Indices of the records skipped as bad so far (``on_error="skip"``)."""
        if self.on_error != "skip":
            return []
        log = np.asarray(self.skipped[...])
        return log[log >= 0].tolist()

    @property
    def position(self) -> tuple[int, int]:
        """The cursor as ``(epoch, records of that epoch already handed over)``."""
        epoch, position = (int(v) for v in self.cursor[...])
        return epoch, position

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
        return apply_operators(list(self.operators), batch, indices=indices, epoch=epoch)

    # -- iteration -------------------------------------------------------------------------

    def epoch(self) -> Iterator[Batch]:
        """Yields the rest of the current epoch, from the cursor, then stops."""
        return self._iterate(single_epoch=True)

    def __iter__(self) -> Iterator[Batch]:
        """An endless stream of batches across epochs, from the cursor."""
        return self._iterate(single_epoch=False)

    def _has_batch(self, start: int) -> bool:
        if isinstance(self.source, StreamSource):
            return True  # known only by reading on: the stream marks its last batch
        n = len(self.source)
        return start + self.batch_size <= n if self.drop_remainder else start < n

    def _checked_cursor(self) -> tuple[int, int]:
        if int(np.asarray(self.signature[...])) != self._signature:
            raise StateMismatchError(
                "Pipeline: the loaded state was taken from a different pipeline (its signature "
                "does not match this pipeline's source length/fields, seed, shuffle and "
                "operators). Restore it into a pipeline built like the one that saved it."
            )
        cursor = np.asarray(self.cursor[...])
        n = 2**62 if isinstance(self.source, StreamSource) else len(self.source)
        if cursor.shape != (2,) or cursor[0] < 0 or not 0 <= cursor[1] <= n:
            raise StateMismatchError(
                f"Pipeline: the cursor {cursor.tolist()} is not a valid [epoch, position] for a "
                f"source of {n} records. Restore a state saved by this pipeline."
            )
        epoch, start = int(cursor[0]), int(cursor[1])
        return (epoch, start) if self._has_batch(start) else (epoch + 1, 0)

    def _plan(self, epoch: int, start: int) -> Iterator[tuple[int, int]]:
        while True:
            while self._has_batch(start):
                yield epoch, start
                start += self.batch_size
            epoch, start = epoch + 1, 0

    def _feed(self) -> Feed:
        return Feed(
            source=self.source,
            host=self.host,
            spec=dict(self._input_spec),
            batch_size=self.batch_size,
            rows=self._rows,
            seed=self.seed,
            shuffle=self.shuffle,
            sharding=self._device_sharding,
            read_ahead=max(self.prefetch, 1),
            on_device=self._device_data is not None,
            drop_remainder=self.drop_remainder,
            delivered=0
            if isinstance(self.source, StreamSource)
            else min(self.steps_per_epoch * self.batch_size, len(self.source)),
        )

    def _iterate(self, single_epoch: bool, times: StageTimes | None = None) -> Generator[Batch]:
        while True:
            epoch, start = self._checked_cursor()
            nnx.update(self.operators, replicated(self._device_sharding, nnx.state(self.operators)))
            step = DeviceStep(self)
            first_epoch = epoch
            feeder = self._feed()
            if isinstance(self.source, StreamSource):
                feed: Iterator[Any] = feeder.streaming(epoch, start, self.shuffle_window)
            elif self.on_error == "skip":
                feed = feeder.skipping(epoch, start)
            else:
                feed = feeder(self._plan(epoch, start))
            # On-device data has no host work to run ahead: a thread would only add a
            # hand-over per batch.
            depth = 0 if self._device_data is not None else self.prefetch
            with Prefetcher(feed, depth) as ready:
                while True:
                    asked = time.perf_counter()
                    try:
                        item, arrays, host_times = next(ready)
                    except StopIteration:
                        return
                    received = time.perf_counter()
                    if isinstance(item, Planned):
                        epoch, after, skipped = item.epoch, item.end, item.skipped
                    else:
                        epoch, start = cast(tuple[int, int], item)
                        after, skipped = start + self.batch_size, ()
                    if single_epoch and epoch != first_epoch:
                        # Skipped records left too few for another batch: the epoch is over.
                        self.cursor.set_value(np.asarray((first_epoch + 1, 0), np.int64))
                        return
                    batch = step(epoch, arrays)
                    if times is not None:
                        times.add(received - asked, host_times, received, batch)
                    if skipped:
                        record_skips(
                            self.skipped,
                            skipped,
                            n=len(self.source),
                            limit=self.max_skip_fraction,
                            name=self.source.name,
                        )
                    last = isinstance(item, Planned) and item.last
                    ended = last or not self._has_batch(after)
                    cursor = (epoch + 1, 0) if ended else (epoch, after)
                    # Replace, never write into, the array: snapshots of the state keep theirs.
                    mine = np.asarray(cursor, np.int64)
                    self.cursor.set_value(mine)
                    yield batch
                    if single_epoch and cursor[1] == 0:
                        return
                    if not _unchanged(self.cursor, mine):
                        break  # a state was loaded meanwhile: restart from its (checked) cursor

    def set_attributes(self, *filters: Any, **attributes: Any) -> None:
        """NNX's attribute setter, used by ``train()`` / ``eval()``.

        Iterations in progress pick up the new mode at their next batch.
        """
        super().set_attributes(*filters, **attributes)
        self._mode_version += 1

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
        if not isinstance(n_batches, int) or n_batches < 1:
            raise PipelineError(f"Pipeline.profile: n_batches must be >= 1, got {n_batches!r}.")
        saved = nnx.clone(nnx.state(self))
        times = StageTimes()
        try:
            stream = self._iterate(single_epoch=False, times=times)
            jax.block_until_ready(next(stream))  # compile outside the measurement
            times.clear()
            for _ in range(n_batches):
                next(stream)
            stream.close()
        finally:
            nnx.update(self, saved)
        profile = times.summary(self.batch_size)
        if verbose:
            print(profile)
        return profile


def _unchanged(cursor: Cursor, mine: np.ndarray) -> bool:
    """Whether the cursor still holds the array the iteration put there, unmodified."""
    held = cursor.get_raw_value()
    return held is mine and held.shape == (2,) and held.tolist() == mine.tolist()


def _check_stream_options(
    source: Any, streaming: bool, shuffle: bool, window: int, on_error: str, host: Any
) -> None:
    """Streams shuffle within a window, and support neither skipping nor process workers."""
    if not isinstance(window, int) or window < 0:
        raise PipelineError(f"Pipeline: shuffle_window must be an int >= 0, got {window!r}.")
    if not streaming:
        if window:
            raise PipelineError(
                "Pipeline: shuffle_window is for a StreamSource; a random-access source is "
                "shuffled as a whole with shuffle=True."
            )
        return
    if shuffle:
        raise PipelineError(
            f"Pipeline: the stream {source.name!r} cannot be shuffled as a whole; pass "
            "shuffle_window=K to shuffle within windows of K records (held in memory)."
        )
    if on_error == "skip":
        raise PipelineError("Pipeline: on_error='skip' is not supported for a StreamSource yet.")
    if isinstance(host, HostMap) and host.backend == "process":
        raise PipelineError(
            "Pipeline: a StreamSource's host stage runs in threads (its records are read in "
            "this process); use HostMap(..., backend='thread')."
        )


def _check_device_ready(source: Source, spec: dict[str, jax.ShapeDtypeStruct]) -> None:
    """Without a host stage, every field must be a numeric array the device can take."""
    for field, s in spec.items():
        if s.dtype == np.dtype(object) or s.dtype.kind in "SUV":
            raise PipelineError(
                f"Pipeline: field {field!r} of source {source.name!r} holds {s.dtype} values "
                "(bytes, strings or objects), which cannot go to the device. Add a host stage "
                "that turns them into arrays: host=fx.HostMap(decode)."
            )


def _signature(
    source: Source,
    spec: dict[str, jax.ShapeDtypeStruct],
    host: HostMap | None,
    operators: Sequence[AnyOperator],
    seed: int,
    shuffle: bool,
    on_error: str,
) -> int:
    ops = [(type(op).__qualname__, getattr(op, "field", None)) for op in operators]
    fields = sorted((k, v.shape, str(v.dtype)) for k, v in spec.items())
    stage = None if host is None else host.name
    length = -1 if isinstance(source, StreamSource) else len(source)
    text = repr((type(source).__qualname__, length, fields, stage, seed, shuffle, ops, on_error))
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)
