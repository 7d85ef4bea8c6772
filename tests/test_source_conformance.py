"""Every source, through fx.Pipeline, keeps the pipeline's guarantees over the same data."""

import pickle

import jax
import numpy as np
import pytest
from flax import nnx
from helpers import host
from source_fixtures import KINDS, N, build, decode_with_id, make_data, passthrough, write_all

import feedax as fx
from feedax import testing

DATA = make_data()


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    return write_all(str(tmp_path_factory.mktemp("formats")), DATA)


@pytest.fixture(scope="module")
def sources(written):
    return {kind: build(kind, written, DATA) for kind in KINDS}


@pytest.fixture(params=KINDS)
def kind(request):
    return request.param


def pipeline(source, *, batch_size=8, shuffle=True, augment=True, sharding=None, **kw):
    ops = [fx.RandomFlip(rngs=nnx.Rngs(augment=3))] if augment else []
    stage = (
        fx.HostMap(decode_with_id, workers=2) if isinstance(source, fx.ImageFolderSource) else None
    )
    return fx.Pipeline(
        source,
        ops,
        batch_size=batch_size,
        shuffle=shuffle,
        seed=7,
        host=stage,
        sharding=sharding,
        **kw,
    )


def take(it, k):
    return [host(next(it)) for _ in range(k)]


def test_every_source_is_in_the_suite():
    assert set(KINDS) == {"array", "npy", "arrayrecord", "parquet", "imagefolder", "hf"}


def test_records_are_the_data_in_the_order_asked(sources, kind):
    source = sources[kind]
    assert len(source) == N
    indices = np.random.default_rng(1).permutation(N)[:10]
    raw = source.read(indices)
    if kind == "imagefolder":
        assert source.class_to_index == {"class_0": 0, "class_1": 1, "class_2": 2}
        assert [p.rsplit("/", 1)[-1] for p in raw["path"]] == [f"{i:03d}.png" for i in indices]
    else:
        assert set(raw) == {"image", "label", "id"}
        np.testing.assert_array_equal(raw["id"], indices)
        np.testing.assert_array_equal(raw["image"], DATA["image"][indices])
        assert source.element_spec["image"].shape == (8, 8, 3)
        assert source.element_spec["image"].dtype == np.uint8
    np.testing.assert_array_equal(raw["label"], DATA["label"][indices])
    for batch in pipeline(source, augment=False).epoch():
        b = host(batch)
        np.testing.assert_array_equal(b["image"], DATA["image"][b["id"]])
        np.testing.assert_array_equal(b["label"], DATA["label"][b["id"]])


def test_out_of_range_index_names_the_source_and_index(sources, kind):
    source = sources[kind]
    for bad in (N, -1):
        with pytest.raises(IndexError, match=f"{source.name}: record index {bad} is out of range"):
            source.read(np.array([0, bad]))


def test_source_meets_the_contract(sources, kind):
    """feedax.testing.check_source, with augmentation that must follow the records."""
    source = sources[kind]
    stage = fx.HostMap(decode_with_id, workers=2) if kind == "imagefolder" else None
    testing.check_source(
        source, host=stage, operators=lambda: [fx.RandomFlip(rngs=nnx.Rngs(augment=3))]
    )


@pytest.mark.parametrize("shuffle", [False, True])
def test_unshuffled_order_is_the_index_order(sources, kind, shuffle):
    pipe = pipeline(sources[kind], batch_size=5, shuffle=shuffle, drop_remainder=False)
    orders = [
        np.concatenate([host(b)["id"][host(b)["valid"]] for b in pipe.epoch()]).tolist()
        for _ in range(2)
    ]
    if shuffle:
        assert orders[0] != orders[1] and orders[0] != list(range(N))
    else:
        assert orders == [list(range(N))] * 2


def test_state_is_small_and_holds_no_data(sources, kind):
    pipe = pipeline(sources[kind])
    take(iter(pipe), 2)
    state = nnx.state(pipe)
    leaves = jax.tree.leaves(state)
    sizes = [
        np.asarray(
            jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x
        ).nbytes
        for x in leaves
    ]
    assert sum(sizes) < 256
    assert len(jax.tree.leaves(nnx.state(pipe.source))) == 0
    assert len(pickle.dumps(nnx.clone(state))) < 4096


def test_process_workers_read_the_same(sources, kind):
    fn = decode_with_id if kind == "imagefolder" else passthrough

    def run(backend, workers):
        stage = fx.HostMap(fn, workers=workers, backend=backend)
        pipe = fx.Pipeline(sources[kind], batch_size=8, shuffle=True, seed=1, host=stage)
        return [host(b) for b in pipe.epoch()]

    expected = run("thread", 0)
    for got in (run("thread", 3), run("process", 1)):
        for e, g in zip(expected, got, strict=True):
            for field in e:
                np.testing.assert_array_equal(e[field], g[field], err_msg=field)
