"""The skip policy: nothing lost, nothing silent, the same stream in every run."""

import numpy as np
import pytest
from flax import nnx
from helpers import host
from host_fns import BAD, always_fails, fails_on_several, fails_on_the_first_two, raw_records

import feedax as fx

N = 40


def pipeline(*, workers=2, backend="thread", prefetch=2, drop_remainder=False, limit=0.1, bs=8):
    return fx.Pipeline(
        fx.ArraySource(raw_records(N), name="raw"),
        [fx.RandomFlip(rngs=nnx.Rngs(augment=6))],
        batch_size=bs,
        shuffle=True,
        seed=3,
        drop_remainder=drop_remainder,
        host=fx.HostMap(fails_on_several, workers=workers, backend=backend),
        prefetch=prefetch,
        on_error="skip",
        max_skip_fraction=limit,
    )


def epoch_batches(pipe):
    return [host(b) for b in pipe.epoch()]


def test_bad_records_are_skipped_batches_stay_full_and_every_good_record_comes_once():
    pipe = pipeline()
    batches = epoch_batches(pipe)
    assert all(b["image"].shape == (8, 4, 4, 1) for b in batches)
    ids = np.concatenate([b["id"][b["valid"]] for b in batches])
    assert sorted(ids.tolist()) == sorted(set(range(N)) - set(BAD))
    assert all(b["valid"].all() for b in batches[:-1])  # only the last one is padded
    assert sorted(pipe.skipped_indices) == sorted(BAD)
    assert pipe.position == (1, 0)
    # The next epoch skips the same records again, without counting them twice.
    ids = np.concatenate([b["id"][b["valid"]] for b in epoch_batches(pipe)])
    assert sorted(ids.tolist()) == sorted(set(range(N)) - set(BAD))
    assert sorted(pipe.skipped_indices) == sorted(BAD)


@pytest.mark.parametrize(
    ("workers", "backend", "prefetch"), [(0, "thread", 0), (3, "thread", 4), (2, "process", 1)]
)
def test_the_skipping_stream_is_the_same_for_any_worker_count(workers, backend, prefetch):
    expected = epoch_batches(pipeline(workers=1))
    got = epoch_batches(pipeline(workers=workers, backend=backend, prefetch=prefetch))
    for e, g in zip(expected, got, strict=True):
        for k in e:
            np.testing.assert_array_equal(e[k], g[k])


def test_drop_remainder_with_skips():
    batches = epoch_batches(pipeline(drop_remainder=True))
    assert len(batches) == (N - len(BAD)) // 8
    ids = np.concatenate([b["id"] for b in batches])
    assert len(set(ids.tolist())) == len(ids) and not set(ids.tolist()) & set(BAD)


def test_resume_at_every_step_keeps_the_stream_and_the_skip_list():
    reference = pipeline(workers=0)
    it = iter(reference)
    expected = [host(next(it)) for _ in range(12)]
    for k in range(12):
        pipe = pipeline(workers=0)
        it = iter(pipe)
        for _ in range(k):
            next(it)
        saved = nnx.clone(nnx.state(pipe))
        fresh = pipeline(workers=2)
        nnx.update(fresh, saved)
        assert fresh.skipped_indices == pipe.skipped_indices
        it = iter(fresh)
        for e in expected[k:]:
            g = host(next(it))
            np.testing.assert_array_equal(e["id"], g["id"])
            np.testing.assert_array_equal(e["image"], g["image"])


def test_too_many_bad_records_raise_with_the_indices():
    pipe = pipeline(limit=0.05)  # 2 of 40 allowed, 3 are bad
    with pytest.raises(
        fx.SourceError,
        match=r"raw: 3 of 40 records of epoch 0 are bad, more than "
        r"max_skip_fraction=0.05 allows \(2\)",
    ):
        epoch_batches(pipe)


class _FlakySource(fx.Source):
    """A source whose read fails for some indices, like a truncated file."""

    def __init__(self, n, bad):
        self.name = "flaky"
        self.n = n
        self.bad = frozenset(bad)

    def __len__(self):
        return self.n

    @property
    def element_spec(self):
        import jax

        return {"id": jax.ShapeDtypeStruct((), np.int32)}

    def read(self, indices):
        if self.bad & set(indices.tolist()):
            raise OSError(f"truncated record in {sorted(self.bad & set(indices.tolist()))}")
        return {"id": indices.astype(np.int32)}


def test_failed_reads_without_a_host_stage_are_skipped_too():
    pipe = fx.Pipeline(
        _FlakySource(30, {4, 5, 17}),
        batch_size=6,
        on_error="skip",
        max_skip_fraction=0.2,
        drop_remainder=False,
    )
    ids = np.concatenate([np.asarray(b["id"])[np.asarray(b["valid"])] for b in pipe.epoch()])
    assert sorted(ids.tolist()) == sorted(set(range(30)) - {4, 5, 17})
    assert sorted(pipe.skipped_indices) == [4, 5, 17]


def test_under_raise_a_failed_read_names_the_error():
    pipe = fx.Pipeline(_FlakySource(30, {4}), batch_size=6)
    with pytest.raises(
        fx.SourceError,
        match=r"flaky: reading record index 4 failed: OSError: "
        r"truncated record in \[4\]\. .*on_error='skip'",
    ):
        list(pipe.epoch())


def test_skip_policy_arguments_are_validated():
    src = fx.ArraySource({"x": np.arange(10)})
    with pytest.raises(fx.PipelineError, match="on_error must be 'raise' or 'skip'"):
        fx.Pipeline(src, batch_size=2, on_error="ignore")
    with pytest.raises(fx.PipelineError, match=r"max_skip_fraction must lie in \(0, 1\]"):
        fx.Pipeline(src, batch_size=2, on_error="skip", max_skip_fraction=0)
    with pytest.raises(fx.PipelineError, match="needs a single process reading from the host"):
        fx.Pipeline(
            fx.ArraySource({"x": np.arange(10)}, on_device=True), batch_size=2, on_error="skip"
        )


def test_a_skip_pipeline_builds_when_its_first_records_are_bad():
    def make(fn, on_error="skip"):
        return fx.Pipeline(
            fx.ArraySource(raw_records(N), name="raw"),
            batch_size=8,
            drop_remainder=False,
            host=fx.HostMap(fn),
            on_error=on_error,
            max_skip_fraction=0.1,
        )

    pipe = make(fails_on_the_first_two)
    ids = np.concatenate([b["id"][b["valid"]] for b in epoch_batches(pipe)])
    assert sorted(ids.tolist()) == list(range(2, N)) and sorted(pipe.skipped_indices) == [0, 1]
    with pytest.raises(fx.HostStageError, match="failed on record index 0"):
        make(fails_on_the_first_two, on_error="raise")
    with pytest.raises(fx.HostStageError, match=f"failed on each of the first {N} records"):
        make(always_fails)


def _every_tenth_fails(record, ctx):
    if ctx.index % 10 == 0:
        raise ValueError(f"record {ctx.index} is bad")
    return {"x": np.asarray(record["x"])}


def _skip_pipeline(n, limit=0.2):
    return fx.Pipeline(
        fx.ArraySource({"x": np.arange(n, dtype=np.int32)}, name="tenths"),
        batch_size=16,
        host=fx.HostMap(_every_tenth_fails, workers=0),
        on_error="skip",
        max_skip_fraction=limit,
        drop_remainder=False,
    )


def _state_bytes(pipe):
    return sum(np.asarray(v.get_value()).nbytes for _, v in nnx.to_flat_state(nnx.state(pipe)))


def test_the_skip_state_stays_small_whatever_the_source_size():
    assert _state_bytes(_skip_pipeline(1_000)) == _state_bytes(_skip_pipeline(10_000_000)) < 1024


def test_every_skip_is_counted_the_first_64_listed_and_resume_keeps_the_count():
    pipe = _skip_pipeline(1_000)
    for _ in pipe.epoch():
        pass
    assert pipe.skipped_count == 100
    assert pipe.skipped_indices == list(range(0, 640, 10))
    partial = _skip_pipeline(1_000)
    it = iter(partial)
    for _ in range(20):
        next(it)
    fresh = _skip_pipeline(1_000)
    nnx.update(fresh, nnx.clone(nnx.state(partial)))
    assert fresh.skipped_count == partial.skipped_count > 0
    for _ in fresh.epoch():
        pass
    assert fresh.skipped_count == 100 and fresh.skipped_indices == pipe.skipped_indices
    for _ in zip(range(3), fresh.epoch(), strict=False):  # a new epoch counts afresh
        pass
    assert 0 < fresh.skipped_count < 10


def test_a_record_that_kills_its_worker_process_is_skipped_and_the_run_goes_on():
    import time

    from host_fns import BAD_INDEX, dies_on_bad

    pipe = fx.Pipeline(
        fx.ArraySource(raw_records(N), name="raw"),
        batch_size=8,
        shuffle=True,
        seed=3,
        drop_remainder=False,
        host=fx.HostMap(dies_on_bad, workers=2, backend="process"),
        on_error="skip",
        max_skip_fraction=0.1,
    )
    start = time.monotonic()
    for epoch in range(2):  # the second epoch meets it again, with fresh workers
        ids = np.concatenate([b["id"][b["valid"]] for b in map(host, pipe.epoch())])
        assert sorted(ids.tolist()) == sorted(set(range(N)) - {BAD_INDEX}), epoch
        assert pipe.skipped_indices == [BAD_INDEX] and pipe.skipped_count == 1
    assert time.monotonic() - start < 120


def test_skip_pipelines_keep_their_process_workers_across_epochs():
    pipe = pipeline(workers=2, backend="process")
    first = epoch_batches(pipe)
    executor = pipe._feed.reader._executor
    workers = set(executor._pool._processes)
    second = epoch_batches(pipe)
    assert executor._pool is not None and set(executor._pool._processes) == workers
    assert [b["id"].tolist() for b in first] != [b["id"].tolist() for b in second]
    assert sorted(pipe.skipped_indices) == sorted(BAD)
