import time

import numpy as np
import pytest
from flax import nnx
from helpers import first_batches, host
from host_fns import (
    BAD_INDEX,
    decode,
    dies_on_bad,
    exits_on_bad,
    fails_on_bad,
    hangs_on_bad,
    interrupted_on_bad,
    raw_records,
    wrong_shape_on_bad,
)

import feedax as fx

N = 40
CONFIGS = [(0, "thread"), (1, "thread"), (3, "thread"), (2, "process")]


def pipeline(
    fn=decode, *, workers=2, backend="thread", batch_size=8, prefetch=2, n=N, shuffle=True, seed=1
):
    stage = fx.HostMap(fn, workers=workers, backend=backend, rngs=nnx.Rngs(augment=5))
    flip = fx.RandomFlip(rngs=nnx.Rngs(augment=6))
    return fx.Pipeline(
        fx.ArraySource(raw_records(n), name="raw"),
        [flip],
        batch_size=batch_size,
        shuffle=shuffle,
        seed=seed,
        host=stage,
        prefetch=prefetch,
    )


def by_record(batches):
    return {
        (int(j), int(i)): (img.tobytes(), int(jit))
        for b, j in zip(batches, range(len(batches)), strict=True)
        for img, i, jit in zip(b["image"], b["id"], b["jitter"], strict=True)
    }


@pytest.mark.parametrize(("workers", "backend"), CONFIGS)
@pytest.mark.parametrize("prefetch", [0, 3])
def test_stream_is_the_same_for_every_worker_count_and_backend(workers, backend, prefetch):
    expected = first_batches(pipeline(workers=0, prefetch=0), 12)
    got = first_batches(pipeline(workers=workers, backend=backend, prefetch=prefetch), 12)
    for e, g in zip(expected, got, strict=True):
        for k in e:
            np.testing.assert_array_equal(e[k], g[k], err_msg=k)


def test_host_draws_are_keyed_per_record_not_per_batch():
    def draws(batch_size):
        out = {}
        pipe = pipeline(batch_size=batch_size)
        for epoch in range(2):
            for b in pipe.epoch():
                for i, jit in zip(b["id"], b["jitter"], strict=True):
                    out[(epoch, int(i))] = int(jit)
        return out

    a, b = draws(8), draws(5)
    assert a == b
    assert sum(a[(0, i)] != a[(1, i)] for i in range(N)) > N // 2  # new draws each epoch


def test_host_stage_sees_eval_mode():
    pipe = pipeline()
    pipe.eval()
    assert (host(next(pipe.epoch()))["jitter"] == -1).all()


@pytest.mark.parametrize(("workers", "backend"), CONFIGS)
def test_resume_at_every_step_with_workers(workers, backend):
    total = 8
    reference = first_batches(pipeline(workers=0), total)
    for k in [0, 3, 5, 7]:  # 5 steps per epoch: 5 and 7 cross the boundary
        pipe = pipeline(workers=workers, backend=backend)
        it = iter(pipe)
        for _ in range(k):
            next(it)
        saved = nnx.clone(nnx.state(pipe))
        fresh = pipeline(workers=workers, backend=backend)
        nnx.update(fresh, saved)
        for e, g in zip(reference[k:], first_batches(fresh, total - k), strict=True):
            np.testing.assert_array_equal(e["id"], g["id"])
            np.testing.assert_array_equal(e["image"], g["image"])


@pytest.mark.parametrize(("workers", "backend"), CONFIGS)
def test_a_failing_record_is_named_and_nothing_hangs(workers, backend):
    pipe = pipeline(fails_on_bad, workers=workers, backend=backend, shuffle=False, seed=0)
    start = time.monotonic()
    with pytest.raises(
        fx.HostStageError,
        match=rf"failed on record index {BAD_INDEX} of source "
        r"'raw' \(epoch 0\): ValueError: corrupt payload",
    ):
        list(pipe.epoch())
    assert time.monotonic() - start < 60
    assert pipe.position == (0, 8)  # the batches before the bad one were handed over


@pytest.mark.parametrize(("workers", "backend"), CONFIGS)
def test_sys_exit_and_interrupts_in_a_host_function_name_the_record(workers, backend):
    pipe = pipeline(exits_on_bad, workers=workers, backend=backend, shuffle=False)
    with pytest.raises(fx.HostStageError, match=rf"record index {BAD_INDEX} .*SystemExit: 3"):
        list(pipe.epoch())
    pipe = pipeline(interrupted_on_bad, workers=workers, backend=backend, shuffle=False)
    with pytest.raises(KeyboardInterrupt) as caught:
        list(pipe.epoch())
    assert any(f"record index {BAD_INDEX}" in note for note in caught.value.__notes__)


def test_a_wrong_shape_is_named_with_its_field():
    pipe = pipeline(wrong_shape_on_bad, workers=2)
    with pytest.raises(
        fx.HostStageError,
        match=rf"field 'image' of record index {BAD_INDEX}.*"
        r"\(2, 4, 1\).*\(4, 4, 1\)",
    ):
        list(pipe.epoch())


def test_a_dead_worker_process_is_reported_with_its_record_not_hung():
    pipe = pipeline(dies_on_bad, workers=2, backend="process", batch_size=20)
    start = time.monotonic()
    with pytest.raises(
        fx.HostStageError, match=rf"a worker process died processing record index {BAD_INDEX} "
    ):
        list(pipe.epoch())
    assert time.monotonic() - start < 60


def test_bytes_without_a_host_stage_are_rejected():
    with pytest.raises(
        fx.PipelineError, match=r"field 'raw' of source 'raw' holds object.*HostMap"
    ):
        fx.Pipeline(fx.ArraySource(raw_records(4), name="raw"), batch_size=2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(fn=3), "fn must be callable"),
        (dict(fn=decode, backend="gpu"), "backend must be 'thread', 'process' or 'ray'"),
        (dict(fn=decode, workers=-1), "workers must be an int >= 0"),
    ],
)
def test_host_map_arguments_are_validated(kwargs, match):
    fn = kwargs.pop("fn")
    with pytest.raises(fx.PipelineError, match=match):
        fx.HostMap(fn, **kwargs)


def test_profile_names_every_stage_and_leaves_the_stream_alone():
    pipe = pipeline()
    next(pipe.epoch())
    before = nnx.clone(nnx.state(pipe))
    profile = pipe.profile(4, verbose=False)
    assert set(profile.ms_per_batch) == {"host read", "transfer", "device compute", "consumer wait"}
    assert all(ms >= 0 for ms in profile.ms_per_batch.values())
    assert profile.bottleneck in ("host read", "transfer", "device compute")
    assert profile.batches == 4 and profile.records_per_s > 0
    assert pipe.position == (0, 8)
    assert "bottleneck" in str(profile)
    after = nnx.state(pipe)
    np.testing.assert_array_equal(before["cursor"][...], after["cursor"][...])


@pytest.mark.parametrize(("workers", "backend"), [(0, "thread"), (2, "thread"), (2, "process")])
def test_sharded_host_stage_stream_equals_unsharded(workers, backend):
    import jax
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    mesh = jax.make_mesh((4,), ("data",), devices=jax.devices()[:4])
    stage = fx.HostMap(decode, workers=workers, backend=backend, rngs=nnx.Rngs(augment=5))
    sharded = fx.Pipeline(
        fx.ArraySource(raw_records(N), name="raw"),
        [fx.RandomFlip(rngs=nnx.Rngs(augment=6))],
        batch_size=8,
        shuffle=True,
        seed=1,
        host=stage,
        sharding=NamedSharding(mesh, P("data")),
    )
    for e, g in zip(first_batches(pipeline(workers=0), 7), first_batches(sharded, 7), strict=True):
        for k in e:
            np.testing.assert_array_equal(e[k], g[k], err_msg=k)


def _children(pid):
    """The pids of the processes whose parent is ``pid`` (from /proc)."""
    import pathlib

    found = []
    for status in pathlib.Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines())
        except (OSError, ValueError):
            continue
        if fields.get("PPid", "").strip() == str(pid):
            found.append(int(status.parent.name))
    return found


def test_process_workers_exit_when_their_parent_is_killed():
    import os
    import pathlib
    import signal
    import subprocess
    import sys

    here = pathlib.Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": f"{here}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    parent = subprocess.Popen(
        [sys.executable, str(here / "orphan_parent.py")], stdout=subprocess.PIPE, env=env
    )
    try:
        ready, payload = parent.stdout.readline().decode().split()
        assert ready == "ready" and os.path.exists(payload)
        workers = _children(parent.pid)
        assert len(workers) >= 2, f"the parent's children are {workers}"
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)

    def alive(pid):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        status = pathlib.Path(f"/proc/{pid}/status")
        return status.exists() and "zombie" not in status.read_text()

    deadline = time.monotonic() + 20
    while any(alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [p for p in workers if alive(p)]
    for pid in left:  # clean up what this test started, then fail
        os.kill(pid, signal.SIGKILL)
    assert not left, f"workers {left} outlived their killed parent"
    assert not os.path.exists(payload), "the workers left their payload file behind"


def test_process_workers_are_kept_across_epochs():
    pipe = pipeline(workers=2, backend="process")
    first = [host(b) for b in pipe.epoch()]
    executor = pipe._feed.reader._executor
    workers = set(executor._pool._processes)
    second = [host(b) for b in pipe.epoch()]
    assert executor._pool is not None and set(executor._pool._processes) == workers
    assert len(first) == len(second) and not all(
        np.array_equal(a["image"], b["image"]) for a, b in zip(first, second, strict=True)
    )
    pipe.eval()  # a new mode reaches the kept workers
    assert all((b["jitter"] == -1).all() for b in map(host, pipe.epoch()))
    assert set(executor._pool._processes) == workers


def test_a_stalled_record_times_out_naming_its_batch_and_stops_the_workers():
    source = fx.ArraySource(raw_records(N), name="raw")
    stage = fx.HostMap(hangs_on_bad, workers=2, backend="process", timeout=3.0)
    pipe = fx.Pipeline(source, batch_size=8, host=stage)
    start = time.monotonic()
    with pytest.raises(fx.HostStageError, match=rf"took more than 3 s on records \[.*{BAD_INDEX}"):
        list(pipe.epoch())
    assert time.monotonic() - start < 40
    with pytest.raises(fx.PipelineError, match="timeout must be None or > 0"):
        fx.HostMap(decode, timeout=0)


def test_ctrl_c_ends_a_job_whose_host_stage_hangs_promptly():
    """SIGINT while waiting on a stalled process worker: the job ends within seconds, and
    its workers with it (the stage's 600 s timeout is far away)."""
    import os
    import pathlib
    import signal
    import subprocess
    import sys

    here = pathlib.Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": f"{here}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    job = subprocess.Popen(
        [sys.executable, str(here / "interrupted_parent.py"), "process"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert job.stdout.readline().strip() == "started"
        time.sleep(8)  # the workers start and the hanging record is reached
        workers = _children(job.pid)
        job.send_signal(signal.SIGINT)
        start = time.monotonic()
        _, err = job.communicate(timeout=60)
        assert time.monotonic() - start < 20, "Ctrl-C took too long"
    finally:
        if job.poll() is None:
            job.kill()
    assert "KeyboardInterrupt" in err
    time.sleep(2)
    assert not [
        p
        for p in workers
        if pathlib.Path(f"/proc/{p}").exists()
        and "zombie" not in pathlib.Path(f"/proc/{p}/status").read_text()
    ]
