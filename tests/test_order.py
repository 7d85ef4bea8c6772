import numpy as np
import pytest

import feedax as fx


@pytest.mark.parametrize("n", [1, 2, 3, 7, 16, 17, 100, 1023, 1024, 1025, 50_000])
@pytest.mark.parametrize("shuffle", [True, False])
def test_order_is_a_permutation(n, shuffle):
    order = fx.EpochOrder(n, seed=3, epoch=5, shuffle=shuffle)
    out = order(np.arange(n))
    assert sorted(out.tolist()) == list(range(n))
    if not shuffle:
        assert out.tolist() == list(range(n))


def test_orders_differ_between_epochs_and_seeds():
    n = 1000
    base = fx.EpochOrder(n, seed=0, epoch=0)(np.arange(n))
    other_epoch = fx.EpochOrder(n, seed=0, epoch=1)(np.arange(n))
    other_seed = fx.EpochOrder(n, seed=1, epoch=0)(np.arange(n))
    assert not np.array_equal(base, other_epoch)
    assert not np.array_equal(base, other_seed)
    # A real shuffle, not a rotation: few records keep their position.
    assert np.mean(base == np.arange(n)) < 0.05


def test_order_is_computed_per_position():
    n = 777
    order = fx.EpochOrder(n, seed=9, epoch=2)
    whole = order(np.arange(n))
    pieces = np.concatenate([order(np.arange(i, min(i + 64, n))) for i in range(0, n, 64)])
    np.testing.assert_array_equal(whole, pieces)
    np.testing.assert_array_equal(order(np.array([5, 700, 5])), whole[[5, 700, 5]])


def test_order_rejects_bad_positions():
    order = fx.EpochOrder(10, seed=0, epoch=0)
    with pytest.raises(IndexError, match=r"positions must lie in \[0, 10\)"):
        order(np.array([10]))
    with pytest.raises(ValueError, match=r"1 to 2\*\*31 records"):
        fx.EpochOrder(0, seed=0, epoch=0)


def test_order_is_roughly_uniform():
    # Position 0 should land on every index about equally often across epochs.
    n, epochs = 10, 4000
    counts = np.bincount(
        [fx.EpochOrder(n, seed=0, epoch=e)(np.array([0]))[0] for e in range(epochs)], minlength=n
    )
    assert counts.min() > epochs / n * 0.7 and counts.max() < epochs / n * 1.3


@pytest.mark.parametrize("n", [1, 5, 1000, 50_000])
def test_device_order_is_bit_identical_to_the_host_order(n):
    import jax
    import jax.numpy as jnp

    from feedax._order import permute, round_keys

    keys = round_keys(7, 3)
    host = fx.EpochOrder(n, seed=7, epoch=3)(np.arange(n))
    device = jax.jit(lambda p, k: permute(jnp, p, k, n))(jnp.arange(n, dtype=jnp.uint32), keys)
    np.testing.assert_array_equal(np.asarray(device), host)


@pytest.mark.parametrize("n", [1, 300, 50_000])
def test_the_chunked_order_equals_the_order_for_any_request(n):
    from feedax._order import ChunkedOrder, EpochOrder

    order = EpochOrder(n, seed=4, epoch=2)
    chunked = ChunkedOrder(order, chunk=1024)
    rng = np.random.default_rng(0)
    for _ in range(50):
        start = int(rng.integers(0, n))
        width = int(rng.choice([1, 256, 2000]))
        consecutive = np.arange(start, min(start + width, n))
        scattered = rng.integers(0, n, 17)
        for positions in (consecutive, scattered, consecutive[::-1]):
            np.testing.assert_array_equal(chunked(positions), order(positions))
    with pytest.raises(IndexError):
        chunked(np.array([n]))
