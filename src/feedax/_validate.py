"""A pipeline's arguments, checked in one place when it is built: each error says the fix."""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Iterable, Sequence
from typing import Any

import jax
import numpy as np
from flax import nnx

from feedax._apply import AnyOperator, traced_spec
from feedax._block_order import BlockShuffle
from feedax._device_step import VALID
from feedax._errors import HostStageError, PipelineError
from feedax._filter import Filter
from feedax._host import HostMap, Mapped
from feedax._operator import BatchOperator, Operator
from feedax._pack import Pack
from feedax._ranges import check_unit_order
from feedax._source import Source
from feedax._sources.mix import Mix
from feedax._sources.sharded_stream import ShardedStream
from feedax._sources.tokens import Ragged, is_token_source
from feedax._stream import StreamSource

Spec = dict[str, jax.ShapeDtypeStruct]


def check_arguments(
    source: Any,
    operators: Sequence[Any],
    *,
    batch_size: Any,
    seed: Any,
    drop_remainder: Any,
    prefetch: Any,
    on_error: Any,
    max_skip_fraction: Any,
    shuffle: Any,
    shuffle_window: Any,
    host: Any,
    filter: Any,
    pack: Any,
    sharding: Any,
) -> None:
    """Raises ``PipelineError`` for the first argument that is wrong, with the fix."""
    if getattr(mp.current_process(), "_inheriting", False):
        raise HostStageError(
            "Pipeline: a pipeline is being built while a worker process starts, i.e. your main "
            "script runs again in each spawned worker of a host stage (backend='process'). "
            'Put the code that builds and runs the pipeline under `if __name__ == "__main__":`.'
        )
    if not isinstance(source, Source | StreamSource):
        raise PipelineError(
            f"Pipeline: source must be a feedax Source (e.g. fx.ArraySource) or "
            f"StreamSource, got {type(source).__name__}."
        )
    if jax.tree.leaves(nnx.state(source)):
        raise PipelineError(
            f"Pipeline: source {source.name!r} ({type(source).__name__}) holds NNX state "
            f"({', '.join(str(p) for p, _ in nnx.to_flat_state(nnx.state(source)))}), which "
            "would put its data into nnx.state(pipeline) and every checkpoint. Hold arrays in "
            "a plain object attribute instead (e.g. a dataclass or dict wrapper, as "
            "fx.ArraySource does), or pass them as an fx.ArraySource."
        )
    for i, op in enumerate(operators):
        if not isinstance(op, Operator | BatchOperator):
            raise PipelineError(
                f"Pipeline: operators[{i}] must be a feedax Operator or BatchOperator, got "
                f"{type(op).__name__}. Subclass fx.Operator to write your own."
            )
    check_unit_order(operators)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise PipelineError(f"Pipeline: batch_size must be an int >= 1, got {batch_size!r}.")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise PipelineError(f"Pipeline: seed must be an int, got {seed!r}. Pass e.g. seed=0.")
    if drop_remainder not in (None, True, False):
        raise PipelineError(
            f"Pipeline: drop_remainder must be None, True or False, got {drop_remainder!r}."
        )
    if not isinstance(prefetch, int) or prefetch < 0:
        raise PipelineError(f"Pipeline: prefetch must be an int >= 0, got {prefetch!r}.")
    if on_error not in ("raise", "skip"):
        raise PipelineError(f"Pipeline: on_error must be 'raise' or 'skip', got {on_error!r}.")
    if not 0.0 < max_skip_fraction <= 1.0:
        raise PipelineError(
            f"Pipeline: max_skip_fraction must lie in (0, 1], got {max_skip_fraction!r}."
        )
    if host is not None and not isinstance(host, HostMap):
        raise PipelineError(
            f"Pipeline: host must be an fx.HostMap, got {type(host).__name__}. Wrap your "
            "function: host=fx.HostMap(fn)."
        )
    if filter is not None and not isinstance(filter, Filter):
        raise PipelineError(
            f"Pipeline: filter must be an fx.Filter, got {type(filter).__name__}. Wrap your "
            "predicate: filter=fx.Filter(fn, columns=[...])."
        )
    if sharding is not None and not isinstance(
        sharding, jax.sharding.NamedSharding | jax.sharding.SingleDeviceSharding
    ):
        raise PipelineError(
            f"Pipeline: sharding must be a NamedSharding (or SingleDeviceSharding), got "
            f"{type(sharding).__name__}. Use NamedSharding(mesh, PartitionSpec('data'))."
        )
    _check_kind(source, shuffle, shuffle_window, on_error, host, filter, batch_size, drop_remainder)
    if isinstance(shuffle, BlockShuffle):
        _check_block_shuffle(source, pack)
    elif not isinstance(shuffle, bool | np.bool_):
        raise PipelineError(
            f"Pipeline: shuffle must be True, False or an fx.BlockShuffle, got {shuffle!r}."
        )
    if pack is not None:
        _check_pack(source, pack, host, on_error)
    if isinstance(source, ShardedStream):
        _check_lanes(source, shuffle, batch_size)


def _check_lanes(source: ShardedStream, shuffle: Any, batch_size: int) -> None:
    """A sharded stream is read forward in its lanes' layout, made for one batch size."""
    if shuffle is not False:
        raise PipelineError(
            f"Pipeline: {source.name} reads its files front to back, so shuffle must be False "
            "(shuffle the records when preparing the shards; lanes interleave the files)."
        )
    if batch_size != source.batch_size:
        raise PipelineError(
            f"Pipeline: {source.name} lays its lanes out for batch_size={source.batch_size}, "
            f"but the pipeline's batch_size is {batch_size}. Give both the same batch size."
        )


def check_record_ids(record_ids: Any, source: Any, spec: Spec, names: Iterable[str]) -> bool:
    """``record_ids`` checked: a bool, data read on the host, names not taken."""
    if not isinstance(record_ids, bool):
        raise PipelineError(f"Pipeline: record_ids must be True or False, got {record_ids!r}.")
    if not record_ids:
        return False
    if isinstance(source, Source) and source.on_device:
        raise PipelineError(
            "Pipeline: record_ids=True names each row's record as it is read on the host; "
            "on-device data picks its rows on the device. Drop record_ids, or use "
            "ArraySource(on_device=False)."
        )
    taken = [f for f in names if f in spec]
    if taken:
        raise PipelineError(
            f"Pipeline: record_ids=True adds the field {taken[0]!r}, which the records already "
            f"have ({sorted(spec)}). Rename that field (a host stage, or the source's column)."
        )
    return True


def _check_block_shuffle(source: Any, pack: Any) -> None:
    """A block shuffle orders one random-access source's records, read on the host."""
    if not isinstance(source, Source) or isinstance(source, Mix) or source.on_device:
        kind = "on-device data" if isinstance(source, Source) else type(source).__name__
        raise PipelineError(
            f"Pipeline: shuffle=fx.BlockShuffle(...) orders the records of one random-access "
            f"source read on the host (a Parquet file, say), not {kind}. Use shuffle=True "
            "(a Mix shuffles each source with shuffle=True; on-device data reads no blocks)."
        )
    if pack is not None:
        raise PipelineError(
            "Pipeline: packing plans rows over a fully shuffled order; use shuffle=True with pack=."
        )


def _check_pack(source: Any, pack: Any, host: Any, on_error: str) -> None:
    """Packing reads token slices of a source that knows its sequences' lengths."""
    if not isinstance(pack, Pack):
        raise PipelineError(
            f"Pipeline: pack must be an fx.Pack, got {type(pack).__name__}. Pass e.g. "
            "pack=fx.Pack(2048)."
        )
    flat = is_token_source(source)
    if not isinstance(source, Source) or (isinstance(source, Mix) and not flat):
        raise PipelineError(
            f"Pipeline: packing needs a source of token sequences (an fx.TokenSource, a source "
            f"with an fx.Ragged field, or a Mix of TokenSources), got {type(source).__name__}. "
            "Write the corpus with fx.write_tokens and read it with "
            "fx.TokenSource.from_directory."
        )
    specs = Mapped(source, host, pack.fields).element_spec if host else source.element_spec
    for field in pack.fields:
        spec = specs.get(field)
        if not isinstance(spec, Ragged) or spec.shape or not np.issubdtype(spec.dtype, np.integer):
            raise PipelineError(
                f"Pipeline: Pack packs field {field!r}, which needs to be a ragged integer token "
                f"field of source {source.name!r}; its fields are {specs}. Pass "
                "field=<the token field> (or the fields as the keys of length)."
            )
    if on_error == "skip" or source.on_device or (host is not None and isinstance(source, Mix)):
        raise PipelineError(
            "Pipeline: packing plans rows from the sequences' lengths; it takes neither "
            "on_error='skip' nor on_device data, nor a host stage over a Mix yet. Tokenize "
            "offline into an fx.TokenSource (fx.tokenize, fx.write_tokens)."
        )


def record_spec(source: Any, host: Any, pack: Any, skip: bool = False) -> Spec:
    """What reaches the operators: the source's records, the host stage's, or packed rows.

    ``skip``: bad records are skipped, so the host stage's shapes come from the first
    record it processes (up to 100 are tried).
    """
    if pack is not None:
        packed = source if host is None else Mapped(source, host, pack.fields)
        return pack.output_spec([packed.element_spec[f].dtype for f in pack.fields])
    if host is None:
        return dict(source.element_spec)
    return dict(host.output_spec(source, tries=100 if skip else 1))


def _check_kind(
    source: Any,
    shuffle: bool,
    window: Any,
    on_error: str,
    host: Any,
    filter: Any,
    batch_size: int,
    drop_remainder: Any,
) -> None:
    """What random-access sources, on-device data and streams each support."""
    if not isinstance(window, int) or window < 0:
        raise PipelineError(f"Pipeline: shuffle_window must be an int >= 0, got {window!r}.")
    if isinstance(source, Source):
        if window:
            raise PipelineError(
                "Pipeline: shuffle_window is for a StreamSource; a random-access source is "
                "shuffled as a whole with shuffle=True."
            )
        if drop_remainder is not False and batch_size > len(source):
            raise PipelineError(
                f"Pipeline: batch_size={batch_size} is larger than the source {source.name!r} "
                f"({len(source)} records), so a training epoch, which drops the last partial "
                "batch, would have no batch. Use batch_size <= the source length, or "
                "drop_remainder=False to pad the batch (padding is marked by 'valid')."
            )
        on_device = source.on_device and host is None
        several = jax.process_count() > 1
        if on_error == "skip" and (several or on_device):
            raise PipelineError(
                "Pipeline: on_error='skip' needs a single process reading from the host (which "
                "records are skipped decides the batches); use on_error='raise' with several "
                "processes or an on_device source."
            )
        if on_device and several:
            raise PipelineError(
                f"Pipeline: source {source.name!r} keeps its data on the device (on_device=True), "
                "which is supported in a single process only. Use on_device=False on several "
                "hosts: each then reads only its own rows."
            )
        if on_device and filter is not None:
            raise PipelineError(
                f"Pipeline: source {source.name!r} keeps its data on the device, where the "
                "order is computed per batch; a filter plans rows on the host. Use "
                "on_device=False with a filter."
            )
        return
    if shuffle:
        raise PipelineError(
            f"Pipeline: the stream {source.name!r} cannot be shuffled as a whole; pass "
            "shuffle_window=K to shuffle within windows of K records (held in memory)."
        )
    if on_error == "skip":
        raise PipelineError("Pipeline: on_error='skip' is not supported for a StreamSource yet.")
    if filter is not None:
        raise PipelineError(
            f"Pipeline: a filter plans rows from a source's metadata; the stream "
            f"{source.name!r} has none to read ahead. Drop records in the stream itself."
        )
    if isinstance(host, HostMap) and host.backend == "process":
        raise PipelineError(
            "Pipeline: a StreamSource's host stage runs in threads (its records are read in "
            "this process); use HostMap(..., backend='thread')."
        )


def check_records(source: Any, spec: Spec, host: Any, may_pad: bool) -> None:
    """The records (after the host stage) can go to the device, and leave room for ``valid``."""
    for field, s in spec.items():
        if isinstance(s, Ragged):
            raise PipelineError(
                f"Pipeline: field {field!r} of source {source.name!r} has a variable length "
                f"({s}), but batches need one shape. Pack the sequences into rows: "
                "pack=fx.Pack(length), or pad/truncate each to one length: "
                "pack=fx.Pack(length, max_segments=1, long='truncate')."
            )
        if not s.dtype.isnative:
            raise PipelineError(
                f"Pipeline: field {field!r} of source {source.name!r} is {s.dtype.str} (not the "
                "machine's byte order), which JAX cannot take. Convert it once: "
                "array.astype(array.dtype.newbyteorder('='))."
            )
    if host is None:
        for field, s in spec.items():
            # ml_dtypes' bfloat16 / float8 are kind "V" numbers that JAX takes as they are.
            numeric = jax.dtypes.issubdtype(s.dtype, np.number)
            if s.dtype == np.dtype(object) or (s.dtype.kind in "SUV" and not numeric):
                raise PipelineError(
                    f"Pipeline: field {field!r} of source {source.name!r} holds {s.dtype} values "
                    "(bytes, strings or objects), which cannot go to the device. Add a host "
                    "stage that turns them into arrays: host=fx.HostMap(decode)."
                )
    if may_pad and VALID in spec:
        raise PipelineError(
            f"Pipeline: the records have a field named {VALID!r}, which the pipeline adds as "
            "the padding mask (unless drop_remainder=True). Rename the source field."
        )


def check_eval_shape(operators: nnx.List[AnyOperator], spec: Spec, batch_size: int) -> None:
    """Raises unless the operators give batches of one layout in train and in eval mode."""
    train = traced_spec(operators, spec, batch_size, mode="train")
    evaluated = traced_spec(operators, spec, batch_size, mode="eval")
    if train == evaluated:
        return
    culprit = "the operators"
    for i in range(len(operators)):
        part = nnx.List(list(operators)[: i + 1])
        a = traced_spec(part, spec, batch_size, mode="train")
        if a != traced_spec(part, spec, batch_size, mode="eval"):
            culprit = f"operators[{i}] ({type(operators[i]).__name__})"
            break
    raise PipelineError(
        f"Pipeline: {culprit} give batches of another layout in eval mode than in train "
        f"mode ({_layout(train)} -> {_layout(evaluated)}), so a training step compiled for "
        "one would get the other. Make the eval transform keep the shape (random crops and "
        "resizes take a central window of their size in eval), or add a deterministic "
        "operator (CenterCrop, Resize) that fixes the size."
    )


def _layout(spec: Spec) -> str:
    return ", ".join(f"{k}: {v.dtype}{list(v.shape)}" for k, v in sorted(spec.items()))


def operator_list(operators: Any) -> list[Any]:
    """The operators as a list; one operator alone (not in a list) raises with the fix."""
    if isinstance(operators, nnx.Module):
        raise PipelineError(
            f"Pipeline: operators must be a list of operators, got one "
            f"{type(operators).__name__}. Pass [op] (a list, applied in order)."
        )
    return list(operators)
