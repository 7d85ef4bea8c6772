import jax
import numpy as np
import pytest
from conftest import host, make_pipeline
from flax import nnx
from helpers import first_batches

import feedax as fx


def assert_same_batches(expected, got):
    assert len(expected) == len(got)
    for e, g in zip(expected, got, strict=True):
        assert e.keys() == g.keys()
        for k in e:
            np.testing.assert_array_equal(e[k], g[k], err_msg=k)


def take(it, k):
    return [host(next(it)) for _ in range(k)]


def state_bytes(state) -> int:
    leaves = jax.tree.leaves(state)
    return sum(
        np.asarray(
            jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x
        ).nbytes
        for x in leaves
    )


@pytest.mark.parametrize("drop_remainder", [True, False])
def test_resume_after_every_step_across_epoch_boundaries(drop_remainder):
    kw = dict(n=30, batch_size=8, drop_remainder=drop_remainder)
    steps = make_pipeline(**kw).steps_per_epoch
    total = 2 * steps + 2  # two epoch boundaries
    reference = take(iter(make_pipeline(**kw)), total)
    for k in range(total):
        pipe = make_pipeline(**kw)
        it = iter(pipe)
        take(it, k)
        saved = nnx.clone(nnx.state(pipe))
        fresh = make_pipeline(**kw)
        nnx.update(fresh, saved)
        assert_same_batches(reference[k:], take(iter(fresh), total - k))


def test_resume_with_orbax_beside_a_model(tmp_path):
    pipe = make_pipeline(40, batch_size=8)
    model = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
    epoch = pipe.epoch()
    take(epoch, 2)
    fx.checkpoint.save(tmp_path / "ckpt", pipeline=pipe, model=model)
    expected = [host(b) for b in epoch]
    pipe2 = make_pipeline(40, batch_size=8)
    model2 = nnx.Linear(3, 2, rngs=nnx.Rngs(1))
    fx.checkpoint.restore(tmp_path / "ckpt", pipeline=pipe2, model=model2)
    np.testing.assert_array_equal(model2.kernel[...], model.kernel[...])
    assert pipe2.position == (0, 16)
    assert_same_batches(expected, [host(b) for b in pipe2.epoch()])


def test_checkpoint_errors(tmp_path):
    with pytest.raises(ValueError, match="nothing to save"):
        fx.checkpoint.save(tmp_path / "x")
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        fx.checkpoint.restore(tmp_path / "missing", pipeline=make_pipeline())


def test_saving_over_a_checkpoint_needs_overwrite(tmp_path):
    pipe, model = make_pipeline(40, batch_size=8), nnx.Linear(3, 2, rngs=nnx.Rngs(0))
    fx.checkpoint.save(tmp_path / "step", pipeline=pipe, model=model)
    with pytest.raises(FileExistsError, match=r"already exists.*overwrite=True"):
        fx.checkpoint.save(tmp_path / "step", pipeline=pipe, model=model)
    model.kernel[...] = model.kernel[...] + 1.0
    fx.checkpoint.save(tmp_path / "step", overwrite=True, pipeline=pipe, model=model)
    again = nnx.Linear(3, 2, rngs=nnx.Rngs(1))
    fx.checkpoint.restore(tmp_path / "step", pipeline=make_pipeline(40, batch_size=8), model=again)
    np.testing.assert_array_equal(again.kernel[...], model.kernel[...])


def test_a_damaged_checkpoint_is_never_restored_silently(tmp_path):
    import pathlib

    pipe, model = make_pipeline(40, batch_size=8), nnx.Linear(64, 64, rngs=nnx.Rngs(0))
    take(iter(pipe), 2)
    fx.checkpoint.save(tmp_path / "ckpt", pipeline=pipe, model=model)
    files = [
        f
        for f in pathlib.Path(tmp_path / "ckpt").rglob("*")
        if f.is_file() and f.name != "feedax_digest.json"
    ]
    data = max(files, key=lambda f: f.stat().st_size)  # the model's values live here
    original = data.read_bytes()
    caught = 0
    for at in np.linspace(0, len(original) - 1, 24).astype(int):
        damaged = bytearray(original)
        damaged[at] ^= 0x40
        data.write_bytes(bytes(damaged))
        fresh = nnx.Linear(64, 64, rngs=nnx.Rngs(1))
        before = np.asarray(fresh.kernel[...]).copy()
        try:
            fx.checkpoint.restore(
                tmp_path / "ckpt", pipeline=make_pipeline(40, batch_size=8), model=fresh
            )
        except fx.CheckpointError as error:
            assert "'model'" in str(error) and "nothing was loaded" in str(error)
            np.testing.assert_array_equal(fresh.kernel[...], before)  # untouched
            caught += 1
        except Exception:  # Orbax noticed the damage itself
            pass
        else:  # restored: then it must be exactly what was saved
            np.testing.assert_array_equal(fresh.kernel[...], model.kernel[...])
    data.write_bytes(original)
    assert caught > 0, caught  # some flips pass Orbax unnoticed: the digest catches them


def test_state_is_small_and_does_not_grow_with_the_data():
    small = nnx.state(make_pipeline(50, batch_size=8))
    large = nnx.state(make_pipeline(20_000, batch_size=8))
    assert state_bytes(small) == state_bytes(large) < 2048
    assert jax.tree.structure(small) == jax.tree.structure(large)


def test_state_holds_cursor_keys_and_stats_but_no_data():
    state = nnx.state(make_pipeline(50, batch_size=8))
    assert set(state.keys()) == {"blueprint", "cursor", "operators"}
    assert isinstance(state["cursor"], fx.Cursor)
    assert len(nnx.to_flat_state(nnx.state(make_pipeline(50), nnx.RngKey))) == 2
    assert len(nnx.to_flat_state(nnx.state(make_pipeline(50), nnx.BatchStat))) == 3


def test_loading_a_state_redirects_a_running_iteration():
    pipe = make_pipeline(40, batch_size=8)
    it = iter(pipe)
    take(it, 1)
    saved = nnx.clone(nnx.state(pipe))  # nnx.state is a live view; clone snapshots it
    after_saved = take(it, 3)
    nnx.update(pipe, saved)
    assert_same_batches(after_saved, take(it, 3))


def test_state_from_a_different_pipeline_is_rejected_by_nnx_update():
    pipe = make_pipeline(40, batch_size=8, seed=0)
    expected = first_batches(make_pipeline(40, batch_size=8, seed=0), 2)
    other = make_pipeline(41, batch_size=8, seed=0)
    first_batches(other, 3)
    with pytest.raises(
        fx.StateMismatchError, match=r"differs in the source \(its type or length\)"
    ):
        nnx.update(pipe, nnx.state(other))
    with pytest.raises(fx.StateMismatchError, match="differs in the seed or shuffle"):
        nnx.update(pipe, nnx.state(make_pipeline(40, batch_size=8, seed=1)))
    # A rejected state changes nothing: the pipeline still starts at its own cursor.
    for a, b in zip(expected, first_batches(pipe, 2), strict=True):
        np.testing.assert_array_equal(a["id"], b["id"])


def test_corrupt_cursor_is_rejected():
    pipe = make_pipeline(40, batch_size=8)
    pipe.cursor[...] = np.array([0, 5, 41, 0])
    with pytest.raises(fx.StateMismatchError, match=r"cursor \[0, 5, 41, 0\] is not a valid"):
        next(iter(pipe))
