"""The host stage: per-record Python/NumPy work that XLA cannot do, in parallel workers."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import jax
import numpy as np
from flax import nnx

from feedax._errors import HostStageError, PipelineError
from feedax._ragged import Ragged

HostRecord = dict[str, np.ndarray]
HostFn = Callable[[dict[str, Any], "HostContext"], Mapping[str, Any]]


@dataclasses.dataclass(frozen=True)
class HostContext:
    """What a host function knows about the record it processes.

    Attributes:
      epoch: the epoch being produced.
      index: the record's index in its source (its identity).
      training: False in eval mode; random host work should then be skipped.
      seed: the stage's seed (from its ``rngs``); 0 for a stage without ``rngs``.
    """

    epoch: int
    index: int
    training: bool
    seed: int

    def rng(self) -> np.random.Generator:
        """A NumPy generator keyed by (stage seed, epoch, index) only.

        So, as on the device, a record gets the same host draws in a given epoch whatever
        the worker count, batch size or restart.
        """
        return np.random.default_rng([self.seed, self.epoch, self.index])


class HostMap(nnx.Module):
    """Per-record host work (read bytes, decode an image, tokenize), run in parallel.

    ``fn(record, ctx)`` takes one record (field -> NumPy value, e.g. ``bytes`` for an
    encoded image) and a :class:`HostContext`, and returns a dict of arrays of fixed shapes
    and dtypes: the fields that go to the device. The output of record 0 fixes the
    shapes; any later record that differs raises an error naming it.

    Workers: threads (default) for work that releases the GIL (PIL/simplejpeg decode,
    NumPy, file reads); processes for pure-Python work, returning results through shared
    memory (``fn`` and the source must then be picklable: a module-level function); Ray
    tasks to spread the work over a cluster's machines. Output order never depends on the
    worker count or the backend.

    Args:
      fn: the per-record function.
      workers: parallel workers; 0 runs in the pipeline's producer thread.
      backend: ``"thread"``, ``"process"``, or ``"ray"`` (``pip install 'feedax[ray]'``):
        each batch's records run as Ray tasks, on the cluster the program joined with
        ``ray.init(address=...)`` (else feedax starts a local one); ``workers`` tasks per
        batch. Ray pickles ``fn`` and the source with cloudpickle (closures work), retries
        a task whose worker died twice, then raises ``HostStageError`` naming its records.
      rngs: for random host work: the stage draws its seed from ``rngs[stream]``.
      stream: the stream name in ``rngs``.
      timeout: seconds a batch's records may take once the pipeline waits for them
        (with ``workers >= 1``), after which ``HostStageError`` names them and the workers
        are stopped: a stalled read or a deadlocked decoder ends the job instead of
        hanging it. None: no limit.

    Example:
      >>> import numpy as np, feedax as fx
      >>> def decode(record, ctx):
      ...     return {"image": np.frombuffer(record["raw"], np.uint8).reshape(2, 2, 1)}
      >>> raw = np.array([bytes([i] * 4) for i in range(6)], dtype=object)
      >>> src = fx.ArraySource({"raw": raw})
      >>> pipe = fx.Pipeline(src, batch_size=3, host=fx.HostMap(decode, workers=2))
      >>> next(pipe.epoch())["image"].shape
      (3, 2, 2, 1)
    """

    def __init__(
        self,
        fn: HostFn,
        *,
        workers: int | None = None,
        backend: Literal["thread", "process", "ray"] = "thread",
        rngs: nnx.Rngs | None = None,
        stream: str = "augment",
        timeout: float | None = 600.0,
    ):
        if not callable(fn):
            raise PipelineError(f"HostMap: fn must be callable, got {type(fn).__name__}.")
        if backend not in ("thread", "process", "ray"):
            raise PipelineError(
                f"HostMap: backend must be 'thread', 'process' or 'ray', got {backend!r}."
            )
        workers = min(os.cpu_count() or 1, 8) if workers is None else workers
        if not isinstance(workers, int) or workers < 0:
            raise PipelineError(f"HostMap: workers must be an int >= 0, got {workers!r}.")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
        ):
            raise PipelineError(f"HostMap: timeout must be None or > 0 seconds, got {timeout!r}.")
        self.fn = fn
        self.workers = workers
        self.backend = backend
        self.timeout = None if timeout is None else float(timeout)
        self.deterministic = False
        self.stream_key = None if rngs is None else nnx.RngKey(rngs[stream]())

    @property
    def name(self) -> str:
        """The function's name, for messages."""
        return getattr(self.fn, "__qualname__", type(self.fn).__name__)

    def seed(self) -> int:
        """The integer seed handed to host functions (0 without ``rngs``)."""
        if self.stream_key is None:
            return 0
        data = np.asarray(jax.random.key_data(self.stream_key[...])).ravel()
        return int(data[0]) << 32 | int(data[-1])

    def output_spec(self, source: Any, *, tries: int = 1) -> dict[str, jax.ShapeDtypeStruct]:
        """Runs ``fn`` on record 0 and returns the shapes and dtypes it produces.

        With ``tries > 1`` (a pipeline that skips bad records) a record that fails is
        passed over for the next one, up to ``tries`` records.
        """
        # A stream gives its first record only.
        count = 1 if hasattr(source, "first_record") else min(tries, len(source))
        for index in range(count):
            record = first_record(source) if index == 0 else _record(source, index)
            ctx = HostContext(0, index, not self.deterministic, self.seed())
            try:
                out = call_host_fn(self.fn, record, ctx, source_name=source.name)
            except HostStageError as error:
                if index + 1 < count:
                    continue
                if count == 1:
                    raise
                raise HostStageError(
                    f"host stage {self.name!r} failed on each of the first {count} records of "
                    f"source {source.name!r}, so the shapes of its output are unknown; the "
                    f"last: {error}"
                ) from error
            return {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in out.items()}
        raise HostStageError(f"host stage {self.name!r}: source {source.name!r} is empty.")


class Mapped:
    """A source seen through a host stage: ``read`` returns the host function's records.

    What packing reads when a host stage makes the sequences (a tokenizer): the stage runs
    on the records a batch needs, in the reading thread, with the context of epoch 0 (a
    packed sequence's length is indexed once, so the function must give each record the
    same output in every epoch).
    """

    def __init__(self, source: Any, stage: HostMap, fields: Sequence[str]):
        self.source = source
        self.stage = stage
        self.name = f"{source.name} through {stage.name}"
        self.fields = tuple(fields)
        self.seed = stage.seed()
        out = stage.output_spec(source)
        for field in self.fields:
            if field not in out or len(out[field].shape) != 1:
                raise PipelineError(
                    f"Pipeline: Pack packs field {field!r} of the host stage {stage.name!r}, "
                    f"which returns {sorted(out)}. Return the token ids as a 1-D array under "
                    "that name."
                )
        self.element_spec = {field: Ragged(out[field].dtype) for field in self.fields}

    def __len__(self) -> int:
        return len(self.source)

    def read(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """The host stage's packed fields for each record, as object arrays of arrays."""
        records = self.source.read(np.asarray(indices, np.int64))
        out = {field: np.empty(len(indices), dtype=object) for field in self.fields}
        for j, index in enumerate(np.asarray(indices).tolist()):
            record = {k: v[j] for k, v in records.items()}
            ctx = HostContext(0, index, True, self.seed)
            result = call_host_fn(self.stage.fn, record, ctx, source_name=self.source.name)
            for field in self.fields:
                out[field][j] = result[field]
        return out


def _record(source: Any, index: int) -> dict[str, Any]:
    batch = source.read(np.array([index], np.int64))
    return {k: v[0] for k, v in batch.items()}


def first_record(source: Any) -> dict[str, Any]:
    """Record 0 of ``source`` as field -> value."""
    if hasattr(source, "first_record"):  # streams cannot be read by index
        return source.first_record()
    return _record(source, 0)


def call_host_fn(
    fn: HostFn, record: dict[str, Any], ctx: HostContext, *, source_name: str
) -> HostRecord:
    """Calls ``fn`` and turns its failures and malformed outputs into errors naming the record."""
    name = getattr(fn, "__qualname__", type(fn).__name__)
    try:
        out = fn(record, ctx)
    except KeyboardInterrupt as error:  # still an interrupt, but saying where it struck
        error.add_note(
            f"feedax: in host stage {name!r} on record index {ctx.index} of source "
            f"{source_name!r} (epoch {ctx.epoch})."
        )
        raise
    except (Exception, SystemExit) as error:
        raise HostStageError(
            f"host stage {name!r} failed on record index {ctx.index} of source {source_name!r} "
            f"(epoch {ctx.epoch}): {type(error).__name__}: {error}. Fix the record or the "
            "function, or pass on_error='skip' to the Pipeline to skip bad records."
        ) from error
    if not isinstance(out, Mapping) or not out:
        raise HostStageError(
            f"host stage {name!r} returned {type(out).__name__} for record index {ctx.index} of "
            f"source {source_name!r}; expected a non-empty dict of field -> array."
        )
    return {k: np.asarray(v) for k, v in out.items()}


def check_host_output(
    out: HostRecord,
    spec: Mapping[str, jax.ShapeDtypeStruct],
    *,
    index: int,
    stage: str,
    source: str,
) -> None:
    """Raises if ``out`` does not have the fields, shapes and dtypes of ``spec``."""
    if out.keys() != spec.keys():
        raise HostStageError(
            f"host stage {stage!r} returned fields {sorted(out)} for record index {index} of "
            f"source {source!r}, but {sorted(spec)} for record 0. Return the same fields for "
            "every record."
        )
    for field, value in out.items():
        want = spec[field]
        if value.shape != want.shape or value.dtype != want.dtype:
            raise HostStageError(
                f"host stage {stage!r}: field {field!r} of record index {index} of source "
                f"{source!r} has shape {value.shape} and dtype {value.dtype}, but record 0 had "
                f"{want.shape} {want.dtype}. Batches need fixed shapes: resize, crop or pad to "
                "one shape in the host function."
            )
