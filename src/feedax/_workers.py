"""Running the host stage over batches: thread or process workers, bounded read-ahead."""

from __future__ import annotations

import collections
import concurrent.futures as cf
import contextlib
import functools
import itertools
import multiprocessing as mp
import os
import pickle
import tempfile
import threading
import time
import weakref
from collections.abc import Iterator, Mapping
from multiprocessing import shared_memory
from typing import Any, TypeVar

import jax
import numpy as np

from feedax._errors import HostStageError
from feedax._host import HostMap, HostRecord
from feedax._ray_pool import RayPool  # imports Ray only when a pool is made
from feedax._worker_side import OK, fill, fill_shared, init_worker, views

T = TypeVar("T")
Spec = Mapping[str, jax.ShapeDtypeStruct]


def _chunks(n: int, workers: int) -> list[tuple[int, int]]:
    """Contiguous [lo, hi) ranges: two per worker, so a slow record delays less."""
    parts = max(1, min(n, 2 * workers))
    bounds = np.linspace(0, n, parts + 1).astype(int)
    return [(int(a), int(b)) for a, b in itertools.pairwise(bounds) if b > a]


_MAPPING: weakref.WeakKeyDictionary[HostExecutor, threading.Thread] = weakref.WeakKeyDictionary()


def stop_host_work(thread: threading.Thread) -> None:
    """Stops the process workers of the host stages ``thread`` is waiting on (it is stuck).

    Their results then fail at once, so the thread ends; workers of thread pools cannot be
    stopped (Python threads cannot be killed).
    """
    for executor, owner in list(_MAPPING.items()):
        if owner is thread:
            executor.abandon()


class HostExecutor:
    """Maps a :class:`HostMap` over batches of record indices, ``read_ahead`` batches ahead.

    Results come back in submission order whatever the worker count. An error in a worker
    (an exception, a bad output shape, a dead process) is raised in the consumer with the
    record index, and never hangs the pipeline.
    """

    def __init__(
        self,
        stage: HostMap,
        source: Any,
        spec: Spec,
        *,
        read_ahead: int,
        skip: bool = False,
        keep: bool = False,
    ):
        self.stage = stage
        self.source = source
        self.skip = skip
        self.keep = keep
        self.spec = dict(spec)
        if skip:
            self.spec[OK] = jax.ShapeDtypeStruct((), np.dtype(bool))
        self.read_ahead = max(1, read_ahead)
        self.training = not stage.deterministic
        self.seed = stage.seed()
        self._pool: cf.Executor | None = None
        self._started: Any = None  # process workers that finished starting
        self._payload: str | None = None  # the file process workers load their work from
        self._shm: list[shared_memory.SharedMemory] = []
        self.restarts = 0  # process pools replaced after a record killed a worker (skip)
        self._stopped = False  # abandon() was called: no restart until the next map

    def _start(self) -> None:
        """Starts the workers, unless they run already (kept from an earlier ``map``)."""
        stage, source = self.stage, self.source
        if self._pool is not None:
            return
        if stage.workers and stage.backend == "thread":
            self._pool = cf.ThreadPoolExecutor(stage.workers, thread_name_prefix="feedax-host")
        elif stage.workers and stage.backend == "ray":
            self._pool = RayPool(source, stage.fn, self.spec, stage.name)
        elif stage.workers:
            self._started = mp.get_context("spawn").Value("i", 0)
            # The source and function travel in a file, not in the spawn payload: CPython
            # writes that payload while holding the pipe's read end too, so a worker that
            # dies starting (a script without a __main__ guard) would block a large one
            # forever.
            with tempfile.NamedTemporaryFile("wb", prefix="feedax-", delete=False) as file:
                pickle.dump((source, stage.fn, self.spec), file)
            self._payload = file.name
            self._pool = self._processes(stage.workers, self._started)

    def _processes(self, workers: int, started: Any) -> cf.ProcessPoolExecutor:
        """Spawned workers that load the payload file and count themselves in ``started``."""
        assert self._payload is not None
        return cf.ProcessPoolExecutor(
            workers,
            mp_context=mp.get_context("spawn"),
            initializer=init_worker,
            initargs=(self._payload, started, os.getpid()),
        )

    def _alloc(self, n: int) -> tuple[dict[str, np.ndarray] | None, Any]:
        """Output arrays for ``n`` rows, or a shared-memory block for process workers."""
        if not isinstance(self._pool, cf.ProcessPoolExecutor):
            return {k: np.empty((n, *s.shape), s.dtype) for k, s in self.spec.items()}, None
        layout, offset = [], 0
        for field, s in self.spec.items():
            size = n * int(np.prod(s.shape, dtype=np.int64)) * np.dtype(s.dtype).itemsize
            layout.append((field, (n, *s.shape), np.dtype(s.dtype).str, offset))
            offset += size
        shm = shared_memory.SharedMemory(create=True, size=max(offset, 1))
        self._shm.append(shm)
        return None, (shm, layout)

    def _submit(self, indices: np.ndarray, epoch: int) -> tuple[Any, Any, list[Any]]:
        out, shared = self._alloc(len(indices))
        args = (indices, epoch, self.training, self.seed, self.skip)
        pieces = _chunks(len(indices), self.stage.workers or 1)
        if self._pool is None:
            assert out is not None  # only process workers use shared memory
            # Without workers nothing runs ahead: the batch is filled when collected, so an
            # error in a later batch never hides the batches before it.
            work = (self.source, self.stage.fn, self.spec, *args)
            return out, shared, [functools.partial(fill, out, range(0, len(indices)), *work)]
        if out is not None and isinstance(self._pool, RayPool):
            futures = [self._pool.fill(out, range(a, b), *args) for a, b in pieces]
        elif out is not None:
            work = (self.source, self.stage.fn, self.spec, *args)
            futures = [self._pool.submit(fill, out, range(a, b), *work) for a, b in pieces]
        else:
            shm, layout = shared  # process workers write into shared memory
            try:
                futures = [
                    self._pool.submit(fill_shared, shm.name, layout, range(a, b), *args)
                    for a, b in pieces
                ]
            except (OSError, cf.process.BrokenProcessPool) as error:
                if not self.skip or self._started is None or not self._started.value:
                    raise self._died(indices) from error  # the workers died starting
                # A worker died on an earlier batch: that batch's collection restarts the
                # pool and submits this one again (the skip policy's recovery).
                self._release(shm)
                broken: cf.Future[None] = cf.Future()
                broken.set_exception(cf.process.BrokenProcessPool(str(error)))
                return None, None, [broken]
        return out, shared, futures

    def _died(self, indices: np.ndarray, epoch: int | None = None) -> HostStageError:
        """The error for a worker process that died, naming the record that killed it."""
        if self._started is not None and self._started.value == 0:
            return HostStageError(
                f"host stage {self.stage.name!r}: the worker processes died while starting, "
                "before any record was processed. With backend='process' each worker starts "
                "a fresh Python that imports your main script; a script that builds and runs "
                "the pipeline at its top level then runs again in every worker. Put that code "
                'under `if __name__ == "__main__":` (see the worker\'s traceback above), or '
                "use backend='thread'."
            )
        killer = None if epoch is None else self._killer(indices, epoch)
        if killer is not None:
            return HostStageError(
                f"host stage {self.stage.name!r}: a worker process died processing record "
                f"index {killer} of source {self.source.name!r} (epoch {epoch}; found by "
                "running the batch's records one by one in a fresh worker). Check the "
                "function on that record for crashes (or memory exhaustion)."
            )
        return HostStageError(
            f"host stage {self.stage.name!r}: a worker process died while processing "
            f"records {indices.tolist()} of source {self.source.name!r} (a fresh worker "
            "ran each of them alone without dying: memory exhaustion?). Check the function "
            "for crashes; try backend='thread'."
        )

    def _killer(self, indices: np.ndarray, epoch: int) -> int | None:
        """The record whose processing kills a fresh worker, tried one by one; None if none."""
        if self._payload is None:
            return None
        alone = self._each_alone(indices, epoch)
        return next((int(indices[j]) for j, out in alone if out is None), None)

    def _each_alone(
        self, indices: np.ndarray, epoch: int
    ) -> Iterator[tuple[int, dict[str, np.ndarray] | None]]:
        """Runs each record alone in a one-worker pool (a fresh one after a death).

        Yields ``(row, the record's output)``: ``None`` for a record that killed its worker,
        ``{}`` for one that failed in an ordinary way (not what kills a worker).
        """
        pool: cf.ProcessPoolExecutor | None = None
        try:
            for j, index in enumerate(indices.tolist()):
                if pool is None:
                    pool = self._processes(1, mp.get_context("spawn").Value("i", 0))
                _, (shm, layout) = self._alloc(1)
                args = (np.array([index]), epoch, self.training, self.seed, self.skip)
                try:
                    job = pool.submit(fill_shared, shm.name, layout, range(1), *args)
                    job.result(timeout=self.stage.timeout)
                    block = views(shm, layout)
                    out = {field: view[0].copy() for field, view in block.items()}
                    del block
                except cf.process.BrokenProcessPool:  # this record kills its worker
                    pool.shutdown(wait=False, cancel_futures=True)
                    pool, out = None, None
                except cf.TimeoutError as error:
                    _kill(pool)
                    pool = None
                    raise self._stalled(indices[j : j + 1], epoch) from error
                except Exception:  # an ordinary failure
                    out = {}
                finally:
                    self._release(shm)
                yield j, out
        finally:
            if pool is not None:
                pool.shutdown(wait=True)

    def _collect(
        self, indices: np.ndarray, epoch: int, submitted: tuple[Any, Any, list[Any]]
    ) -> HostRecord:
        out, shared, futures = submitted
        limit = self.stage.timeout
        self._await_start(futures)  # the time limit is for records, not for spawning
        deadline = None if limit is None else time.monotonic() + limit
        try:
            for future in futures:
                if isinstance(future, functools.partial):
                    future()
                    continue
                left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
                future.result(timeout=left)
        except cf.process.BrokenProcessPool as error:
            if self._stopped:
                raise HostStageError(
                    f"host stage {self.stage.name!r}: its workers were stopped (the iteration "
                    f"was closed while records {indices.tolist()} were being processed)."
                ) from error
            if not self.skip or self._payload is None:
                raise self._died(indices, epoch) from error
            # Under the skip policy a record that kills its worker is one more bad record:
            # run the batch's records alone to find it, then carry on with fresh workers.
            if shared is not None:
                self._release(shared[0])
            self._restart()
            return self._one_by_one(indices, epoch)
        except cf.TimeoutError as error:
            self.abandon()
            raise self._stalled(indices, epoch) from error
        finally:
            for future in futures:
                if isinstance(future, cf.Future):
                    future.cancel()
        if shared is not None:
            shm, layout = shared
            block = views(shm, layout)
            out = {k: v.copy() for k, v in block.items()}  # the block is freed: keep no view
            del block
            self._release(shm)
        return out

    def _stalled(self, indices: np.ndarray, epoch: int) -> HostStageError:
        """The error for records whose host work ran past the stage's time limit."""
        return HostStageError(
            f"host stage {self.stage.name!r} took more than {self.stage.timeout:g} s on "
            f"records {indices.tolist()} of source {self.source.name!r} (epoch {epoch}), so "
            "the workers were stopped. Find the record that stalls (a read, a decoder), or "
            "raise HostMap(timeout=...) if such batches are expected."
        )

    def _await_start(self, futures: list[Any], most: float = 300.0) -> None:
        """Waits until the process workers have started (or a job ended: they died)."""
        if self._started is None:
            return
        # Workers are spawned as jobs arrive: as many as this batch's jobs need.
        needed = min(self.stage.workers, sum(isinstance(f, cf.Future) for f in futures))
        until = time.monotonic() + most
        while self._started.value < needed and time.monotonic() < until:
            if any(isinstance(f, cf.Future) and f.done() for f in futures):
                return
            time.sleep(0.01)

    def _restart(self) -> None:
        """Replaces a broken process pool with fresh workers (same payload)."""
        broken, self._pool = self._pool, None
        if broken is not None:
            broken.shutdown(wait=False, cancel_futures=True)
        self._started = mp.get_context("spawn").Value("i", 0)
        self._pool = self._processes(self.stage.workers, self._started)
        self.restarts += 1

    def _one_by_one(self, indices: np.ndarray, epoch: int) -> HostRecord:
        """The batch's records each run alone in a worker; one that kills it is not OK."""
        out = {k: np.zeros((len(indices), *s.shape), s.dtype) for k, s in self.spec.items()}
        for j, record in self._each_alone(indices, epoch):
            for field, value in (record or {}).items():  # OK stays False without output
                out[field][j] = value
        return out

    def _release(self, shm: shared_memory.SharedMemory) -> None:
        self._shm.remove(shm)
        shm.close()
        shm.unlink()

    def map(self, items: Iterator[tuple[T, np.ndarray, int]]) -> Iterator[tuple[T, HostRecord]]:
        """Yields ``(key, batch)`` for each ``(key, indices, epoch)``, in order.

        With ``keep`` the workers outlive the call (the next ``map``, say the next epoch,
        reuses them) unless it ends in an error; otherwise they stop with it.
        """
        self.training = not self.stage.deterministic  # the mode of this iteration
        self._stopped = False
        self._start()
        _MAPPING[self] = threading.current_thread()
        pending: collections.deque[tuple[T, np.ndarray, int, Any]] = collections.deque()
        failed = True
        try:
            for key, indices, epoch in items:
                pending.append((key, indices, epoch, self._submit(indices, epoch)))
                if len(pending) >= self.read_ahead:
                    yield self._next(pending)
            while pending:
                yield self._next(pending)
            failed = False
        except GeneratorExit:  # the consumer stopped early (a finished epoch, a break)
            failed = False
            raise
        finally:
            for _, _, _, (_, shared, futures) in pending:
                for future in futures:
                    if isinstance(future, cf.Future):
                        future.cancel()
                        if self._pool is not None:  # not stopped for a stuck record
                            with contextlib.suppress(Exception):  # its error is not this one's
                                future.result()  # a running one finishes before its memory goes
                if shared is not None and shared[0] in self._shm:
                    self._release(shared[0])  # only this call's blocks
            _MAPPING.pop(self, None)
            if failed or not self.keep:
                self.close()

    def _next(self, pending: collections.deque[Any]) -> tuple[Any, HostRecord]:
        """Collects the oldest batch; after a pool restart, resubmits the ones behind it."""
        key, indices, epoch, submitted = pending.popleft()
        restarts = self.restarts
        out = self._collect(indices, epoch, submitted)
        if self.restarts != restarts:  # they went to the broken pool: submit them again
            for _, _, _, (_, shared, _) in pending:
                if shared is not None and shared[0] in self._shm:
                    self._release(shared[0])
            for i, (k, idx, e, _) in enumerate(list(pending)):
                pending[i] = (k, idx, e, self._submit(idx, e))
        return key, out

    def abandon(self) -> None:
        """Stops workers stuck in a record: processes are killed, threads left behind."""
        self._stopped = True
        pool, self._pool = self._pool, None
        if pool is not None:
            _kill(pool)

    def close(self) -> None:
        """Stops the workers and frees shared memory."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._payload is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._payload)
            self._payload = None
        for shm in list(self._shm):
            self._release(shm)


def _kill(pool: cf.Executor) -> None:
    """Shuts ``pool`` down without waiting; process workers are killed first (threads cannot be)."""
    if isinstance(pool, cf.ProcessPoolExecutor):
        for process in list(getattr(pool, "_processes", {}).values()):
            with contextlib.suppress(Exception):
                process.kill()
    pool.shutdown(wait=False, cancel_futures=True)
