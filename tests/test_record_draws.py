"""The per-record draws of random operators: a function of (stream, epoch, index) only."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import feedax as fx
from feedax._ops._common import SubContext


def draws(key, epoch, indices, n):
    """``(len(indices), n)`` draws, as the pipeline makes them: vmapped over records."""

    def one(i):
        return fx.RecordContext(jnp.int32(epoch), i, jnp.bool_(True)).uniforms(key, n)

    return np.asarray(jax.jit(jax.vmap(one))(jnp.asarray(indices, jnp.int32)))


@pytest.mark.parametrize("n", [1, 2, 5, 16])
def test_draws_are_uniform_floats_in_the_unit_interval(n):
    u = draws(jax.random.key(3), 0, np.arange(20_000), n)
    assert u.shape == (20_000, n) and u.dtype == np.float32
    assert u.min() >= 0.0 and u.max() < 1.0
    # 20,000 * n draws: the mean is 0.5 within 5 standard errors, the deciles are even.
    assert abs(u.mean() - 0.5) < 5 * np.sqrt(1 / 12 / u.size)
    counts = np.histogram(u, bins=10, range=(0, 1))[0]
    chi2 = ((counts - u.size / 10) ** 2 / (u.size / 10)).sum()
    assert chi2 < 40  # 9 degrees of freedom: p < 1e-5 beyond this


def test_draws_are_independent_across_records_draw_numbers_and_epochs():
    key = jax.random.key(0)
    u = draws(key, 0, np.arange(5_000), 4)
    v = draws(key, 1, np.arange(5_000), 4)
    for a, b in [(u[:, 0], u[:, 1]), (u[:, 0], u[:, 3]), (u[:-1, 0], u[1:, 0]), (u[:, 0], v[:, 0])]:
        assert abs(np.corrcoef(a, b)[0, 1]) < 0.06  # 5,000 pairs: about 4 standard errors


def test_draws_depend_on_stream_epoch_and_index_only():
    key = jax.random.key(7)
    batch = draws(key, 2, [9, 4, 9, 1000], 3)
    np.testing.assert_array_equal(batch[0], batch[2])  # same record, other position
    np.testing.assert_array_equal(batch[1], draws(key, 2, [4], 3)[0])  # another batch
    eager = fx.RecordContext(jnp.int32(2), jnp.int32(1000), jnp.bool_(True)).uniforms(key, 3)
    np.testing.assert_array_equal(batch[3], np.asarray(eager))  # jitted or not
    # Fewer draws are a prefix of more: a record's first draws do not depend on n.
    np.testing.assert_array_equal(draws(key, 2, [4], 2)[0], batch[1][:2])
    others = [draws(key, 3, [9], 3)[0], draws(jax.random.key(8), 2, [9], 3)[0], batch[1]]
    for other in others:
        assert not np.isin(other, batch[0]).any()


def test_parts_of_a_composite_get_their_own_draws():
    key = jax.random.key(1)
    ctx = fx.RecordContext(jnp.int32(0), jnp.int32(5), jnp.bool_(True))
    parts = [SubContext(ctx.epoch, ctx.index, ctx.valid, path=p) for p in [(0,), (1,), (0, 0)]]
    all_draws = [np.asarray(c.uniforms(key, 2)) for c in [ctx, *parts]]
    assert len({tuple(d.tolist()) for d in all_draws}) == 4


def test_other_prng_implementations_fall_back_to_the_record_key():
    key = jax.random.key(0, impl="rbg")
    ctx = fx.RecordContext(jnp.int32(1), jnp.int32(5), jnp.bool_(True))
    np.testing.assert_array_equal(
        np.asarray(ctx.uniforms(key, 3)), np.asarray(jax.random.uniform(ctx.key(key), (3,)))
    )
