"""A bounded read-ahead: run an iterator in a background thread, ``depth`` items ahead."""

from __future__ import annotations

import atexit
import queue
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar, cast

T = TypeVar("T")

_DONE = object()
_LIVE: weakref.WeakSet[Prefetcher[object]] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    """Stops producer threads still running at exit (an iteration left unfinished).

    A daemon thread killed while inside JAX (a transfer) aborts the interpreter.
    """
    for prefetcher in list(_LIVE):
        prefetcher.close()


class Prefetcher(Generic[T]):
    """Iterates ``items`` in a daemon thread, keeping at most ``depth`` results ready.

    An exception raised by ``items`` is re-raised in the consumer, in order, after the
    items produced before it. Closing (or leaving the ``with`` block) stops the thread
    promptly, so an abandoned iteration never hangs. With ``depth == 0`` the items are
    produced synchronously in the consumer's thread.

    Example:
      >>> with Prefetcher(iter(range(3)), depth=2) as items:
      ...     list(items)
      [0, 1, 2]
    """

    def __init__(
        self,
        items: Iterator[T],
        depth: int,
        on_stuck: Callable[[threading.Thread], None] | None = None,
    ):
        self._items = items
        self._depth = depth
        self._on_stuck = on_stuck
        self._stop = threading.Event()
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max(depth, 1))
        self._thread: threading.Thread | None = None
        if depth > 0:
            self._thread = threading.Thread(target=self._produce, daemon=True, name="feedax")
            self._thread.start()
            _LIVE.add(cast(Prefetcher[object], self))

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            for item in self._items:
                if not self._put((item, None)):
                    return
        except BaseException as error:  # forwarded to the consumer, re-raised there
            self._put((None, error))
            return
        finally:
            self._close_items()  # in this thread: the generator may be running only here
        self._put((_DONE, None))

    def _close_items(self) -> None:
        close = getattr(self._items, "close", None)
        if close is not None:
            close()

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        if self._thread is None:
            return next(self._items)
        item, error = cast(tuple[Any, BaseException | None], self._queue.get())
        if error is not None:
            self.close()
            raise error
        if item is _DONE:
            self.close()
            raise StopIteration
        return cast(T, item)

    def close(self, wait: float = 10.0) -> None:
        """Stops the producer thread and drops what it had read ahead.

        Waits at most ``wait`` seconds for the producer. One still running then is stuck
        (inside a host function, say): ``on_stuck(thread)`` is called (the pipeline stops
        its process workers, which frees the thread), and after at most ``wait`` more
        seconds the thread is left behind (a daemon), so Ctrl-C or an error still ends
        the iteration.
        """
        self._stop.set()
        if self._thread is None:
            self._close_items()
        elif (
            self._thread is not threading.current_thread()
            and not self._drain(wait)
            and self._on_stuck is not None
        ):
            self._on_stuck(self._thread)
            self._drain(wait)

    def _drain(self, wait: float) -> bool:
        """Empties the queue until the producer ends or ``wait`` passes; whether it ended."""
        assert self._thread is not None
        deadline = time.monotonic() + wait
        while self._thread.is_alive() and time.monotonic() < deadline:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                self._thread.join(timeout=0.05)
        return not self._thread.is_alive()

    def __enter__(self) -> Prefetcher[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
