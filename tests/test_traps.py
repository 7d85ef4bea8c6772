"""The silent traps found in review, each reproduced: each now works or raises clearly."""

import gc
import os
import subprocess
import sys
import textwrap

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from helpers import first_batches, host, make_images

import feedax as fx


def images_source(n=20, size=8, name="images"):
    return fx.ArraySource({"image": make_images(n, size), "id": np.arange(n)}, name=name)


# -- 1. one owner per mode -------------------------------------------------------------


def test_a_second_pipeline_on_the_same_operators_raises():
    ops = [fx.RandomFlip(rngs=nnx.Rngs(augment=0)), fx.RunningNormalize(3)]
    train = fx.Pipeline(images_source(), ops, batch_size=4)
    with pytest.raises(fx.PipelineError, match=r"operators\[0\] \(RandomFlip\) already belongs"):
        fx.Pipeline(images_source(), ops, batch_size=4)
    nested = fx.RandomApply([ops[0]], rngs=nnx.Rngs(augment=1))
    with pytest.raises(fx.PipelineError, match="already belongs to another Pipeline"):
        fx.Pipeline(images_source(), [nested], batch_size=4)
    # Copies are independent: evaluating one leaves the other training.
    evaluation = fx.Pipeline(images_source(), [nnx.clone(op) for op in ops], batch_size=4)
    evaluation.eval()
    assert not train.operators[0].deterministic
    del train, evaluation
    gc.collect()
    fx.Pipeline(images_source(), ops, batch_size=4)  # a pipeline gone frees its operators


def test_an_operator_mode_change_is_seen_by_a_running_iteration():
    flip = fx.RandomFlip(p=1.0, rngs=nnx.Rngs(augment=0))
    images = make_images(12)
    pipe = fx.Pipeline(fx.ArraySource({"image": images}), [flip], batch_size=4)
    it = iter(pipe)
    np.testing.assert_array_equal(next(it)["image"], images[:4, :, ::-1])
    flip.eval()
    np.testing.assert_array_equal(next(it)["image"], images[4:8])  # the identity now
    flip.train()
    np.testing.assert_array_equal(next(it)["image"], images[8:12, :, ::-1])


# -- 2. eval keeps the train shape -----------------------------------------------------


@pytest.mark.parametrize("on_device", [False, True])
def test_eval_mode_keeps_the_batch_shape_even_mid_iteration(on_device):
    rngs = nnx.Rngs(augment=0)
    ops = [fx.RandomResizedCrop(28, rngs=rngs), fx.RandomCrop(24, rngs=rngs)]
    source = fx.ArraySource({"image": make_images(16, 32)}, on_device=on_device)
    pipe = fx.Pipeline(source, ops, batch_size=4, drop_remainder=True)
    it = iter(pipe)
    assert next(it)["image"].shape == (4, 24, 24, 3)
    pipe.eval()
    evaluated = next(it)["image"]
    assert evaluated.shape == (4, 24, 24, 3)
    assert pipe.output_spec["image"].shape == (4, 24, 24, 3)
    # Eval is a fixed central transform: the same for every epoch.
    pipe2 = fx.Pipeline(source, [nnx.clone(op) for op in ops], batch_size=4, drop_remainder=True)
    pipe2.eval()
    np.testing.assert_array_equal(first_batches(pipe2, 2)[1]["image"], evaluated)


class _Shrink(fx.RandomOperator):
    """Crops a pixel off in train mode and (as a random op) is the identity in eval."""

    def apply(self, x, ctx):
        return x[1:, 1:]


def test_a_pipeline_whose_eval_shape_would_differ_raises_when_built():
    ops = [fx.Normalize(0.0, 1.0), _Shrink(rngs=nnx.Rngs(augment=0))]
    with pytest.raises(fx.PipelineError, match=r"operators\[1\] \(_Shrink\) give batches"):
        fx.Pipeline(images_source(), ops, batch_size=4)


# -- 3. no record dropped silently -----------------------------------------------------


@pytest.mark.parametrize("sharded", [False, True])
def test_eval_covers_every_record_and_train_drops_the_remainder(sharded):
    import jax
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    sharding = None
    if sharded:
        sharding = NamedSharding(jax.make_mesh((8,), ("data",)), P("data"))
    pipe = fx.Pipeline(images_source(95), batch_size=16, shuffle=True, sharding=sharding)
    train = [host(b) for b in pipe.epoch()]
    assert len(train) == 5 and all(b["valid"].all() for b in train)
    assert pipe.steps_per_epoch == 5
    pipe.eval()
    assert pipe.steps_per_epoch == 6
    evaluated = [host(b) for b in pipe.epoch()]
    ids = np.concatenate([b["id"][b["valid"]] for b in evaluated])
    assert sorted(ids.tolist()) == list(range(95))  # every record, once
    assert [b["image"].shape for b in evaluated] == [b["image"].shape for b in train] + [
        (16, 8, 8, 3)
    ]


def test_drop_remainder_true_and_false_hold_in_both_modes():
    dropping = fx.Pipeline(images_source(10), batch_size=4, drop_remainder=True)
    dropping.eval()
    assert [set(b) for b in dropping.epoch()] == [{"image", "id"}] * 2
    padding = fx.Pipeline(images_source(10), batch_size=4, drop_remainder=False)
    assert [int(b["valid"].sum()) for b in padding.epoch()] == [4, 4, 2]


# -- 4. mixtures that change -----------------------------------------------------------


def mix_pipe(weights, n=(30, 20)):
    sources = [
        fx.ArraySource({"id": np.arange(k) + 1000 * s}, name=f"s{s}") for s, k in enumerate(n)
    ]
    return fx.Pipeline(fx.Mix(sources, weights), batch_size=5, shuffle=True, seed=3)


def per_source(batches):
    ids = np.concatenate([b["id"] for b in batches])
    return [ids[ids < 1000].tolist(), ids[ids >= 1000].tolist()]


@pytest.mark.parametrize("steps", [1, 4, 9, 12])
def test_changed_mix_weights_continue_each_source_exactly(steps):
    old = mix_pipe([0.5, 0.5])
    before = first_batches(old, steps)
    saved = nnx.clone(nnx.state(old))
    new = mix_pipe([0.8, 0.2])
    nnx.update(new, saved)
    after = first_batches(new, 20)
    # Each source's records continue its own order: the same sequence as a source read
    # alone, with no record skipped or repeated within its epochs.
    for s, length in enumerate((30, 20)):
        taken = per_source(before + after)[s]
        for e in range(len(taken) // length):
            epoch = taken[e * length : (e + 1) * length]
            assert len(set(epoch)) == length, f"source {s} epoch {e}: a record repeated"
    # The new weights hold after the switch: 80% of the records come from source 0.
    later = per_source(after)
    assert abs(len(later[0]) - 0.8 * 100) <= 2
    # And the switched stream resumes exactly too.
    partial = mix_pipe([0.8, 0.2])
    nnx.update(partial, saved)
    first_batches(partial, 7)
    resumed = mix_pipe([0.8, 0.2])
    nnx.update(resumed, nnx.clone(nnx.state(partial)))
    for a, b in zip(after[7:], first_batches(resumed, 13), strict=True):
        np.testing.assert_array_equal(a["id"], b["id"])


def test_a_mixture_with_another_source_is_rejected_when_loaded():
    saved = nnx.state(mix_pipe([0.5, 0.5]))
    other = mix_pipe([0.5, 0.5], n=(30, 21))
    with pytest.raises(fx.StateMismatchError, match="the mixture's sources"):
        nnx.update(other, saved)


# -- 5. no data in the state -----------------------------------------------------------


class _ArrayHolder(fx.Source):
    def __init__(self):
        self.name = "holder"
        self.data = jnp.zeros((100, 4))

    def __len__(self):
        return 100

    @property
    def element_spec(self):
        import jax

        return {"x": jax.ShapeDtypeStruct((4,), np.float32)}

    def read(self, indices):
        return {"x": np.asarray(self.data)[indices]}


def test_a_source_holding_nnx_state_is_rejected():
    with pytest.raises(fx.PipelineError, match=r"holder.*holds NNX state.*data"):
        fx.Pipeline(_ArrayHolder(), batch_size=4)


# -- 6. process workers without a __main__ guard ---------------------------------------

SCRIPT = """
import numpy as np
import feedax as fx

def double(record, ctx):
    return {"x": record["x"] * 2}

source = fx.ArraySource({"x": np.zeros((1000, 300), np.float32)})  # about 1 MB to send
pipe = fx.Pipeline(source, batch_size=8, host=fx.HostMap(double, workers=2, backend="process"))
print(next(iter(pipe))["x"].shape)
"""


def test_process_workers_without_a_main_guard_fail_fast_naming_the_guard(tmp_path):
    script = tmp_path / "no_guard.py"
    script.write_text(textwrap.dedent(SCRIPT))
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""}
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=240, env=env
    )
    assert done.returncode != 0
    assert 'if __name__ == "__main__":' in done.stderr
    assert "HostStageError" in done.stderr


# -- 7. what differs, at nnx.update and checkpoint.restore -----------------------------


def small(ops=None, *, batch_size=4, **kw):
    ops = [fx.RandomFlip(rngs=nnx.Rngs(augment=0))] if ops is None else ops
    return fx.Pipeline(images_source(), ops, batch_size=batch_size, **kw)


@pytest.mark.parametrize(
    ("other", "what"),
    [
        (lambda: small(seed=1), "the seed or shuffle"),
        (lambda: small(batch_size=5), "batch_size, drop_remainder or the packing"),
        (lambda: small([fx.RandomFlip(p=0.3, rngs=nnx.Rngs(augment=0))]), "the operators"),
        (lambda: fx.Pipeline(images_source(21), batch_size=4), "the source"),
        (lambda: small(drop_remainder=True), "batch_size, drop_remainder or the packing"),
        (
            lambda: small([fx.RandomFlip(rngs=nnx.Rngs(augment=0)), fx.Invert()]),
            "the operators",
        ),
    ],
)
def test_state_mismatch_names_what_differs(other, what):
    pipe, foreign = small(), other()
    with pytest.raises(fx.StateMismatchError, match=what):
        nnx.update(pipe, nnx.state(foreign))


def test_checkpoint_restore_of_another_pipeline_raises_state_mismatch(tmp_path):
    saved = small()
    fx.checkpoint.save(tmp_path / "a", pipeline=saved)
    with pytest.raises(fx.StateMismatchError, match="seed or shuffle"):
        fx.checkpoint.restore(tmp_path / "a", pipeline=small(seed=5))
    with pytest.raises(fx.StateMismatchError, match="saved by a different pipeline") as error:
        fx.checkpoint.restore(tmp_path / "a", pipeline=small([]))
    assert "partial_restore" not in str(error.value)  # never Orbax's internal advice


def test_a_stream_with_another_shuffle_window_raises_state_mismatch():
    def stream(window):
        records = lambda: ({"x": np.float32(i)} for i in range(40))  # noqa: E731
        return fx.Pipeline(fx.StreamSource(records), batch_size=4, shuffle_window=window)

    with pytest.raises(fx.StateMismatchError, match="shuffle_window"):
        nnx.update(stream(10), nnx.state(stream(20)))
