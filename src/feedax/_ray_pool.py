"""Host-stage work as Ray tasks: ``HostMap(fn, backend="ray")``.

feedax still decides which records form which batch, in which order; Ray only runs
each chunk of a batch somewhere in its cluster and hands the rows back. The source and
function are put in Ray's object store once, so a task carries only its record indices.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import threading
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from feedax._errors import HostStageError
from feedax._worker_side import fill

Spec = Mapping[str, jax.ShapeDtypeStruct]

RETRIES = 2
"""Times Ray runs a chunk again after its worker process died (then the batch fails)."""


def _ray() -> Any:
    try:
        import ray
    except ImportError as error:
        raise ImportError("HostMap(backend='ray') needs Ray: pip install 'feedax[ray]'.") from error
    return ray


def _fill_task(payload: tuple[Any, Any, Spec], n: int, *args: Any) -> dict[str, np.ndarray]:
    """Runs in a Ray worker: the rows of ``n`` records, as ``fill`` makes them."""
    source, fn, spec = payload
    out = {k: np.empty((n, *s.shape), s.dtype) for k, s in spec.items()}
    fill(out, range(n), source, fn, spec, *args)
    return out


_OWNER: list[threading.Thread] = []


def _start_local(ray: Any) -> None:
    """``ray.init()`` from a thread that lives as long as the program.

    Ray's processes (GCS, raylet) die with the thread that started them (Linux's
    parent-death signal follows the thread). A pipeline builds its host stage in its
    read-ahead thread, which ends with the iteration: Ray would then die with it, and the
    program would be stopped a minute later. So a daemon thread owns the start.
    """
    started: list[BaseException | None] = []
    done = threading.Event()

    def own() -> None:
        try:
            ray.init(log_to_driver=False, include_dashboard=False)
            started.append(None)
        except BaseException as error:  # re-raised in the caller
            started.append(error)
        done.set()
        threading.Event().wait()  # never set: the thread lives until the program ends

    owner = threading.Thread(target=own, name="feedax-ray-owner", daemon=True)
    owner.start()
    done.wait()
    if started[0] is not None:
        raise started[0]
    _OWNER.append(owner)


class RayPool(cf.Executor):
    """Submits chunks of a batch as Ray tasks; each future is done once its rows are in ``out``.

    Ray is started here (``ray.init()``: the cluster of ``RAY_ADDRESS``, else a local one,
    from a thread that outlives the pipeline) unless the program started it already,
    e.g. ``ray.init(address=...)``.
    """

    def __init__(self, source: Any, fn: Any, spec: Spec, name: str):
        ray = _ray()
        if not ray.is_initialized():
            _start_local(ray)
        self._ray, self._name, self._source = ray, name, getattr(source, "name", "source")
        self._payload = ray.put((source, fn, dict(spec)))
        self._task = ray.remote(max_retries=RETRIES, retry_exceptions=False)(_fill_task)
        self._pending: dict[Any, None] = {}

    def fill(self, out: dict[str, np.ndarray], rows: range, *args: Any) -> cf.Future[None]:
        """Fills ``out[field][rows]`` with the records ``args[0][rows]`` in a Ray task."""
        indices, rest = args[0], args[1:]
        chunk = indices[rows.start : rows.stop]
        ref = self._task.remote(self._payload, len(chunk), chunk, *rest)
        self._pending[ref] = None
        done: cf.Future[None] = cf.Future()
        done.set_running_or_notify_cancel()

        def arrived(result: cf.Future[Any]) -> None:
            self._pending.pop(ref, None)
            try:
                block = result.result()
            except Exception as error:
                done.set_exception(self._explain(error, chunk))
                return
            for field, values in block.items():
                out[field][rows.start : rows.stop] = values
            done.set_result(None)

        ref.future().add_done_callback(arrived)
        return done

    def _explain(self, error: BaseException, chunk: np.ndarray) -> BaseException:
        """The error of a task: the host function's own, or a lost task named by its records."""
        cause = getattr(error, "cause", None)
        if isinstance(cause, Exception):  # a RayTaskError wraps what the function raised
            return cause
        if isinstance(error, self._ray.exceptions.TaskCancelledError | cf.CancelledError):
            return HostStageError(
                f"host stage {self._name!r}: its Ray tasks were cancelled (the iteration was "
                f"closed while records {chunk.tolist()} were being processed)."
            )
        return HostStageError(
            f"host stage {self._name!r}: the Ray task processing records {chunk.tolist()} of "
            f"source {self._source!r} was lost ({type(error).__name__}: {error}) after "
            f"{RETRIES} retries. A worker died on them (a crash, memory exhaustion) or the "
            "node left the cluster; check the function on those records."
        )

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Cancels the tasks still pending (their workers are stopped when stuck)."""
        for ref in list(self._pending):
            with contextlib.suppress(Exception):
                self._ray.cancel(ref, force=True)
        self._pending.clear()
