"""The pipeline as a first-class Orbax item: CheckpointManager args and Orbax v1's protocol."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import nnx
from helpers import first_batches, make_pipeline
from orbax.checkpoint.experimental import v1 as ocp1

import feedax as fx
from feedax._state_file import snapshot

HERE = Path(__file__).parent


def manager(path):
    return ocp.CheckpointManager(path, options=ocp.CheckpointManagerOptions(max_to_keep=3))


def test_manager_saves_and_restores_with_no_abstract_target(tmp_path):
    pipe, model = make_pipeline(40, batch_size=8), nnx.Linear(2, 3, rngs=nnx.Rngs(0))
    first_batches(pipe, 3)
    with manager(tmp_path) as mgr:
        mgr.save(
            3,
            args=ocp.args.Composite(
                model=ocp.args.StandardSave(nnx.state(model)), data=fx.checkpoint.Save(pipe)
            ),
        )
    expected = first_batches(pipe, 4)  # the stream after step 3 (crosses an epoch)
    # The item is written once, whatever the process count: two small files.
    files = set(os.listdir(tmp_path / "3" / "data")) - {"commit_success.txt"}  # Orbax's
    assert files == {"pipeline_state.json", "pipeline_state.npz"}

    fresh, blank = make_pipeline(40, batch_size=8), nnx.Linear(2, 3, rngs=nnx.Rngs(1))
    abstract_model = jax.tree.map(ocp.utils.to_shape_dtype_struct, nnx.state(blank))
    with manager(tmp_path) as mgr:
        restored = mgr.restore(
            mgr.latest_step(),
            args=ocp.args.Composite(
                model=ocp.args.StandardRestore(abstract_model), data=fx.checkpoint.Restore(fresh)
            ),
        )
    assert restored.data is fresh
    nnx.update(blank, restored.model)
    np.testing.assert_array_equal(blank.kernel[...], model.kernel[...])
    for e, g in zip(expected, first_batches(fresh, 4), strict=True):
        for field in e:
            np.testing.assert_array_equal(e[field], g[field])


def test_save_takes_the_state_when_it_is_made(tmp_path):
    pipe = make_pipeline(40, batch_size=8)
    args = fx.checkpoint.Save(pipe)
    first_batches(pipe, 2)  # the cursor moves on before Orbax writes
    with manager(tmp_path) as mgr:
        mgr.save(0, args=ocp.args.Composite(data=args))
    fresh = make_pipeline(40, batch_size=8)
    with manager(tmp_path) as mgr:
        mgr.restore(0, args=ocp.args.Composite(data=fx.checkpoint.Restore(fresh)))
    assert fresh.position == (0, 0)


@pytest.mark.parametrize(
    "other, match",
    [
        (lambda: make_pipeline(40, batch_size=8, seed=1), "seed"),
        (lambda: make_pipeline(41, batch_size=8), "source"),
        (lambda: fx.Pipeline(fx.ArraySource({"x": np.arange(40)}), batch_size=8), "different"),
    ],
)
def test_another_pipeline_raises_state_mismatch_and_loads_nothing(tmp_path, other, match):
    pipe = make_pipeline(40, batch_size=8)
    first_batches(pipe, 2)
    with manager(tmp_path) as mgr:
        mgr.save(2, args=ocp.args.Composite(data=fx.checkpoint.Save(pipe)))
    target = other()
    before = snapshot(target)
    with manager(tmp_path) as mgr, pytest.raises(fx.StateMismatchError, match=match):
        mgr.restore(2, args=ocp.args.Composite(data=fx.checkpoint.Restore(target)))
    after = snapshot(target)
    assert before.keys() == after.keys()
    for key in before:
        np.testing.assert_array_equal(before[key], after[key], key)


def test_damaged_state_raises_checkpoint_error(tmp_path):
    pipe = make_pipeline(40, batch_size=8)
    first_batches(pipe, 2)
    with manager(tmp_path) as mgr:
        mgr.save(2, args=ocp.args.Composite(data=fx.checkpoint.Save(pipe)))
    index = tmp_path / "2" / "data" / "pipeline_state.json"
    index.write_text(index.read_text().replace('"blake2b": "', '"blake2b": "0'))
    with manager(tmp_path) as mgr, pytest.raises(fx.CheckpointError, match="damaged"):
        mgr.restore(
            2, args=ocp.args.Composite(data=fx.checkpoint.Restore(make_pipeline(40, batch_size=8)))
        )


def test_orbax_v1_checkpointable_protocol(tmp_path):
    pipe = make_pipeline(40, batch_size=8)
    first_batches(pipe, 3)
    ocp1.save_checkpointables(tmp_path / "ckpt", {"data": pipe})
    expected = first_batches(pipe, 3)
    fresh = make_pipeline(40, batch_size=8)
    ocp1.load_checkpointables(tmp_path / "ckpt", {"data": fresh})
    for e, g in zip(expected, first_batches(fresh, 3), strict=True):
        for field in e:
            np.testing.assert_array_equal(e[field], g[field])


def test_sigkill_between_saves_resumes_exactly(tmp_path):
    """A run killed after some saves resumes from the latest; its batches and losses
    equal the uninterrupted run's."""
    script = HERE / "orbax_run.py"
    full = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "full"), "run", "0"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    reference = full.stdout.split()
    killed = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "run"), "run", "1"],
        stdout=subprocess.PIPE,
        text=True,
    )
    seen = []
    for line in killed.stdout:  # kill it mid-run, between two saves
        seen.append(line.strip())
        if len(seen) == 7:
            os.kill(killed.pid, signal.SIGKILL)
            break
    killed.wait(timeout=60)
    assert killed.returncode == -signal.SIGKILL
    resumed = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "run"), "resume", "0"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout.split()
    step = int(resumed[0])  # the latest complete save
    assert 0 < step <= 7
    assert seen[:step] == reference[:step]
    assert resumed[1:] == reference[step:]
