"""Packing token sequences into rows: exact, resumable at every step, shard-invariant."""

import jax
import numpy as np
import pytest
from flax import nnx
from helpers import check_resume_at_steps, first_batches, host
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import feedax as fx

L = 64


def corpus(n=300, low=1, high=150, seed=0):
    """Token i of the flat array is i + 1: every token is unique and names its position."""
    lengths = np.random.default_rng(seed).integers(low, high, n)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return fx.TokenSource(np.arange(1, offsets[-1] + 1, dtype=np.int32), offsets)


def pipeline(source=None, *, batch_size=8, seed=0, sharding=None, drop_remainder=False, **kw):
    return fx.Pipeline(
        corpus() if source is None else source,
        batch_size=batch_size,
        shuffle=True,
        seed=seed,
        sharding=sharding,
        drop_remainder=drop_remainder,
        pack=fx.Pack(L, window=64, **kw),
    )


def tokens_of(batches):
    """The real tokens of a list of batches (padding rows and positions left out)."""
    out = []
    for b in batches:
        real = (b["segment_ids"] > 0) & b["valid"][:, None]
        out.append(b["tokens"][real])
    return np.concatenate(out)


@pytest.mark.parametrize("method", ["best_fit", "first_fit", "concat"])
@pytest.mark.parametrize("seed", [0, 1])
def test_every_token_once_per_epoch_over_several_epochs(method, seed):
    source = corpus()
    total = int(source.lengths(np.arange(len(source))).sum())
    pipe = pipeline(source, seed=seed, method=method)
    epochs = [[host(b) for b in pipe.epoch()] for _ in range(3)]
    for batches in epochs:
        assert sorted(tokens_of(batches).tolist()) == list(range(1, total + 1))
        assert all(b["valid"].all() for b in batches[:-1])
    assert not np.array_equal(epochs[0][0]["tokens"], epochs[1][0]["tokens"])  # new order


@pytest.mark.parametrize("method", ["best_fit", "first_fit", "concat"])
def test_segments_positions_and_targets_follow_the_documents(method):
    source = corpus()
    offsets = np.concatenate([source.starts(np.arange(len(source))), [source.starts([0])[0]]])
    offsets[-1] = int(source.lengths(np.arange(len(source))).sum())
    for b in map(host, pipeline(source, method=method).epoch()):
        flat = b["tokens"].astype(np.int64) - 1  # each token names its flat position
        doc = np.searchsorted(offsets, flat, side="right") - 1
        real = b["segment_ids"] > 0
        for row in range(len(flat)):
            ids = b["segment_ids"][row]
            for s in np.unique(ids[ids > 0]):
                at = np.flatnonzero(ids == s)
                assert (np.diff(at) == 1).all() and (np.diff(flat[row, at]) == 1).all()
                assert len(set(doc[row, at].tolist())) == 1  # one document per segment
                np.testing.assert_array_equal(b["positions"][row, at], np.arange(len(at)))
                # Targets: the next token of the segment; none at its last token.
                np.testing.assert_array_equal(
                    b["loss_mask"][row, at], np.arange(len(at)) < len(at) - 1
                )
                np.testing.assert_array_equal(b["targets"][row, at[:-1]], b["tokens"][row, at[1:]])
            assert not ids[real[row].sum() :].any()  # padding only at the end of a row
        assert not b["loss_mask"][~real].any()


def test_best_fit_fills_rows_and_respects_max_segments():
    source = corpus(n=2000, low=8, high=40)
    total = int(source.lengths(np.arange(2000)).sum())
    pipe = fx.Pipeline(source, batch_size=8, pack=fx.Pack(L, window=1024), drop_remainder=False)
    rows = sum(int(b["valid"].sum()) for b in pipe.epoch())
    assert total / (rows * L) > 0.97
    capped = fx.Pipeline(source, batch_size=8, pack=fx.Pack(L, max_segments=2), drop_remainder=True)
    for b in map(host, capped.epoch()):
        assert b["segment_ids"].max() <= 2


def test_resume_at_every_step_of_three_epochs():
    check_resume_at_steps(pipeline, range(1, 3 * pipeline().steps_per_epoch))


def test_rows_do_not_depend_on_the_sharding():
    mesh = jax.make_mesh((8,), ("data",))
    sharded = pipeline(sharding=NamedSharding(mesh, P("data")))
    for a, b in zip(first_batches(pipeline(), 12), first_batches(sharded, 12), strict=True):
        for field in a:
            np.testing.assert_array_equal(a[field], b[field])


def test_truncated_tokens_are_counted_and_the_rest_used_once():
    source = corpus()
    lengths = source.lengths(np.arange(len(source)))
    pipe = pipeline(source, long="truncate")
    batches = [host(b) for b in pipe.epoch()]
    cut = int(np.maximum(lengths - L, 0).sum())
    assert cut > 0 and pipe.truncated_tokens == cut
    assert len(tokens_of(batches)) == int(lengths.sum()) - cut
    assert int(nnx.state(pipe)["truncated"][...]) == cut  # in the state: it resumes


def test_pad_or_truncate_each_sequence_with_one_segment_per_row():
    source = corpus(n=20)
    pipe = fx.Pipeline(source, batch_size=4, pack=fx.Pack(L, max_segments=1, long="truncate"))
    for b in map(host, pipe.epoch()):
        assert set(np.unique(b["segment_ids"]).tolist()) <= {0, 1}


def test_bad_sequences_are_named():
    long_doc = fx.TokenSource(np.ones(200, np.int32), np.array([0, 10, 200]))
    with pytest.raises(fx.SourceError, match=r"record index 1 has 190 tokens.*long='split'"):
        next(iter(fx.Pipeline(long_doc, batch_size=1, pack=fx.Pack(L, long="error"))))
    empty = fx.TokenSource(np.ones(10, np.int32), np.array([0, 10, 10]))
    with pytest.raises(fx.SourceError, match=r"record index 1 is an empty sequence.*Filter"):
        next(iter(fx.Pipeline(empty, batch_size=1, pack=fx.Pack(L), drop_remainder=False)))
    keep = fx.Filter(lambda m: m["length"] > 0, columns=["length"])
    filtered = fx.Pipeline(empty, batch_size=1, pack=fx.Pack(L), filter=keep)
    assert int(next(iter(filtered))["segment_ids"].max()) == 1
    with pytest.raises(fx.SourceError, match="tokens must be a 1-D integer array"):
        fx.TokenSource(np.ones(10, np.float32), np.array([0, 10]))
    with pytest.raises(fx.SourceError, match="sequence 1 must be a 1-D sequence of integer"):
        fx.write_tokens("/tmp/feedax-bad-tokens", [[1, 2], [0.5]])


def test_an_epoch_with_fewer_rows_than_a_batch_is_an_error_not_a_hang():
    small = fx.TokenSource(np.arange(1, 11, dtype=np.int32), np.arange(0, 11, 2))
    pipe = fx.Pipeline(small, batch_size=4, pack=fx.Pack(L), drop_remainder=True)
    with pytest.raises(fx.PipelineError, match="fewer rows than one batch of 4"):
        next(iter(pipe))


def test_a_ragged_field_without_packing_is_an_error_naming_the_ways_out():
    with pytest.raises(fx.PipelineError, match=r"'tokens'.*variable length.*fx.Pack\(length"):
        fx.Pipeline(corpus(), batch_size=4)


def test_write_tokens_round_trips_through_memory_mapped_files(tmp_path):
    sequences = [np.arange(k, dtype=np.int32) for k in (5, 1, 9)]
    source = fx.write_tokens(tmp_path, iter(sequences))
    assert isinstance(source._flat.tokens, np.memmap)
    assert [source.sequence(i).tolist() for i in range(3)] == [s.tolist() for s in sequences]
    assert fx.TokenSource.from_directory(tmp_path).lengths(np.arange(3)).tolist() == [5, 1, 9]


def token_corpus(n, low, high, base, seed):
    lengths = np.random.default_rng(seed).integers(low, high, n)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return fx.TokenSource(base + np.arange(offsets[-1], dtype=np.int32), offsets, name=f"c{base}")


def test_packing_a_mix_uses_every_token_of_each_source_once_per_epoch():
    a, b = token_corpus(80, 5, 60, 0, 1), token_corpus(40, 20, 200, 10**6, 2)
    pipe = fx.Pipeline(fx.Mix([a, b]), batch_size=4, pack=fx.Pack(L), drop_remainder=False)
    got = np.sort(tokens_of([host(x) for x in pipe.epoch()]))
    expected = np.concatenate([np.arange(a.size), 10**6 + np.arange(b.size)])
    np.testing.assert_array_equal(got, expected)


def test_mix_weights_may_count_tokens():
    short, long = token_corpus(2000, 5, 15, 0, 3), token_corpus(400, 90, 110, 10**6, 4)
    for count, share in (("records", 10 / (10 + 100)), ("tokens", 0.5)):
        mix = fx.Mix([short, long], weights=[1, 1], count=count)
        pipe = fx.Pipeline(mix, batch_size=8, shuffle=True, pack=fx.Pack(L))
        tokens = tokens_of(first_batches(pipe, 40))
        assert abs(np.mean(tokens < 10**6) - share) < 0.05, count
    with pytest.raises(fx.SourceError, match="count='tokens' weighs sources by their tokens"):
        fx.Mix([fx.ArraySource({"x": np.arange(3)})] * 2, count="tokens")


@pytest.mark.parametrize("method", ["best_fit", "concat"])
def test_bos_and_eos_frame_every_sequence(method):
    source = corpus(n=60, low=1, high=100)
    lengths = source.lengths(np.arange(60))
    bos, eos = -1, -2
    pipe = fx.Pipeline(
        source,
        batch_size=4,
        drop_remainder=False,
        pack=fx.Pack(L, window=64, method=method, bos_id=bos, eos_id=eos),
    )
    batches = [host(b) for b in pipe.epoch()]
    real = tokens_of(batches)
    assert (real == bos).sum() == (real == eos).sum() == 60  # one of each per sequence
    assert sorted(real[real > 0].tolist()) == list(range(1, int(lengths.sum()) + 1))
    for b in batches:
        for row in range(len(b["tokens"])):
            ids, tokens = b["segment_ids"][row], b["tokens"][row]
            for s in np.unique(ids[ids > 0]):
                seg = tokens[ids == s]
                # A sequence's BOS opens its first piece and its EOS closes its last.
                assert bos not in seg[1:] and eos not in seg[:-1]
                if seg[0] == bos and seg[-1] == eos:
                    assert (np.diff(seg[1:-1].astype(np.int64)) == 1).all()
            np.testing.assert_array_equal(
                b["targets"][row][b["loss_mask"][row]],
                tokens[1:][b["loss_mask"][row][:-1]],
            )


def test_a_parquet_list_column_packs_through_a_cached_length_index(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    lengths = np.random.default_rng(5).integers(1, 150, 120)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    flat = np.arange(1, offsets[-1] + 1, dtype=np.int32)
    column = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(flat))
    path = tmp_path / "corpus.parquet"
    pq.write_table(pa.table({"ids": column, "score": np.arange(120.0)}), path, row_group_size=32)
    source = fx.ParquetSource(path, columns=["ids"], element_spec={"ids": fx.Ragged(np.int32)})
    assert source.read(np.array([3]))["ids"][0].tolist() == flat[offsets[3] : offsets[4]].tolist()
    with pytest.raises(fx.PipelineError, match="variable length"):
        fx.Pipeline(source, batch_size=4)

    def packed():
        return fx.Pipeline(
            source,
            batch_size=4,
            shuffle=True,
            drop_remainder=False,
            pack=fx.Pack(L, field="ids", window=50),
        )

    batches = [host(b) for b in packed().epoch()]
    assert sorted(tokens_of(batches).tolist()) == flat.tolist()
    assert len(list(tmp_path.glob("corpus.parquet.feedax-lengths-ids-*.npy"))) == 1
    reference = first_batches(packed(), 6)
    partial = packed()
    first_batches(partial, 3)
    resumed = packed()
    nnx.update(resumed, nnx.clone(nnx.state(partial)))
    for a, b in zip(reference[3:], first_batches(resumed, 3), strict=True):
        np.testing.assert_array_equal(a["tokens"], b["tokens"])


def test_a_hugging_face_sequence_column_packs():
    datasets = pytest.importorskip("datasets")
    rows = [list(range(1 + 100 * i, 1 + 100 * i + n)) for i, n in enumerate([3, 70, 1, 40, 9])]
    ds = datasets.Dataset.from_dict({"input_ids": rows})
    src = fx.HFSource(ds, columns=["input_ids"], element_spec={"input_ids": fx.Ragged(np.int64)})
    pipe = fx.Pipeline(src, batch_size=2, pack=fx.Pack(L, field="input_ids"), drop_remainder=False)
    got = sorted(tokens_of([host(b) for b in pipe.epoch()]).tolist())
    assert got == sorted(t for r in rows for t in r)


def test_a_host_stage_that_tokenizes_feeds_packing():
    texts = np.array(["a bb ccc", "dddd", "e " * 50, "ff gg"], dtype=object)
    source = fx.ArraySource({"text": texts, "keep": np.array([1, 1, 1, 0])})

    def words(record, ctx):  # a tokenizer: one id per word, variable length
        return {"ids": np.array([len(w) for w in record["text"].split()], np.int32)}

    keep = fx.Filter(lambda m: m["keep"] > 0, columns=["keep"])
    pipe = fx.Pipeline(
        source,
        batch_size=2,
        host=fx.HostMap(words),
        filter=keep,
        drop_remainder=False,
        pack=fx.Pack(16, field="ids", eos_id=0),
    )
    batches = [host(b) for b in pipe.epoch()]
    real = tokens_of(batches)
    assert sorted(real.tolist()) == sorted([1, 2, 3, 0, 4, 0] + [1] * 50 + [0])
    with pytest.raises(fx.PipelineError, match=r"Pack packs field 'tokens' of the host stage"):
        fx.Pipeline(source, batch_size=2, host=fx.HostMap(words), pack=fx.Pack(16))


def test_array_record_records_with_ragged_token_fields_pack(tmp_path):
    pytest.importorskip("array_record")
    rows = [
        np.arange(1 + 1000 * i, 1 + 1000 * i + n, dtype=np.int32)
        for i, n in enumerate([5, 90, 2, 33])
    ]
    paths = fx.write_array_record(str(tmp_path / "tokens.array_record"), [{"ids": r} for r in rows])
    src = fx.ArrayRecordSource(paths, element_spec={"ids": fx.Ragged(np.int32)})
    assert src.read(np.array([1]))["ids"][0].tolist() == rows[1].tolist()
    pipe = fx.Pipeline(src, batch_size=2, pack=fx.Pack(L, field="ids"), drop_remainder=False)
    got = sorted(tokens_of([host(b) for b in pipe.epoch()]).tolist())
    assert got == sorted(np.concatenate(rows).tolist())
    bad = fx.write_array_record(
        str(tmp_path / "bad.array_record"), [{"ids": np.zeros((2, 2), np.int32)}]
    )
    with pytest.raises(fx.SourceError, match=r"record index 0 .*field 'ids' has shape \(2, 2\)"):
        fx.ArrayRecordSource(bad, element_spec={"ids": fx.Ragged(np.int32)}).read(np.array([0]))
