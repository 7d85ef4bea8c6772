"""ShardedStream: files read forward in lanes; every record once; each process its lanes."""

import numpy as np
import pytest
from helpers import check_resume_at_steps, first_batches

import feedax as fx


def shards(counts, log=None):
    def open_file(file, start):
        if log is not None:
            log.append((file, start))
        for i in range(start, counts[file]):
            yield {"x": np.int32(file * 1000 + i), "v": np.full(2, i, np.float32)}

    return open_file


@pytest.mark.parametrize(
    ("counts", "lanes", "batch"),
    [
        ([5, 9, 3, 7], 2, 4),
        ([6] * 8, 4, 8),
        ([1, 0, 12, 4, 4], 3, 6),
        ([10], 1, 3),
        ([2, 30], 2, 2),
    ],
)
def test_every_record_once_per_epoch_and_lanes_own_their_rows(counts, lanes, batch):
    stream = fx.ShardedStream(
        range(len(counts)), shards(counts), counts=counts, lanes=lanes, batch_size=batch
    )
    n = sum(counts)
    assert len(stream) == n
    files, positions = stream.locate(np.arange(n))
    pairs = set(zip(files.tolist(), positions.tolist(), strict=True))
    assert pairs == {(f, i) for f, c in enumerate(counts) for i in range(c)}  # a bijection
    layout = stream._layout
    per = batch // lanes
    for q in range(layout.head):  # before the shortest lane ends: rows of a lane, its files
        lane = (q % batch) // per
        assert files[q] in layout.files[lane]
    pipe = fx.Pipeline(stream, batch_size=batch, drop_remainder=False)
    seen = np.concatenate([np.asarray(b["x"])[np.asarray(b["valid"])] for b in pipe.epoch()])
    assert sorted(seen.tolist()) == sorted(
        f * 1000 + i for f, c in enumerate(counts) for i in range(c)
    )


def test_reads_go_forward_and_a_process_opens_only_its_lanes_files():
    counts = [8] * 8
    log = []
    stream = fx.ShardedStream(range(8), shards(counts, log), counts=counts, lanes=4, batch_size=8)
    log.clear()
    # Process 1 of 2 holds rows [4, 8) of each batch: lanes 2 and 3.
    for step in range(8):
        stream.read(np.arange(step * 8 + 4, step * 8 + 8))
    opened = {f for f, _ in log}
    assert opened == set(stream._layout.files[2].tolist()) | set(stream._layout.files[3].tolist())
    assert len(log) == len(opened)  # each file opened once: every read went forward


def test_resume_is_exact_and_reopens_at_the_record():
    counts = [7, 5, 9, 6]
    log = []
    make = lambda: fx.Pipeline(  # noqa: E731
        fx.ShardedStream(range(4), shards(counts, log), counts=counts, lanes=2, batch_size=4),
        batch_size=4,
    )
    check_resume_at_steps(make, range(0, 6, 2))
    assert any(start > 0 for _, start in log)  # resumed readers start where they left off


def test_counts_are_counted_when_not_given_and_a_short_file_is_named():
    stream = fx.ShardedStream(range(3), shards([4, 2, 3]), lanes=1, batch_size=3)
    assert len(stream) == 9
    liar = fx.ShardedStream(range(2), shards([4, 2]), counts=[4, 3], lanes=1, batch_size=1)
    with pytest.raises(fx.SourceError, match=r"file 1 ended before its record 2.*Fix the counts"):
        liar.read(np.arange(7))


def test_a_stream_that_ignores_start_is_skipped_ahead_by_feedax():
    def from_the_top(file, start):
        yield from ({"x": np.int32(file * 10 + i)} for i in range(5))

    stream = fx.ShardedStream(
        range(2), from_the_top, counts=[5, 5], lanes=2, batch_size=2, skips=False
    )
    assert stream.read(np.array([6, 7]))["x"].tolist() == [3, 13]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(shuffle=True), "shuffle must be False"),
        (dict(batch_size=8), "lays its lanes out for batch_size=4"),
    ],
)
def test_pipeline_settings_it_cannot_serve_are_refused(kwargs, match):
    stream = fx.ShardedStream(range(2), shards([4, 4]), counts=[4, 4], lanes=2, batch_size=4)
    with pytest.raises(fx.PipelineError, match=match):
        fx.Pipeline(stream, **{"batch_size": 4, **kwargs})


def test_bad_arguments_are_named():
    with pytest.raises(fx.SourceError, match="lanes must be an int >= 1 dividing batch_size=4"):
        fx.ShardedStream(range(2), shards([4, 4]), counts=[4, 4], lanes=3, batch_size=4)
    with pytest.raises(fx.SourceError, match="one record count >= 0 per file"):
        fx.ShardedStream(range(2), shards([4, 4]), counts=[4], lanes=1, batch_size=4)


def test_first_batches_follow_the_lanes():
    counts = [3, 3]
    pipe = fx.Pipeline(
        fx.ShardedStream(range(2), shards(counts), counts=counts, lanes=2, batch_size=2),
        batch_size=2,
    )
    assert [b["x"].tolist() for b in first_batches(pipe, 3)] == [[0, 1000], [1, 1001], [2, 1002]]
