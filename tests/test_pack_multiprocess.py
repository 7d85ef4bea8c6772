"""Packing on two real jax.distributed processes: the union is the single-process batch."""

from pathlib import Path

import numpy as np
import pytest
from helpers import first_batches
from multihost import run_workers, union
from test_pack import pipeline

WORKER = Path(__file__).parent / "multihost_pack_worker.py"
STEPS, SAVE_STEP = 8, 3


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    return run_workers(WORKER, tmp_path_factory.mktemp("multihost-pack"), STEPS, SAVE_STEP)


def test_two_processes_make_the_single_process_rows_and_resume_on_one(two_process_run):
    assert all(r["devices"] == 4 for r in two_process_run)
    expected = first_batches(pipeline(), STEPS)
    for step in range(STEPS):
        rows = union(two_process_run, step, 8)
        for field in ("tokens", "segment_ids", "positions"):
            got = np.array([rows[str(r)][field] for r in range(8)])
            np.testing.assert_array_equal(got, expected[step][field], err_msg=field)
    # The cursor both processes saved is global: one process resumes from it.
    saved = two_process_run[0]["saved"]
    assert saved == two_process_run[1]["saved"]
    resumed = pipeline()
    resumed.cursor.set_value(np.asarray(saved, np.int64))
    for a, b in zip(expected[SAVE_STEP:], first_batches(resumed, STEPS - SAVE_STEP), strict=True):
        np.testing.assert_array_equal(a["tokens"], b["tokens"])
