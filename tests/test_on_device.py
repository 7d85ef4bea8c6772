"""Data held on the device: order, gather and operators in one program, same stream."""

import jax
import numpy as np
import pytest
from flax import nnx
from helpers import first_batches, make_pipeline
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import feedax as fx


def assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for k in x:
            np.testing.assert_allclose(x[k], y[k], rtol=1e-5, atol=1e-5, err_msg=k)


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("drop_remainder", [True, False])
def test_on_device_stream_equals_the_host_stream(shuffle, drop_remainder):
    kw = dict(n=45, batch_size=8, shuffle=shuffle, drop_remainder=drop_remainder)
    steps = 3 * make_pipeline(**kw).steps_per_epoch  # three epochs
    assert_same(
        first_batches(make_pipeline(**kw), steps),
        first_batches(make_pipeline(**kw, on_device=True), steps),
    )


@pytest.mark.parametrize("devices", [2, 8])
def test_on_device_sharded_equals_unsharded(devices):
    mesh = jax.make_mesh((devices,), ("data",), devices=jax.devices()[:devices])
    sharding = NamedSharding(mesh, P("data"))
    sharded = first_batches(make_pipeline(40, batch_size=8, on_device=True, sharding=sharding), 7)
    assert_same(first_batches(make_pipeline(40, batch_size=8), 7), sharded)
    pipe = make_pipeline(40, batch_size=8, on_device=True, sharding=sharding)
    batch = next(iter(pipe))
    assert batch["image"].sharding.is_equivalent_to(sharding, 4)
    assert len(batch["image"].addressable_shards) == devices


def test_on_device_resumes_at_every_step():
    reference = first_batches(make_pipeline(30, batch_size=8, on_device=True), 8)
    for k in range(8):
        pipe = make_pipeline(30, batch_size=8, on_device=True)
        it = iter(pipe)
        for _ in range(k):
            next(it)
        fresh = make_pipeline(30, batch_size=8, on_device=True)
        nnx.update(fresh, nnx.clone(nnx.state(pipe)))
        assert_same(reference[k:], first_batches(fresh, 8 - k))


def test_on_device_data_is_not_state():
    small = nnx.state(make_pipeline(50, on_device=True))
    large = nnx.state(make_pipeline(5000, on_device=True))
    assert jax.tree.structure(small) == jax.tree.structure(large)


def test_object_fields_cannot_go_on_device():
    raw = np.array([b"ab", b"c"], dtype=object)
    with pytest.raises(fx.SourceError, match="field 'raw' holds object values"):
        fx.ArraySource({"raw": raw}, on_device=True)
