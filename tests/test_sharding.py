import jax
import numpy as np
import pytest
from conftest import host, make_pipeline
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import feedax as fx


def data_sharding(devices: int) -> NamedSharding:
    mesh = jax.make_mesh((devices,), ("data",), devices=jax.devices()[:devices])
    return NamedSharding(mesh, P("data"))


def test_eight_emulated_devices_are_available():
    assert jax.device_count() == 8


@pytest.mark.parametrize("devices", [2, 8])
@pytest.mark.parametrize("drop_remainder", [True, False])
def test_sharded_batches_equal_unsharded_ones(devices, drop_remainder):
    kw = dict(n=60, batch_size=16, drop_remainder=drop_remainder)
    plain = make_pipeline(**kw)
    sharded = make_pipeline(**kw, sharding=data_sharding(devices))
    for _ in range(2):
        for a, b in zip(plain.epoch(), sharded.epoch(), strict=True):
            assert b["image"].sharding.is_equivalent_to(data_sharding(devices), 4)
            assert len(b["image"].addressable_shards) == devices
            for k in a:
                # Running statistics are reduced across devices, so float sums may differ
                # in the last bits; everything else is bit-identical.
                np.testing.assert_allclose(np.asarray(a[k]), np.asarray(b[k]), rtol=1e-5, atol=1e-5)
    stats_plain = plain.operators[2].mean[...]
    stats_sharded = sharded.operators[2].mean[...]
    np.testing.assert_allclose(stats_plain, stats_sharded, rtol=1e-5)


def test_sharded_stream_resumes_unsharded():
    sharded = make_pipeline(40, batch_size=8, sharding=data_sharding(8))
    it = iter(sharded)
    next(it)
    from flax import nnx

    plain = make_pipeline(40, batch_size=8)
    nnx.update(plain, nnx.clone(nnx.state(sharded)))
    expected = [host(next(it)) for _ in range(3)]
    got = [host(b) for b, _ in zip(plain, range(3), strict=False)]
    for e, g in zip(expected, got, strict=True):
        np.testing.assert_array_equal(e["id"], g["id"])


def test_batch_size_must_split_across_devices():
    with pytest.raises(fx.PipelineError, match="cannot be split by the sharding"):
        make_pipeline(40, batch_size=12, sharding=data_sharding(8))
