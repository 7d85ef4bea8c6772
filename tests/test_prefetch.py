import threading
import time

import pytest

from feedax._prefetch import Prefetcher


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_prefetcher_keeps_order(depth):
    with Prefetcher(iter(range(20)), depth) as items:
        assert list(items) == list(range(20))


@pytest.mark.parametrize("depth", [0, 2])
def test_producer_error_reaches_the_consumer_after_earlier_items(depth):
    def produce():
        yield 1
        yield 2
        raise RuntimeError("record 3 is bad")

    got = []
    with (
        pytest.raises(RuntimeError, match="record 3 is bad"),
        Prefetcher(produce(), depth) as items,
    ):
        for item in items:
            got.append(item)
    assert got == [1, 2]


def test_closing_stops_an_endless_producer_without_hanging():
    def endless():
        i = 0
        while True:
            yield i
            i += 1

    before = threading.active_count()
    prefetcher = Prefetcher(endless(), 2)
    assert next(prefetcher) == 0
    start = time.monotonic()
    prefetcher.close()
    assert time.monotonic() - start < 5
    assert threading.active_count() == before


def test_interpreter_exits_cleanly_with_an_unfinished_iteration():
    import subprocess
    import sys

    script = (
        "import numpy as np, feedax as fx\n"
        "src = fx.ArraySource({'x': np.zeros((10000, 64), np.float32)})\n"
        "it = iter(fx.Pipeline(src, batch_size=8, prefetch=4))\n"
        "next(it)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
