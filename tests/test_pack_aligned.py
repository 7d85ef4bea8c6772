"""Packing several aligned fields together (seq2seq): inputs and targets of other lengths."""

import numpy as np
import pytest
from helpers import check_resume_at_steps, first_batches, host

import feedax as fx

SIZES = {"inputs": 48, "targets": 24}


def pairs(n=200, seed=0):
    """Record d: inputs d*1000 + 0..a-1, targets d*1000 + 500 + 0..b-1 (each names its record)."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(1, 40, n), rng.integers(0, 20, n)
    b[a % 7 == 0] = 0  # some records have no target tokens
    inputs = [np.arange(k, dtype=np.int32) + d * 1000 for d, k in enumerate(a)]
    targets = [np.arange(k, dtype=np.int32) + d * 1000 + 500 for d, k in enumerate(b)]
    return fx.ArraySource({"inputs": inputs, "targets": targets, "id": np.arange(n)})


def pipeline(source=None, *, seed=0, batch_size=4, sharding=None, **kw):
    return fx.Pipeline(
        pairs() if source is None else source,
        batch_size=batch_size,
        shuffle=True,
        seed=seed,
        sharding=sharding,
        drop_remainder=False,
        pack=fx.Pack(SIZES, window=64, **kw),
    )


def real(batches, field):
    values = []
    for b in batches:
        mask = (b[f"{field}_segment_ids"] > 0) & b["valid"][:, None]
        values.append(b[field][mask])
    return np.sort(np.concatenate(values))


@pytest.mark.parametrize("method", ["best_fit", "first_fit"])
@pytest.mark.parametrize("seed", [0, 3])
def test_every_token_of_every_field_once_per_epoch(method, seed):
    source = pairs(seed=seed)
    everything = source.read(np.arange(len(source)))
    pipe = pipeline(source, seed=seed, method=method)
    for _ in range(2):
        batches = [host(b) for b in pipe.epoch()]
        for field in SIZES:
            want = np.sort(np.concatenate(list(everything[field])))
            np.testing.assert_array_equal(real(batches, field), want)
            assert batches[0][field].shape == (4, SIZES[field])


@pytest.mark.parametrize("method", ["best_fit", "first_fit"])
def test_a_records_fields_share_one_segment_id(method):
    for b in map(host, pipeline(method=method, max_segments=5).epoch()):
        for row in range(len(b["valid"])):
            docs = {}
            for field in SIZES:
                ids, tokens = b[f"{field}_segment_ids"][row], b[field][row]
                assert ids.max() <= 5
                for s in np.unique(ids[ids > 0]):
                    at = np.flatnonzero(ids == s)
                    assert len(set((tokens[at] // 1000).tolist())) == 1
                    docs.setdefault(int(s), set()).add(int(tokens[at][0] // 1000))
                    np.testing.assert_array_equal(b[f"{field}_positions"][row, at], range(len(at)))
            assert all(len(d) == 1 for d in docs.values())  # inputs and targets agree
            ids = b["inputs_segment_ids"][row]
            assert list(np.unique(ids[ids > 0])) == list(range(1, ids.max() + 1))


def test_targets_for_the_chosen_fields_only():
    b = host(next(pipeline(targets=["targets"]).epoch()))
    assert "targets_targets" in b and "targets_loss_mask" in b and "inputs_targets" not in b
    mask = b["targets_loss_mask"]
    np.testing.assert_array_equal(b["targets_targets"][mask], b["targets"][mask] + 1)
    assert set(pipeline(targets=False).output_spec) == {
        f"{f}{k}" for f in SIZES for k in ("", "_segment_ids", "_positions")
    } | {"valid"}


def test_resume_at_every_third_step_of_two_epochs_is_exact():
    check_resume_at_steps(pipeline, range(1, 2 * pipeline().steps_per_epoch, 3))


def test_long_fields_truncate_counted_or_raise_naming_field_and_record():
    source = pairs()
    lengths = {f: np.array([len(v) for v in source.read(np.arange(200))[f]]) for f in SIZES}
    small = {"inputs": 30, "targets": 10}
    pipe = fx.Pipeline(source, batch_size=4, pack=fx.Pack(small, long="truncate"))
    batches = [host(b) for b in pipe.epoch()]
    cut = sum(int(np.maximum(lengths[f] - small[f], 0).sum()) for f in SIZES)
    assert cut > 0 and pipe.truncated_tokens == cut
    kept = sum(len(real(batches, f)) for f in SIZES)
    assert kept == sum(int(v.sum()) for v in lengths.values()) - cut
    bad = int(np.flatnonzero(lengths["targets"] > 10)[0])
    narrow = fx.Pack({"inputs": 48, "targets": 10})  # long="error"
    with pytest.raises(fx.SourceError, match=rf"record index {bad} has \d+ tokens in field 'targ"):
        next(iter(fx.Pipeline(source, batch_size=4, pack=narrow)))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"long": "split"}, "cannot be cut into pieces"),
        ({"method": "concat", "long": "truncate"}, "cannot be cut into pieces"),
        ({"targets": ["labels"]}, "targets must be True, False or names among"),
        ({"field": "inputs"}, "not also field='inputs'"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(fx.PipelineError, match=match):
        fx.Pack(SIZES, **kwargs)


def test_a_record_empty_in_every_field_is_named():
    source = fx.ArraySource({"inputs": [[1, 2], []], "targets": [[3], []]})
    with pytest.raises(fx.SourceError, match="record index 1 is an empty sequence"):
        next(iter(fx.Pipeline(source, batch_size=1, pack=fx.Pack(SIZES))))


def test_parquet_list_columns_pack_aligned(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    source = pairs(n=60)
    everything = source.read(np.arange(60))
    columns = {
        f: pa.array([v.tolist() for v in everything[f]], pa.list_(pa.int32())) for f in SIZES
    }
    pq.write_table(pa.table(columns), tmp_path / "pairs.parquet", row_group_size=16)
    spec = {f: fx.Ragged(np.int32) for f in SIZES}
    parquet = fx.ParquetSource(tmp_path / "pairs.parquet", element_spec=spec)
    from_parquet = [host(b) for b in pipeline(parquet).epoch()]
    in_memory = [host(b) for b in pipeline(fx.ArraySource(everything)).epoch()]
    for a, b in zip(from_parquet, in_memory, strict=True):
        for field in a:
            np.testing.assert_array_equal(a[field], b[field])


def test_a_host_stage_may_make_both_fields():
    text = fx.ArraySource({"pair": np.array(["a bb ccc => x", "dd => yy zz", "e => f"], object)})

    def split(record, ctx):
        source, target = str(record["pair"]).split(" => ")
        return {
            "inputs": np.array([len(w) for w in source.split()], np.int32),
            "targets": np.array([len(w) for w in target.split()], np.int32),
        }

    pack = fx.Pack(SIZES)
    pipe = fx.Pipeline(text, batch_size=2, host=fx.HostMap(split), pack=pack, drop_remainder=False)
    batches = [host(b) for b in pipe.epoch()]
    assert real(batches, "inputs").tolist() == [1, 1, 2, 2, 3]
    assert real(batches, "targets").tolist() == [1, 1, 2, 2]


def test_rows_do_not_depend_on_the_sharding():
    import jax
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    mesh = jax.make_mesh((4,), ("data",))
    sharded = pipeline(sharding=NamedSharding(mesh, P("data")))
    for a, b in zip(first_batches(pipeline(), 6), first_batches(sharded, 6), strict=True):
        for field in a:
            np.testing.assert_array_equal(a[field], b[field])
