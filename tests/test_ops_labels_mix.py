"""Label operators and the batch operators MixUp / CutMix against NumPy formulas.

References: ``np.eye`` (OneHot), ``(1 - eps) y + eps / K`` (LabelSmoothing), and per
record ``lam x_i + (1 - lam) x_{i-1}`` (MixUp) / the box of ``cutmix_box`` (CutMix) at the
op's own draws, max abs error 1e-6 on floats; the Beta sampler's moments against
Beta(alpha, alpha).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from ops_reference import (
    quick_compiles,  # noqa: F401  (fixture)
    run,
)

import feedax as fx
from feedax._ops.mix import GAMMA_TRIES, sample_beta

K = 4


def test_one_hot_matches_numpy_and_zeroes_out_of_range():
    labels = jnp.array([0, 3, 1, 7, -1])
    out = np.asarray(run(fx.OneHot(K), {"label": labels})["label"])
    np.testing.assert_array_equal(out[:3], np.eye(K)[[0, 3, 1]])
    np.testing.assert_array_equal(out[3:], 0)
    with pytest.raises(fx.OperatorError, match="OneHot: field 'label' has dtype float32"):
        run(fx.OneHot(K), {"label": jnp.zeros(3)})


def test_label_smoothing_matches_the_formula_and_needs_one_hot():
    y = jax.nn.one_hot(jnp.array([2, 0]), K)
    out = run([fx.LabelSmoothing(0.2)], {"label": y})["label"]
    np.testing.assert_allclose(out, 0.8 * np.asarray(y) + 0.2 / K, atol=1e-7)
    with pytest.raises(fx.OperatorError, match=r"Put fx\.OneHot"):
        run(fx.LabelSmoothing(0.2), {"label": jnp.array([1, 2])})


def images(n=8, shape=(6, 6, 3)):
    """Record i is the constant image i / n (so pixels tell where they came from)."""
    return jnp.broadcast_to(
        (jnp.arange(n, dtype=jnp.float32) / n)[:, None, None, None], (n, *shape)
    )


def mix_batch(n=8):
    return {"image": images(n), "label": jax.nn.one_hot(jnp.arange(n) % K, K)}


def lambdas(op, n, epoch=0, valid=None):
    valid = jnp.ones(n, bool) if valid is None else valid
    ctx = fx.RecordContext(jnp.int32(epoch), jnp.arange(n, dtype=jnp.int32), valid)
    return np.asarray(jax.jit(lambda: op._draws(ctx)[1])())


def test_mixup_is_the_convex_combination_with_the_previous_record():
    op = fx.MixUp(0.4, rngs=nnx.Rngs(augment=0))
    batch = mix_batch()
    out = run(op, batch)
    lam = lambdas(op, 8)[:, None]
    x, y = np.asarray(batch["image"]).reshape(8, -1), np.asarray(batch["label"])
    partner = np.roll(np.arange(8), 1)
    np.testing.assert_allclose(
        np.asarray(out["image"]).reshape(8, -1), lam * x + (1 - lam) * x[partner], atol=1e-6
    )
    np.testing.assert_allclose(out["label"], lam * y + (1 - lam) * y[partner], atol=1e-6)


def test_cutmix_label_weights_equal_the_pasted_area():
    op = fx.CutMix(1.0, rngs=nnx.Rngs(augment=0))
    n = 16
    batch = {"image": images(n, (12, 10, 1)), "label": jax.nn.one_hot(jnp.arange(n), n)}
    out = run(op, batch)
    x = np.asarray(out["image"])[..., 0]
    for i in range(n):
        from_partner = np.isclose(x[i], (i - 1) % n / n)
        own = np.isclose(x[i], i / n)
        assert (from_partner | own).all()
        np.testing.assert_allclose(out["label"][i, i], own.mean(), atol=1e-6)
        np.testing.assert_allclose(out["label"][i, (i - 1) % n], from_partner.mean(), atol=1e-6)
        rows, cols = from_partner.any(axis=1).sum(), from_partner.any(axis=0).sum()
        assert rows * cols == from_partner.sum()  # one box
    assert len({float(out["label"][i, i]) for i in range(n)}) > n // 2


@pytest.mark.parametrize(
    "make",
    [
        lambda: fx.MixUp(1.0, rngs=nnx.Rngs(augment=0)),
        lambda: fx.CutMix(1.0, rngs=nnx.Rngs(augment=0)),
    ],
    ids=["MixUp", "CutMix"],
)
def test_padding_rows_are_never_mixed(make):
    batch = mix_batch()
    valid = np.array([1, 1, 1, 1, 1, 1, 0, 0], bool)
    out = fx.apply_operators(make(), batch, indices=np.arange(8), valid=valid)
    # Rows 6, 7 are padding; row 0's partner is row 7 (padding): all three unchanged.
    for i in (0, 6, 7):
        np.testing.assert_array_equal(out["image"][i], batch["image"][i])
        np.testing.assert_array_equal(out["label"][i], batch["label"][i])
    assert not np.array_equal(out["label"][1:6], batch["label"][1:6])


def test_mixup_in_a_pipeline_with_one_hot_first():
    source = fx.ArraySource(
        {"image": np.asarray(images(10) * 255).astype(np.uint8), "label": np.arange(10) % K}
    )
    ops = [fx.OneHot(K), fx.MixUp(0.4, rngs=nnx.Rngs(augment=0))]
    pipe = fx.Pipeline(source, ops, batch_size=5, shuffle=True, seed=1)
    batches = list(pipe.epoch())
    assert len(batches) == 2
    for b in batches:
        assert b["image"].dtype == np.uint8 and b["label"].shape == (5, K)
        np.testing.assert_allclose(b["label"].sum(axis=1), 1, rtol=1e-6)


@pytest.mark.parametrize("alpha", [0.4, 1.0, 3.0])
def test_beta_sampler_moments(alpha):
    u = jax.random.uniform(jax.random.key(1), (20000, 4 * GAMMA_TRIES + 2))
    s = np.asarray(jax.jit(jax.vmap(lambda u: sample_beta(u, alpha)))(u))
    assert abs(s.mean() - 0.5) < 0.01
    var = 1 / (4 * (2 * alpha + 1))
    assert abs(s.var() - var) < 0.05 * var
    # P(s < 0.1) against the Beta CDF (scipy), within 4 standard errors.
    from scipy import stats

    p = stats.beta(alpha, alpha).cdf(0.1)
    assert abs((s < 0.1).mean() - p) < 4 * np.sqrt(p * (1 - p) / len(s))
