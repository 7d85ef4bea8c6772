"""The contract of a random-access source, checked on the user's own data."""

from __future__ import annotations

import itertools
import pickle
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from feedax._host import HostContext, HostMap
from feedax._pipeline import Pipeline
from feedax._ragged import Ragged
from feedax._source import Source
from feedax.testing._common import expect, on_host, same_batches
from feedax.testing._pipelines import assert_resumes_exactly


def check_source(
    source: Source,
    *,
    batch_size: int = 8,
    host: HostMap | None = None,
    operators: Callable[[], Sequence[Any]] | None = None,
    devices: Sequence[int] = (2, 4),
    threads: int = 4,
) -> None:
    """Checks a random-access source against the contract every feedax source meets.

    On the source itself: ``read`` returns the records asked for, in that order (a
    batch read equals the records read one by one), with the fields of
    ``element_spec``; an out-of-range index raises ``IndexError`` naming the source; a
    pickled copy (as process workers get) reads the same after the original has read;
    and ``read`` called from ``threads`` threads at once returns what serial calls do
    (pipelines call it from several threads: the read-ahead thread and thread workers).

    Through a pipeline (``record_ids=True``, shuffled): every record exactly once per
    epoch over two epochs, in a new order each; each row equal to its record (without a
    host stage); a state saved after every step of two epochs resumes exactly; per-record
    outputs the same for batch sizes 1, 3 and ``batch_size``; and batches sharded over
    each of ``devices`` devices (those the machine has) equal the unsharded ones.

    Args:
      source: the source to check (a few dozen records is plenty).
      batch_size: the batch of the pipeline checks; a multiple of every ``devices`` entry.
      host: a host stage turning records into fixed-shape arrays, for sources with
        ``bytes`` / ``str`` fields; by default such fields (and ragged ones) are dropped
        for the pipeline checks.
      operators: builds operators to apply in the pipeline checks (fresh ones each call,
        with fixed ``rngs``), to check that augmentation follows the records.
      devices: device counts for the sharding check.
      threads: threads for the concurrent-read check.

    Example:
      >>> import numpy as np, feedax as fx
      >>> from feedax.testing import check_source
      >>> check_source(fx.ArraySource({"x": np.arange(24.0), "y": np.arange(24) % 3}))
    """
    expect(isinstance(source, Source), f"check_source: expected a Source, got {type(source)}")
    n = len(source)
    expect(n >= 2, f"{source.name}: give a source of at least 2 records, got {n}")
    _check_reads(source)
    _check_pickling_and_threads(source, threads)
    stage = host if host is not None else _device_fields(source)
    ops = operators or list

    def make(b: int = batch_size, sharding: Any = None) -> Pipeline:
        return Pipeline(
            source,
            list(ops()),
            batch_size=b,
            shuffle=True,
            seed=5,
            host=stage,
            drop_remainder=False,
            record_ids=True,
            sharding=sharding,
        )

    _check_coverage(make(), source, n, compare=host is None)
    steps = make().steps_per_epoch
    assert_resumes_exactly(make, steps=2 * steps + 1)
    outputs = [_per_record(make(b)) for b in (1, 3, batch_size)]
    for b, out in zip((3, batch_size), outputs[1:], strict=True):
        expect(out == outputs[0], f"{source.name}: batch size {b} changes a record's output")
    reference = list(itertools.islice(map(on_host, make()), 3))
    for d in devices:
        if d > jax.device_count() or batch_size % d:
            continue
        mesh = jax.make_mesh((d,), ("data",), devices=jax.devices()[:d])
        sharded = make(sharding=NamedSharding(mesh, PartitionSpec("data")))
        got = list(itertools.islice(map(on_host, sharded), 3))
        same_batches(reference, got, f"{source.name} sharded over {d} devices")


def _check_reads(source: Source) -> None:
    n, name = len(source), source.name
    at = np.random.default_rng(0).permutation(n)[: min(n, 10)]
    many = source.read(at)
    expect(
        set(many) == set(source.element_spec),
        f"{name}: read() gives fields {sorted(many)}, element_spec names "
        f"{sorted(source.element_spec)}",
    )
    for j, i in enumerate(at):
        alone = source.read(np.array([i]))
        for f, values in many.items():
            expect(_equal(values[j], alone[f][0]), f"{name}: read({list(at)}) row {j}, {f!r}")
    for bad in (n, -1):
        try:
            source.read(np.array([0, bad]))
        except IndexError as error:
            expect(name in str(error), f"{name}: the IndexError does not name the source")
        else:
            raise AssertionError(f"{name}: read([0, {bad}]) raised no IndexError")


def _check_pickling_and_threads(source: Source, threads: int) -> None:
    n, name = len(source), source.name
    rng = np.random.default_rng(1)
    parts = [rng.integers(0, n, size=min(n, 7)) for _ in range(4 * threads)]
    serial = [source.read(p) for p in parts]
    clone = pickle.loads(pickle.dumps(source))
    for p, want in zip(parts, serial, strict=True):
        got = clone.read(p)
        expect(all(_equal(want[f], got[f]) for f in want), f"{name}: a pickled copy reads other")
    with ThreadPoolExecutor(threads) as pool:
        concurrent = list(pool.map(source.read, parts))
    for want, got in zip(serial, concurrent, strict=True):
        expect(all(_equal(want[f], got[f]) for f in want), f"{name}: concurrent reads differ")


def _check_coverage(pipe: Pipeline, source: Source, n: int, compare: bool) -> None:
    orders = []
    for epoch in range(2):
        seen = []
        for batch in map(on_host, pipe.epoch()):
            index = batch["index"][batch["valid"]]
            seen += index.tolist()
            if compare and not pipe.operators:
                records = source.read(index)
                for f in set(batch) & set(records):
                    expect(
                        np.array_equal(batch[f][batch["valid"]], records[f]),
                        f"{source.name}: a batch's {f!r} is not its records'",
                    )
        expect(
            sorted(seen) == list(range(n)),
            f"{source.name}: epoch {epoch} did not give every record exactly once",
        )
        orders.append(seen)
    expect(n <= 2 or orders[0] != orders[1], f"{source.name}: two epochs in the same order")


def _per_record(pipe: Pipeline) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    for batch in map(on_host, pipe.epoch()):
        for row in np.flatnonzero(batch["valid"]):
            fields = sorted(f for f in batch if f not in ("index", "valid"))
            out[int(batch["index"][row])] = b"".join(batch[f][row].tobytes() for f in fields)
    return out


def _device_fields(source: Source) -> HostMap | None:
    """None if every field can go to the device; else a stage keeping the ones that can."""
    spec = source.element_spec
    kept = tuple(
        f for f, s in spec.items() if not isinstance(s, Ragged) and np.dtype(s.dtype) != object
    )
    if len(kept) == len(spec):
        return None
    return HostMap(_Keep(kept), workers=0)


class _Keep:
    """A host function keeping the fixed-shape numeric fields (and a marker if none)."""

    def __init__(self, fields: tuple[str, ...]):
        self.fields = fields
        self.__name__ = "keep_device_fields"

    def __call__(self, record: dict[str, Any], ctx: HostContext) -> dict[str, np.ndarray]:
        return {f: np.asarray(record[f]) for f in self.fields} or {"present": np.ones((), bool)}


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) and a.dtype != object:
        return bool(np.array_equal(a, b))
    if isinstance(a, np.ndarray | list | tuple) and not isinstance(a, bytes | str):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b) if not isinstance(a, np.ndarray) else bool(np.array_equal(a, b))
