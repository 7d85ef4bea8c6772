"""Invariant 6 for real: several processes with jax.distributed on 127.0.0.1 (gloo)."""

from pathlib import Path

import numpy as np
import pytest
from conftest import host, make_pipeline
from flax import nnx
from multihost import run_workers, union

WORKER = Path(__file__).parent / "multihost_worker.py"
STEPS, SAVE_STEP = 10, 4  # 7 batches per epoch: crosses an epoch boundary


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    return run_workers(WORKER, tmp_path_factory.mktemp("multihost"), STEPS, SAVE_STEP)


def test_union_of_processes_is_the_single_process_batch(two_process_run):
    assert all(r["devices"] == 4 for r in two_process_run)
    single = make_pipeline(60, batch_size=8)
    it = iter(single)
    for step in range(STEPS):
        expected = host(next(it))
        rows = union(two_process_run, step, 8)
        ids = [rows[str(r)][0] for r in range(8)]
        np.testing.assert_array_equal(ids, expected["id"])
        images = np.array([rows[str(r)][1] for r in range(8)])
        # RunningNormalize reduces across processes: equal up to float rounding.
        np.testing.assert_allclose(images, expected["image"].reshape(8, -1), atol=2e-3)


def test_cursor_saved_on_two_processes_resumes_on_one(two_process_run):
    saved = two_process_run[0]["saved"]
    assert saved == two_process_run[1]["saved"]  # the cursor and statistics are global
    reference = make_pipeline(60, batch_size=8)
    it = iter(reference)
    for _ in range(SAVE_STEP):
        next(it)
    assert saved["cursor"] == np.asarray(reference.cursor[...]).tolist()
    np.testing.assert_allclose(saved["mean"], reference.operators[2].mean[...], rtol=1e-4)
    one = make_pipeline(60, batch_size=8)
    nnx.update(one, nnx.clone(nnx.state(reference)))
    resumed = iter(one)
    for _ in range(STEPS - SAVE_STEP):
        np.testing.assert_array_equal(host(next(resumed))["id"], host(next(it))["id"])


def test_orbax_checkpoint_of_two_processes_restores_on_one(two_process_run, tmp_path_factory):
    """The pipeline item is written once by the two processes; one process restores it."""
    import orbax.checkpoint as ocp

    import feedax as fx

    directory = Path(two_process_run[0]["out"]).parent / "orbax"
    files = set((directory / str(SAVE_STEP) / "data").iterdir())
    assert {f.name for f in files} - {"commit_success.txt"} == {
        "pipeline_state.json",
        "pipeline_state.npz",
    }
    reference = make_pipeline(60, batch_size=8)
    it = iter(reference)
    for _ in range(SAVE_STEP):
        next(it)
    one = make_pipeline(60, batch_size=8)
    with ocp.CheckpointManager(directory) as manager:
        manager.restore(SAVE_STEP, args=ocp.args.Composite(data=fx.checkpoint.Restore(one)))
    assert np.asarray(one.cursor[...]).tolist() == np.asarray(reference.cursor[...]).tolist()
    np.testing.assert_allclose(
        one.operators[2].mean[...], reference.operators[2].mean[...], rtol=1e-4
    )
    resumed = iter(one)
    for _ in range(STEPS - SAVE_STEP):
        np.testing.assert_array_equal(host(next(resumed))["id"], host(next(it))["id"])


def test_a_dead_peer_stops_the_survivor_at_its_first_collective():
    """What holds when one process dies (documented in the README): feedax does not
    detect it, but the survivor's next step that needs the peer (any collective) fails or
    is aborted by JAX's heartbeat, so it never trains on for long."""
    import subprocess
    import sys
    import time

    from multihost import free_port

    worker = Path(__file__).parent / "multihost_peer_death.py"
    port = free_port()
    env = {k: v for k, v in __import__("os").environ.items() if k != "XLA_FLAGS"}
    procs = [
        subprocess.Popen(
            [sys.executable, str(worker), str(port), str(i)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    start = time.monotonic()
    survivor = procs[0].communicate(timeout=120)[0]
    procs[1].wait(timeout=30)
    assert procs[1].returncode == -9  # SIGKILL
    assert procs[0].returncode != 0, survivor[-2000:]
    assert time.monotonic() - start < 90
    steps = [line for line in survivor.splitlines() if line.startswith("step ")]
    assert 3 <= len(steps) <= 5, survivor[-2000:]  # at most a step or two past the death
