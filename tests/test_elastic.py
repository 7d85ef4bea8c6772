"""Many real jax.distributed processes (gloo, 127.0.0.1): 4 run, then 3, 2 and 1 resume.

For a random-access source, a Mix, packed sequences and a sharded stream: the union over
the processes of every step is the single-process batch, and a checkpoint saved by four
processes resumes on three, two and one with the same global stream. The sharded
stream's processes each open only their lanes' files.
"""

from pathlib import Path

import numpy as np
import orbax.checkpoint as ocp
import pytest
from elastic import BATCH, KINDS, build, stream
from helpers import first_batches
from multihost import run_workers

import feedax as fx

WORKER = Path(__file__).parent / "multihost_elastic_worker.py"
STEPS, SAVE_STEP = 9, 4  # the Mix and the array source cross an epoch boundary


@pytest.fixture(scope="module")
def expected():
    """Each pipeline's first STEPS batches on one process."""
    return {kind: first_batches(build(kind), STEPS) for kind in KINDS}


@pytest.fixture(scope="module")
def four(tmp_path_factory):
    out = tmp_path_factory.mktemp("elastic-4")
    folder = out / "checkpoints"
    runs = run_workers(WORKER, out, STEPS, SAVE_STEP, 4, extra=("save", str(folder)), devices=1)
    return runs, folder


def union(runs: list[dict], kind: str, step: int) -> dict[int, dict[str, list]]:
    """Row -> fields, over the processes; each row from exactly one of them."""
    merged: dict[int, dict[str, list]] = {}
    for run in runs:
        part = {int(k): v for k, v in run["records"][kind][step].items()}
        assert not merged.keys() & part.keys(), "two processes produced the same row"
        merged.update(part)
    assert sorted(merged) == list(range(BATCH))
    return merged


def check(runs: list[dict], expected: dict, first: int) -> None:
    for kind in KINDS:
        for step, want in enumerate(expected[kind][first:STEPS]):
            rows = union(runs, kind, step)
            for field, values in want.items():
                got = np.array([rows[r][field] for r in range(BATCH)])
                np.testing.assert_array_equal(got, values, err_msg=f"{kind} {field} {step}")


def test_four_processes_make_the_single_process_batches(four, expected):
    runs, _ = four
    assert [r["processes"] for r in runs] == [4] * 4
    check(runs, expected, 0)


def test_each_process_reads_only_the_files_of_its_lanes(four):
    """The stream's 12 lanes: process p holds rows [3p, 3p + 3), so lanes 3p..3p+2."""
    runs, _ = four
    layout = stream()._layout
    assert layout.steps >= STEPS  # the steps checked are before the shortest lane ends
    for p, run in enumerate(runs):
        mine = {int(f) for lane in range(3 * p, 3 * p + 3) for f in layout.files[lane]}
        assert set(run["opened"]) <= mine and run["opened"], (p, run["opened"])


@pytest.mark.parametrize("processes", [3, 2])
def test_a_checkpoint_of_four_processes_resumes_on_fewer(four, expected, processes, tmp_path):
    _, folder = four
    runs = run_workers(
        WORKER, tmp_path, STEPS, SAVE_STEP, processes, extra=("resume", str(folder)), devices=1
    )
    check(runs, expected, SAVE_STEP)


def test_a_checkpoint_of_four_processes_resumes_on_one(four, expected):
    _, folder = four
    pipes = {kind: build(kind) for kind in KINDS}
    with ocp.CheckpointManager(folder) as manager:
        args = {kind: fx.checkpoint.Restore(pipe) for kind, pipe in pipes.items()}
        manager.restore(SAVE_STEP, args=ocp.args.Composite(**args))
    for kind, pipe in pipes.items():
        resumed = first_batches(pipe, STEPS - SAVE_STEP)
        for want, got in zip(expected[kind][SAVE_STEP:], resumed, strict=True):
            for field in want:
                np.testing.assert_array_equal(got[field], want[field], err_msg=f"{kind} {field}")
