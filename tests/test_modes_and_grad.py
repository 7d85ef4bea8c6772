import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import host, make_images, make_pipeline
from flax import nnx

import feedax as fx


def test_eval_makes_random_ops_identity_and_freezes_stats():
    pipe = make_pipeline(40, batch_size=8)
    for _ in pipe.epoch():
        pass
    norm = pipe.operators[2]
    mean, var, count = norm.mean[...], norm.var[...], norm.count[...]
    pipe.eval()
    assert pipe.operators[0].deterministic and norm.use_running_average
    batch = host(next(pipe.epoch()))
    np.testing.assert_array_equal(norm.mean[...], mean)
    np.testing.assert_array_equal(norm.var[...], var)
    assert norm.count[...] == count
    # Crop of an 8x8 image to 8x8 with padding and flip are identities in eval mode.
    raw = pipe.source.read(batch["id"].astype(np.int64))["image"].astype(np.float32)
    expected = (raw - np.asarray(mean)) / np.sqrt(np.asarray(var) + 1e-5)
    np.testing.assert_allclose(batch["image"], expected, rtol=1e-5, atol=1e-5)
    pipe.train()
    assert not pipe.operators[0].deterministic
    next(pipe.epoch())
    assert norm.count[...] == count + 1


def test_running_normalize_converges_to_the_data_statistics():
    rng = np.random.default_rng(0)
    mean, std = np.array([10.0, -3.0, 50.0]), np.array([2.0, 0.5, 9.0])
    images = (rng.normal(size=(512, 4, 4, 3)) * std + mean).astype(np.float32)
    norm = fx.RunningNormalize(3, momentum=0.9)
    pipe = fx.Pipeline(fx.ArraySource({"image": images}), [norm], batch_size=32, shuffle=True)
    for _ in range(3):
        out = [np.asarray(b["image"]) for b in pipe.epoch()]
    np.testing.assert_allclose(norm.mean[...], images.mean(axis=(0, 1, 2)), rtol=0.02, atol=0.05)
    np.testing.assert_allclose(np.sqrt(norm.var[...]), images.std(axis=(0, 1, 2)), rtol=0.05)
    normalised = np.concatenate(out)
    np.testing.assert_allclose(normalised.mean(axis=(0, 1, 2)), 0, atol=0.1)
    np.testing.assert_allclose(normalised.std(axis=(0, 1, 2)), 1, atol=0.1)


def test_running_normalize_first_batches_are_an_exact_average():
    images = np.concatenate([np.zeros((4, 2, 2, 1)), np.full((4, 2, 2, 1), 4.0)]).astype(np.float32)
    norm = fx.RunningNormalize(1, momentum=0.99)
    pipe = fx.Pipeline(fx.ArraySource({"image": images}), [norm], batch_size=4)
    list(pipe.epoch())
    np.testing.assert_allclose(norm.mean[...], [2.0])
    np.testing.assert_allclose(norm.var[...], [4.0])  # variance of {0, 4}, not mean of 0 and 0


def test_padding_rows_do_not_count_in_running_statistics():
    images = np.arange(5, dtype=np.float32).reshape(5, 1, 1, 1)
    norm = fx.RunningNormalize(1)
    pipe = fx.Pipeline(
        fx.ArraySource({"image": images}), [norm], batch_size=8, drop_remainder=False
    )
    list(pipe.epoch())
    np.testing.assert_allclose(norm.mean[...], [2.0])
    np.testing.assert_allclose(norm.var[...], [2.0])


def test_gradient_flows_through_the_pipeline_into_params():
    images = make_images(16).astype(np.float32)
    rngs = nnx.Rngs(augment=0)
    ops = [fx.RandomCrop(6, padding=1, rngs=rngs), fx.BrightnessContrast(), fx.Normalize(128, 64)]
    pipe = fx.Pipeline(fx.ArraySource({"image": images}), ops, batch_size=16)
    target = jnp.full((16, 6, 6, 3), 0.5)

    def loss(pipe):
        out = pipe({"image": jnp.asarray(images)}, indices=jnp.arange(16), epoch=0)
        return jnp.mean((out["image"] - target) ** 2)

    grads = nnx.grad(loss, argnums=nnx.DiffState(0, nnx.Param))(pipe)
    leaves = jax.tree.leaves(grads)
    assert len(leaves) == 2
    for g in leaves:
        assert np.isfinite(g) and abs(float(g)) > 1e-6


def test_learnable_op_gradient_descent_recovers_a_brightness_shift():
    rng = np.random.default_rng(1)
    clean = rng.uniform(0, 1, (64, 4, 4, 3)).astype(np.float32)
    seen = (
        (clean - clean.mean(axis=(1, 2, 3), keepdims=True)) * 0.5
        + clean.mean(axis=(1, 2, 3), keepdims=True)
        + 0.3
    )
    op = fx.BrightnessContrast()
    pipe = fx.Pipeline(fx.ArraySource({"image": seen}), [op], batch_size=64)

    @nnx.jit
    def step(pipe):
        def loss(pipe):
            out = pipe({"image": jnp.asarray(seen)}, indices=jnp.arange(64))
            return jnp.mean((out["image"] - clean) ** 2)

        grads = nnx.grad(loss)(pipe)
        params = nnx.state(pipe, nnx.Param)
        nnx.update(pipe, jax.tree.map(lambda p, g: p - 0.5 * g, params, grads))

    for _ in range(300):
        step(pipe)
    np.testing.assert_allclose(op.contrast[...], 2.0, rtol=0.02)
    np.testing.assert_allclose(op.brightness[...], -0.3, atol=0.02)


@pytest.mark.parametrize(("on_device", "sharded"), [(False, False), (True, False), (True, True)])
def test_device_function_compiles_once_over_three_epochs(on_device, sharded):
    compiled = []

    def listener(event, _, *, fun_name="", **__):
        if event == "/jax/core/compile/backend_compile_duration":
            compiled.append(fun_name)

    jax.clear_caches()  # earlier tests may have compiled the same program
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        # Counted by name from before construction: on-device pipelines compile their step
        # in the background while they are built.
        sharding = None
        if sharded:
            mesh = jax.make_mesh((len(jax.devices()),), ("data",))
            sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
        pipe = make_pipeline(
            50, batch_size=8, drop_remainder=False, on_device=on_device, sharding=sharding
        )
        batches = [b for _ in range(3) for b in pipe.epoch()]
        jax.block_until_ready(batches)
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    step = [name for name in compiled if "_gather_apply_jit" in name or "_apply_donating" in name]
    assert len(batches) == 21
    assert len(step) == 1, compiled


class _ReverseBatch(fx.BatchOperator):
    """A test batch operator: reverses the batch order of one field and counts calls."""

    def __init__(self):
        self.calls = nnx.BatchStat(jnp.zeros((), jnp.int32))

    def transform(self, batch, ctx):
        assert ctx.index.shape == (len(batch["image"]),)
        self.calls[...] = self.calls[...] + 1
        return {**batch, "image": batch["image"][::-1]}


def test_batch_operators_run_between_vmapped_runs_in_one_function():
    images = make_images(16).astype(np.float32)
    rngs = nnx.Rngs(augment=0)
    rev = _ReverseBatch()
    ops = [fx.RandomFlip(p=0.0, rngs=rngs), rev, fx.Normalize(0.0, 2.0)]
    pipe = fx.Pipeline(fx.ArraySource({"image": images, "id": np.arange(16)}), ops, batch_size=8)
    batches = [host(b) for b in pipe.epoch()]
    for b in batches:
        np.testing.assert_allclose(b["image"], images[b["id"]][::-1] / 2.0)
    assert int(rev.calls[...]) == 2


def test_mode_switch_takes_effect_in_a_running_iteration():
    pipe = make_pipeline(64, batch_size=8, shuffle=False)
    it = iter(pipe)
    next(it)
    norm = pipe.operators[2]
    count = int(norm.count[...])
    pipe.eval()
    next(it)
    assert int(norm.count[...]) == count  # frozen from the very next batch
    pipe.train()
    next(it)
    assert int(norm.count[...]) == count + 1


def test_apply_operators_leaves_the_callers_arrays_alive():
    x = jnp.ones((4, 2, 2, 3))
    ops = [fx.RandomFlip(rngs=nnx.Rngs(augment=0))]
    for _ in range(2):  # would fail on a donated (deleted) buffer
        fx.apply_operators(ops, {"image": x, "id": jnp.arange(4)}, indices=jnp.arange(4))
    assert not x.is_deleted()
