"""Filter: records kept by their metadata, planned globally, resumable at every step."""

import jax
import numpy as np
import pytest
from flax import nnx
from helpers import first_batches, host, make_images
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import feedax as fx

N = 103


def source():
    rng = np.random.default_rng(0)
    return fx.ArraySource(
        {
            "image": make_images(N),
            "id": np.arange(N),
            "length": rng.integers(1, 100, N),
        }
    )


def long_enough(columns):
    return columns["length"] >= 40


def pipeline(batch_size=8, sharding=None, **kw):
    ops = [fx.RandomFlip(rngs=nnx.Rngs(augment=1))]
    keep = fx.Filter(long_enough, columns=["length"])
    return fx.Pipeline(
        source(),
        ops,
        batch_size=batch_size,
        shuffle=True,
        seed=4,
        filter=keep,
        sharding=sharding,
        **kw,
    )


def kept():
    lengths = source().read(np.arange(N))["length"]
    return sorted(np.flatnonzero(lengths >= 40).tolist())


@pytest.mark.parametrize("drop_remainder", [True, False])
def test_an_epoch_has_full_batches_of_exactly_the_kept_records(drop_remainder):
    pipe = pipeline(drop_remainder=drop_remainder)
    batches = [host(b) for b in pipe.epoch()]
    good = kept()
    assert len(batches) == pipe.steps_per_epoch
    if drop_remainder:
        assert len(batches) == len(good) // 8
        ids = np.concatenate([b["id"] for b in batches])
        assert len(set(ids.tolist())) == len(ids) and set(ids.tolist()) <= set(good)
    else:
        assert all(b["valid"].all() for b in batches[:-1])
        ids = np.concatenate([b["id"][b["valid"]] for b in batches])
        assert sorted(ids.tolist()) == good  # every kept record, once
    assert all((b["length"] >= 40).all() for b in batches)
    assert pipe.position == (1, 0)


def test_the_filtered_order_is_the_keyed_order_less_the_dropped_records():
    unfiltered = fx.Pipeline(source(), batch_size=N, shuffle=True, seed=4, drop_remainder=True)
    order = host(next(unfiltered.epoch()))["id"].tolist()
    good = set(kept())
    pipe = pipeline(batch_size=1, drop_remainder=True)
    got = [int(b["id"][0]) for b in map(host, pipe.epoch())]
    assert got == [i for i in order if i in good]


def test_resume_at_every_step_across_epochs_gives_the_same_stream():
    steps = 3 * pipeline(drop_remainder=False).steps_per_epoch + 1
    reference = first_batches(pipeline(drop_remainder=False), steps)
    for k in range(1, steps):
        partial = pipeline(drop_remainder=False)
        first_batches(partial, k)
        fresh = pipeline(drop_remainder=False)
        nnx.update(fresh, nnx.clone(nnx.state(partial)))
        for expected, got in zip(reference[k : k + 2], first_batches(fresh, 2), strict=False):
            for field in expected:
                np.testing.assert_array_equal(expected[field], got[field])


def test_batches_do_not_depend_on_the_batch_size_or_the_sharding():
    small = np.concatenate([b["id"] for b in map(host, pipeline(batch_size=8).epoch())])
    large = np.concatenate([b["id"] for b in map(host, pipeline(batch_size=16).epoch())])
    assert large.tolist() == small[: len(large)].tolist()
    mesh = jax.make_mesh((8,), ("data",))
    sharded = pipeline(batch_size=16, sharding=NamedSharding(mesh, P("data")))
    for a, b in zip(
        first_batches(pipeline(batch_size=16), 4), first_batches(sharded, 4), strict=True
    ):
        for field in a:
            np.testing.assert_array_equal(a[field], b[field])


def test_a_filter_on_a_mix_reads_each_sources_metadata():
    a = fx.ArraySource({"id": np.arange(50), "length": np.arange(50)}, name="a")
    b = fx.ArraySource({"id": 1000 + np.arange(30), "length": np.arange(30)}, name="b")
    keep = fx.Filter(lambda m: m["length"] % 2 == 0, columns=["length"])
    pipe = fx.Pipeline(fx.Mix([a, b]), batch_size=5, filter=keep, drop_remainder=False)
    ids = np.concatenate([x["id"][x["valid"]] for x in map(host, pipe.epoch())])
    assert sorted(ids.tolist()) == [*range(0, 50, 2), *range(1000, 1030, 2)]


def test_bad_filters_raise_naming_the_fix():
    missing = fx.Filter(lambda m: m["size"] > 0, columns=["size"])
    with pytest.raises(fx.SourceError, match="no metadata column 'size'"):
        next(iter(fx.Pipeline(source(), batch_size=4, filter=missing)))
    bad = fx.Filter(lambda m: m["length"] * 2, columns=["length"])
    pipe = fx.Pipeline(source(), batch_size=4, filter=bad)
    with pytest.raises(fx.PipelineError, match="must return one bool per record"):
        next(iter(pipe))
    with pytest.raises(fx.PipelineError, match="columns must name"):
        fx.Filter(long_enough, columns=[])
    with pytest.raises(fx.PipelineError, match=r"filter must be an fx\.Filter"):
        fx.Pipeline(source(), batch_size=4, filter=long_enough)
