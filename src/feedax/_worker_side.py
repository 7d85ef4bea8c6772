"""What runs inside a host-stage worker: reading and transforming records into output arrays.

Process workers load their source and function once (``init_worker``), watch their
parent, and fill blocks of shared memory (``fill_shared``); thread workers and the
inline path call ``fill`` directly.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import threading
import time
from collections.abc import Mapping
from multiprocessing import shared_memory
from typing import Any

import jax
import numpy as np

from feedax._errors import HostStageError, SourceError
from feedax._host import HostContext, call_host_fn, check_host_output

Spec = Mapping[str, jax.ShapeDtypeStruct]


def fill(
    out: dict[str, np.ndarray],
    rows: range,
    source: Any,
    fn: Any,
    spec: Spec,
    indices: np.ndarray,
    epoch: int,
    training: bool,
    seed: int,
    skip: bool,
) -> None:
    """Reads and transforms the records ``indices[rows]`` into ``out[field][rows]``.

    With ``skip``, a record that fails to read or transform is marked ``out[OK][row] =
    False`` instead of raising.
    """
    chunk = indices[rows.start : rows.stop]
    records = read_checked(source, chunk) if skip else read_or_explain(source, chunk)
    name = getattr(fn, "__qualname__", type(fn).__name__)
    spec = {k: v for k, v in spec.items() if k != OK}
    for j, row in enumerate(rows):
        index = int(indices[row])
        if skip and not records[OK][j]:
            out[OK][row] = False
            continue
        record = {k: v[j] for k, v in records.items() if k != OK}
        ctx = HostContext(epoch, index, training, seed)
        try:
            result = call_host_fn(fn, record, ctx, source_name=source.name)
            check_host_output(result, spec, index=index, stage=name, source=source.name)
        except HostStageError:  # the skip policy: mark it, the batch is refilled later
            if not skip:
                raise
            out[OK][row] = False
            continue
        for field, value in result.items():
            out[field][row] = value
        if skip:
            out[OK][row] = True


OK = "__ok"
"""The field marking records read and transformed without error (skip policy)."""


def read_or_explain(source: Any, indices: np.ndarray) -> dict[str, np.ndarray]:
    """``source.read(indices)``; a failure is raised again naming the bad record."""
    try:
        return source.read(indices)
    except Exception as error:
        if isinstance(error, IndexError):
            raise  # out-of-range indices: the source's message names them already
        for index in indices:
            try:
                source.read(np.array([index]))
            except Exception as cause:
                if isinstance(cause, SourceError):
                    raise  # the source named the record and the cause already
                raise SourceError(
                    f"{source.name}: reading record index {int(index)} failed: "
                    f"{type(cause).__name__}: {cause}. Fix or remove the record, or pass "
                    "on_error='skip' to the Pipeline to skip bad records."
                ) from cause
        raise  # only the batch read fails: report it as it is


def read_checked(source: Any, indices: np.ndarray) -> dict[str, np.ndarray]:
    """``source.read(indices)`` plus an ``OK`` mask: a failing read is retried per record."""
    try:
        records = source.read(indices)
        records[OK] = np.ones(len(indices), bool)
        return records
    except Exception:  # isolate the bad records; each is retried alone below
        pass
    rows: list[dict[str, Any] | None] = []
    for index in indices:
        try:
            rows.append({k: v[0] for k, v in source.read(np.array([index])).items()})
        except Exception:
            rows.append(None)
    good = next((r for r in rows if r is not None), None)
    if good is None:
        return {OK: np.zeros(len(indices), bool)}
    filled = [good if r is None else r for r in rows]
    out = {k: np.stack([r[k] for r in filled]) for k in good}
    out[OK] = np.array([r is not None for r in rows])
    return out


def views(shm: shared_memory.SharedMemory, layout: list[Any]) -> dict[str, np.ndarray]:
    return {
        field: np.ndarray(shape, np.dtype(dtype), buffer=shm.buf, offset=offset)
        for field, shape, dtype, offset in layout
    }


_WORKER: dict[str, Any] = {}


def init_worker(payload: str, started: Any, parent: int) -> None:
    exit_with_parent(parent, payload)
    with open(payload, "rb") as file:
        source, fn, spec = pickle.load(file)
    _WORKER.update(source=source, fn=fn, spec=spec, shm={})
    with started.get_lock():
        started.value += 1


def exit_with_parent(parent: int, payload: str, every: float = 0.5) -> None:
    """Ends this worker once its parent is gone (killed by OOM or preemption, say).

    A parent that dies without cleaning up leaves its workers to the init process; each
    worker notices within ``every`` seconds, removes the payload file the parent would
    have removed, and exits, so restarts pile up neither processes nor files.
    (The kernel's parent-death signal is not used: it fires when the *thread* that
    started the worker ends, which a read-ahead thread does at every epoch.)
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        with contextlib.suppress(OSError):  # another worker may have removed it first
            os.unlink(payload)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="feedax-parent-watch").start()


def fill_shared(name: str, layout: list[Any], rows: range, indices: np.ndarray, *args: Any) -> None:
    cache = _WORKER["shm"]
    if name not in cache:
        while len(cache) >= 4:  # blocks in flight; older ones were freed by the parent
            cache.pop(next(iter(cache))).close()
        # Spawned workers share the parent's resource tracker, and the parent unlinks the
        # block once it has copied it out, so the worker only attaches and closes.
        cache[name] = shared_memory.SharedMemory(name=name)
    out = views(cache[name], layout)
    fill(out, rows, _WORKER["source"], _WORKER["fn"], _WORKER["spec"], indices, *args)
