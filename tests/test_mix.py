"""Mix: exact weighted interleave, each source in its own epochs, resumable."""

import jax
import numpy as np
import pytest
from flax import nnx
from helpers import first_batches
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import feedax as fx

SIZES = (30, 7, 12)


def sources(image=False):
    out = []
    for s, n in enumerate(SIZES):
        fields = {"src": np.full(n, s, np.int32), "i": np.arange(n, dtype=np.int32)}
        if image:  # identical content in every source: only the identity differs
            fields["image"] = np.zeros((n, 6, 6, 1), np.float32) + np.arange(36).reshape(6, 6, 1)
        out.append(fx.ArraySource(fields, name=f"s{s}"))
    return out


def mixed(batch_size=6, weights=(5, 3, 2), shuffle=True, ops=(), image=False, **kw):
    return fx.Pipeline(
        fx.Mix(sources(image), weights=list(weights)),
        list(ops),
        batch_size=batch_size,
        shuffle=shuffle,
        seed=4,
        **kw,
    )


def test_proportions_are_exact_over_any_window():
    batches = first_batches(mixed(batch_size=10), 30)
    src = np.concatenate([b["src"] for b in batches])
    counts = np.bincount(src, minlength=3)
    np.testing.assert_array_equal(counts, [150, 90, 60])
    for start in range(0, 300 - 40, 13):
        window = np.bincount(src[start : start + 40], minlength=3)
        assert np.all(np.abs(window - np.array([20, 12, 8])) <= 2), (start, window)


def test_every_record_of_every_source_once_per_its_own_epoch():
    batches = first_batches(mixed(batch_size=10), 30)
    src = np.concatenate([b["src"] for b in batches])
    idx = np.concatenate([b["i"] for b in batches])
    for s, n in enumerate(SIZES):
        seen = idx[src == s]
        full = len(seen) // n
        assert full >= 1
        for e in range(full):
            assert sorted(seen[e * n : (e + 1) * n].tolist()) == list(range(n)), (s, e)
        assert not np.array_equal(seen[:n], seen[n : 2 * n]) or full < 2  # new order each epoch


def test_without_shuffle_each_source_is_read_in_order():
    batches = first_batches(mixed(batch_size=10, shuffle=False), 6)
    src = np.concatenate([b["src"] for b in batches])
    idx = np.concatenate([b["i"] for b in batches])
    seen = idx[src == 0]
    assert seen.tolist() == [i % 30 for i in range(len(seen))]


def test_resume_at_every_step():
    reference = first_batches(mixed(), 14)
    for k in range(14):
        pipe = mixed()
        first_batches(pipe, k)
        fresh = mixed()
        nnx.update(fresh, nnx.clone(nnx.state(pipe)))
        for e, g in zip(reference[k:], first_batches(fresh, 14 - k), strict=True):
            np.testing.assert_array_equal(e["src"], g["src"])
            np.testing.assert_array_equal(e["i"], g["i"])


def test_keys_distinguish_sources_and_source_epochs_and_ignore_batch_size():
    def draws(batch_size):
        pipe = mixed(
            batch_size=batch_size,
            ops=[fx.RandomCrop(4, rngs=nnx.Rngs(augment=1))],
            image=True,
            shuffle=False,
        )
        out = {}
        for b in first_batches(pipe, 120 // batch_size):
            for s, i, img in zip(b["src"], b["i"], b["image"], strict=True):
                out.setdefault((int(s), int(i)), []).append(img.tobytes())
        return out

    a, b = draws(6), draws(4)
    assert a == b  # batch size does not change any record's augmentation
    # Record 0 of each source: same content, different identity -> not all crops equal.
    assert len({a[(s, 0)][0] for s in range(3)}) > 1
    # The small source ran several epochs: its record 0 got new draws in its later epochs.
    assert len(set(a[(1, 0)])) > 1


def test_sharded_mix_equals_unsharded():
    mesh = jax.make_mesh((2,), ("data",), devices=jax.devices()[:2])
    sharded = first_batches(mixed(sharding=NamedSharding(mesh, P("data"))), 8)
    for e, g in zip(first_batches(mixed(), 8), sharded, strict=True):
        np.testing.assert_array_equal(e["i"], g["i"])
        np.testing.assert_array_equal(e["src"], g["src"])


def test_mix_errors():
    a = fx.ArraySource({"x": np.zeros(5, np.int32)}, name="a")
    b = fx.ArraySource({"x": np.zeros(5, np.float32)}, name="b")
    with pytest.raises(fx.SourceError, match="Mixed sources need the same fields"):
        fx.Mix([a, b])
    with pytest.raises(fx.SourceError, match="weights must be one positive number per source"):
        fx.Mix([a, a], weights=[1, 0])
    with pytest.raises(fx.SourceError, match="non-empty list of feedax Sources"):
        fx.Mix([])
