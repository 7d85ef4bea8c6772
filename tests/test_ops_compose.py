"""Composition: order, distinct keys per part, probabilities, errors."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from ops_reference import (
    china,
    jit,
    quick_compiles,  # noqa: F401  (fixture)
    run,
)

import feedax as fx
from feedax import functional as F

N = 64
X = jnp.broadcast_to(jnp.asarray(china(16)), (N, 16, 16, 3))


def test_sequential_applies_its_parts_in_order_on_any_fields():
    op = fx.Sequential([fx.Invert(), fx.Solarize(0.3), fx.OneHot(3)])
    out = run(op, {"image": X[:2], "label": jnp.array([0, 2])})
    np.testing.assert_array_equal(out["image"][0], jit(F.solarize, jit(F.invert, X[0]), 0.3))
    np.testing.assert_array_equal(out["label"], np.eye(3)[[0, 2]])


def test_the_same_part_twice_draws_twice():
    flip = fx.RandomFlip(rngs=nnx.Rngs(augment=0))
    out = np.asarray(run(fx.Sequential([flip, flip]), {"image": X})["image"])
    # With one key the two flips would cancel: every record would be unchanged.
    changed = np.array([not np.array_equal(o, X[0]) for o in out])
    assert 0.3 < changed.mean() < 0.7  # flipped once: p = 2 * 0.5 * 0.5


def test_parts_built_with_the_same_seed_draw_independently():
    a = fx.Brightness(0.5, rngs=nnx.Rngs(augment=0))
    b = fx.Brightness(0.5, rngs=nnx.Rngs(augment=0))
    seq = fx.Sequential([a, fx.Invert(), b])
    ones = jnp.full((N, 1, 1, 3), 0.5)
    # b's draw equals a's alone, but inside the composite they differ.
    np.testing.assert_array_equal(
        run(a, {"image": ones})["image"], run(b, {"image": ones})["image"]
    )
    f1 = np.asarray(run(fx.Sequential([a]), {"image": ones})["image"])[:, 0, 0, 0] / 0.5
    f2 = (
        np.asarray(run(fx.Sequential([fx.Invert(), b]), {"image": ones})["image"])[:, 0, 0, 0] / 0.5
    )
    assert np.corrcoef(f1, f2)[0, 1] < 0.5
    assert run(seq, {"image": ones})["image"].shape == (N, 1, 1, 3)


def test_random_apply_probability_and_eval():
    op = fx.RandomApply(fx.Invert(), p=0.25, rngs=nnx.Rngs(augment=0))
    out = np.asarray(run(op, {"image": X})["image"])
    inverted = np.array([np.array_equal(o, 255 - np.asarray(X[0])) for o in out])
    kept = np.array([np.array_equal(o, X[0]) for o in out])
    assert (inverted | kept).all()
    assert abs(inverted.mean() - 0.25) < 4 * np.sqrt(0.25 * 0.75 / N)
    op.eval()
    np.testing.assert_array_equal(run(op, {"image": X})["image"], X)


def test_random_choice_weights():
    op = fx.RandomChoice(
        [fx.Invert(), fx.Solarize(0.0), fx.Posterize(1)],
        weights=[3, 0, 1],
        rngs=nnx.Rngs(augment=0),
    )
    x = jnp.broadcast_to(jnp.asarray(china(4)), (400, 4, 4, 3))
    out = np.asarray(run(op, {"image": x})["image"])
    inverted = np.mean([np.array_equal(o, 255 - china(4)) for o in out])
    posterized = np.mean([np.array_equal(o, china(4) & 0x80) for o in out])
    assert inverted + posterized == 1.0  # Solarize(0) (weight 0) would also invert: never chosen
    assert abs(inverted - 0.75) < 4 * np.sqrt(0.75 * 0.25 / 400)


def test_nested_composites_and_different_epochs():
    inner = fx.Sequential(
        [fx.RandomCrop(12, rngs=nnx.Rngs(augment=1)), fx.RandomFlip(rngs=nnx.Rngs(augment=1))]
    )
    op = fx.Sequential(
        [
            inner,
            fx.RandomApply(
                fx.ColorJitter(0.4, 0.4, rngs=nnx.Rngs(augment=1)), 0.5, rngs=nnx.Rngs(augment=1)
            ),
        ]
    )
    a = np.asarray(run(op, {"image": X[:8]}, epoch=0)["image"])
    b = np.asarray(run(op, {"image": X[:8]}, epoch=1)["image"])
    assert a.shape == (8, 12, 12, 3) and not np.array_equal(a, b)
    assert len({o.tobytes() for o in a}) == 8


def test_composite_errors():
    with pytest.raises(fx.OperatorError, match="batch operator"):
        fx.Sequential([fx.MixUp(rngs=nnx.Rngs(augment=0))])
    with pytest.raises(fx.OperatorError, match="running statistics"):
        fx.RandomChoice([fx.RunningNormalize(3), fx.Invert()], rngs=nnx.Rngs(augment=0))
    with pytest.raises(fx.OperatorError, match="must keep every field's shape and dtype"):
        run(fx.RandomApply(fx.CenterCrop(8), rngs=nnx.Rngs(augment=0)), {"image": X[:2]})
    with pytest.raises(fx.OperatorError, match="same fields, shapes and dtypes"):
        run(
            fx.RandomChoice([fx.CenterCrop(8), fx.Invert()], rngs=nnx.Rngs(augment=0)),
            {"image": X[:2]},
        )
    with pytest.raises(fx.OperatorError, match="weights must be 2 non-negative"):
        fx.RandomChoice([fx.Invert(), fx.Invert()], weights=[1], rngs=nnx.Rngs(augment=0))
    with pytest.raises(fx.OperatorError, match="non-empty sequence"):
        fx.Sequential([])
