"""Every source, through fx.Pipeline, keeps the pipeline's guarantees over the same data."""

import pickle

import jax
import numpy as np
import pytest
from flax import nnx
from helpers import host
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from source_fixtures import KINDS, N, build, decode_with_id, make_data, passthrough, write_all

import feedax as fx

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


def per_record(batches):
    """(epoch-local batch stream) -> id -> (image bytes, label)."""
    out = {}
    for b in batches:
        for image, label, i in zip(b["image"], b["label"], b["id"], strict=True):
            assert int(i) not in out
            out[int(i)] = (image.tobytes(), int(label))
    return out


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


@pytest.mark.parametrize("shuffle", [False, True])
def test_every_index_once_per_epoch(sources, kind, shuffle):
    pipe = pipeline(sources[kind], batch_size=5, shuffle=shuffle, drop_remainder=False)
    orders = []
    for _ in range(2):
        ids = np.concatenate([host(b)["id"][host(b)["valid"]] for b in pipe.epoch()])
        assert sorted(ids.tolist()) == list(range(N))
        orders.append(ids.tolist())
    if shuffle:
        assert orders[0] != orders[1] and orders[0] != list(range(N))
    else:
        assert orders == [list(range(N))] * 2


def test_resume_at_every_step(sources, kind):
    source = sources[kind]
    total = 7  # 3 steps per epoch: crosses two epoch boundaries
    reference = take(iter(pipeline(source)), total)
    for k in range(total):
        pipe = pipeline(source)
        it = iter(pipe)
        take(it, k)
        saved = nnx.clone(nnx.state(pipe))
        it.close()
        fresh = pipeline(source)
        nnx.update(fresh, saved)
        got = take(iter(fresh), total - k)
        for e, g in zip(reference[k:], got, strict=True):
            assert e.keys() == g.keys()
            for field in e:
                np.testing.assert_array_equal(e[field], g[field], err_msg=f"{kind} k={k} {field}")


def test_per_record_outputs_do_not_depend_on_batch_size(sources, kind):
    outputs = [
        per_record(map(host, pipeline(sources[kind], batch_size=b).epoch())) for b in (1, 3, 8)
    ]
    assert sorted(outputs[0]) == list(range(N))
    assert outputs[0] == outputs[1] == outputs[2]
    flipped = sum(outputs[0][i][0] != DATA["image"][i].tobytes() for i in range(N))
    assert 0 < flipped < N  # the augmentation really ran, per record


@pytest.mark.parametrize("devices", [1, 2, 4])
def test_sharded_batches_equal_unsharded(sources, kind, devices):
    mesh = jax.make_mesh((devices,), ("data",), devices=jax.devices()[:devices])
    sharding = NamedSharding(mesh, P("data"))
    plain = take(iter(pipeline(sources[kind])), 4)
    it = iter(pipeline(sources[kind], sharding=sharding))
    for expected in plain:
        batch = next(it)
        assert len(batch["image"].addressable_shards) == devices
        got = host(batch)
        for field in expected:
            np.testing.assert_array_equal(expected[field], got[field], err_msg=field)


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


def test_source_pickles_after_reading_and_reads_the_same(sources, kind):
    source = sources[kind]
    indices = np.array([5, 0, 23, 11])
    before = source.read(indices)  # opens files / fills caches in this process
    clone = pickle.loads(pickle.dumps(source))
    after = clone.read(indices)
    assert before.keys() == after.keys()
    for field in before:
        np.testing.assert_array_equal(before[field], after[field])


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
