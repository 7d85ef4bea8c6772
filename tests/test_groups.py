"""Step groups (``feedax._groups``): the same batches as one step at a time, faster."""

import jax
import numpy as np
import pytest
from flax import nnx

import feedax as fx
from feedax import _groups

N, B = 100, 8  # 12 full steps an epoch and a partial one; groups of 8 leave a short group


def images(n=N):
    rng = np.random.default_rng(0)
    return {
        "image": rng.integers(0, 256, (n, 6, 6, 3), dtype=np.uint8),
        "label": np.arange(n, dtype=np.int32),
    }


def pipeline(on_device, drop=True, grouped=True, monkeypatch=None, **kw):
    if not grouped:
        monkeypatch.setattr(_groups, "MAX_STEPS", 1)
    rngs = nnx.Rngs(augment=3)
    ops = [fx.RandomCrop(6, padding=2, rngs=rngs), fx.RandomFlip(rngs=rngs), fx.ToFloat()]
    source = fx.ArraySource(images(), on_device=on_device)
    pipe = fx.Pipeline(source, ops, batch_size=B, shuffle=True, seed=5, drop_remainder=drop, **kw)
    if not grouped:
        monkeypatch.undo()
    return pipe


def take(pipe, n):
    it = iter(pipe)
    return [jax.tree.map(np.asarray, next(it)) for _ in range(n)]


@pytest.mark.parametrize("on_device", [False, True], ids=["host", "device"])
@pytest.mark.parametrize("drop", [True, False], ids=["drop", "pad"])
def test_groups_yield_the_batches_of_single_steps(on_device, drop, monkeypatch):
    grouped = pipeline(on_device, drop)
    single = pipeline(on_device, drop, grouped=False, monkeypatch=monkeypatch)
    assert grouped._group == 8 and single._group == 1
    steps = 2 * grouped.steps_per_epoch + 3  # two epoch ends, each with a short group
    for a, b in zip(take(grouped, steps), take(single, steps), strict=True):
        assert sorted(a) == sorted(b)
        for field in a:
            np.testing.assert_array_equal(a[field], b[field], err_msg=field)
    np.testing.assert_array_equal(grouped.cursor[...], single.cursor[...])


@pytest.mark.parametrize("on_device", [False, True], ids=["host", "device"])
def test_a_state_saved_inside_a_group_resumes_exactly(on_device):
    pipe = pipeline(on_device)
    it = iter(pipe)
    for _ in range(3):  # inside the first group of 8
        next(it)
    saved = nnx.clone(nnx.state(pipe))
    expected = [jax.tree.map(np.asarray, next(it)) for _ in range(10)]
    fresh = pipeline(on_device)
    nnx.update(fresh, saved)
    for want, got in zip(expected, take(fresh, 10), strict=True):
        np.testing.assert_array_equal(want["image"], got["image"])
        np.testing.assert_array_equal(want["label"], got["label"])


def test_a_mode_change_inside_a_group_takes_effect_at_the_next_batch():
    pipe = pipeline(on_device=False)
    it = iter(pipe)
    next(it)
    pipe.eval()  # eval: the central crop (the image itself) and no flip
    batch = jax.tree.map(np.asarray, next(it))
    expected = images()["image"][batch["label"]] / np.float32(255)
    np.testing.assert_allclose(batch["image"], expected, atol=1e-6)


def test_which_pipelines_group():
    spec = {"image": jax.ShapeDtypeStruct((32, 32, 3), np.uint8)}
    rngs = nnx.Rngs(augment=0)
    flip = fx.RandomFlip(rngs=rngs)
    assert _groups.group_size(nnx.List([flip]), spec, 256, plain=True) == 8
    assert _groups.group_size(nnx.List([flip]), spec, 256, plain=False) == 1
    assert _groups.group_size(nnx.List([]), spec, 256, plain=True) == 1
    running = nnx.List([fx.RunningNormalize(3)])  # an nnx.BatchStat: updated per batch
    assert _groups.group_size(running, spec, 256, plain=True) == 1
    mixing = nnx.List([flip, fx.MixUp(alpha=0.2, rngs=rngs)])  # mixes rows of one batch
    assert _groups.group_size(mixing, spec, 256, plain=True) == 1
    big = {"image": jax.ShapeDtypeStruct((224, 224, 3), np.uint8)}
    assert _groups.group_size(nnx.List([flip]), big, 64, plain=True) == 1  # 9.6 MB a step
    host = fx.HostMap(lambda record, ctx: record)
    source = fx.ArraySource(images())
    assert fx.Pipeline(source, [flip], batch_size=B, host=host)._group == 1
