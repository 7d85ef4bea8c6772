"""feedax.prepare: corpora prepared with Apache Beam (DirectRunner), read back exactly."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import first_batches
from test_text import trained_tokenizer

import feedax as fx

beam = pytest.importorskip("apache_beam", reason="the beam extra is part of the dev install")
from feedax import prepare  # noqa: E402

BAD = 17  # the record the failing function rejects


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A JSONL corpus of 120 documents of the standard library's text, and a tokenizer."""
    root = tmp_path_factory.mktemp("corpus")
    lines = [line.strip() for line in Path(os.__file__).read_text().splitlines() if line.strip()]
    docs = [" ".join(lines[i : i + 1 + i % 7]) for i in range(120)]
    path = root / "docs.jsonl"
    path.write_text("".join(json.dumps({"text": d, "n": i}) + "\n" for i, d in enumerate(docs)))
    tokenizer = trained_tokenizer([os.__file__])
    tokenizer.save(str(root / "tokenizer.json"))
    return path, root / "tokenizer.json", docs, tokenizer


def tokens_or_fail(record, ctx):
    """Tokenizes like TokenizeText; fails on record BAD (a bad input record)."""
    if ctx.index == BAD:
        raise ValueError("not a document")
    return TOKENIZE(record, ctx)


TOKENIZE = None


@pytest.fixture(scope="module")
def prepared(corpus, tmp_path_factory):
    path, tokenizer_file, _, _ = corpus
    global TOKENIZE
    TOKENIZE = fx.TokenizeText(str(tokenizer_file), eos_id=0)
    out = tmp_path_factory.mktemp("prepared")
    manifest = prepare.run(
        fx.JsonlSource(path, fields=("text", "n")), tokens_or_fail, out, num_shards=4, chunk=16
    )
    return out, manifest


def test_every_record_is_written_once_in_index_order_and_failures_are_listed(prepared, corpus):
    out, manifest = prepared
    _, _, docs, tokenizer = corpus
    assert manifest.records_in == 120 and manifest.failed == 1 and manifest.records == 119
    assert manifest.counts == (29, 30, 30, 30)  # contiguous ranges of the input indices
    assert manifest.fields["tokens"].ragged and manifest.fields["n"].shape == ()
    failed = [json.loads(line) for line in (out / "failed.jsonl").read_text().splitlines()]
    assert failed == [{"index": BAD, "error": failed[0]["error"]}]
    assert "ValueError: not a document" in failed[0]["error"]
    source = prepare.load(out)
    assert len(source) == 119
    kept = [i for i in range(120) if i != BAD]
    batch = source.read(np.arange(119))
    assert batch["n"].tolist() == kept
    for j in (0, 16, 17, 118):
        want = [*tokenizer.encode(docs[kept[j]]).ids, 0]
        assert batch["tokens"][j].tolist() == want
    lengths = [len(t) for t in batch["tokens"]]
    assert source.stored_lengths["tokens"].tolist() == lengths


def test_packing_plans_from_the_stored_lengths_without_reading(prepared, monkeypatch):
    out, _ = prepared
    source = prepare.load(out)
    from feedax._sources import _ragged

    monkeypatch.setattr(_ragged, "_cache_path", lambda *a: pytest.fail("indexed by reading"))
    pipe = fx.Pipeline(
        source, batch_size=4, pack=fx.Pack(256, field="tokens"), drop_remainder=False
    )
    real = sum(
        int((np.asarray(b["segment_ids"]) > 0)[np.asarray(b["valid"])].sum()) for b in pipe.epoch()
    )
    assert real == int(source.stored_lengths["tokens"].sum())


def test_the_same_corpus_prepared_again_on_other_workers_is_the_same_stream(
    prepared, corpus, tmp_path
):
    out, manifest = prepared
    path, *_ = corpus
    options = ["--direct_num_workers=2", "--direct_running_mode=multi_threading"]
    again = prepare.run(
        fx.JsonlSource(path, fields=("text", "n")),
        tokens_or_fail,
        tmp_path,
        num_shards=4,
        chunk=7,
        options=options,
    )
    assert again.fingerprint == manifest.fingerprint
    assert again.counts == manifest.counts

    def stream(folder):
        pipe = fx.Pipeline(
            prepare.load(folder),
            batch_size=4,
            shuffle=True,
            seed=3,
            pack=fx.Pack(128, field="tokens"),
        )
        return first_batches(pipe, 6)

    for a, b in zip(stream(out), stream(tmp_path), strict=True):
        np.testing.assert_array_equal(a["tokens"], b["tokens"])


def test_parquet_output_reads_back_like_array_record(prepared, corpus, tmp_path):
    out, manifest = prepared
    path, *_ = corpus
    parquet = prepare.run(
        fx.JsonlSource(path, fields=("text", "n")),
        tokens_or_fail,
        tmp_path,
        num_shards=3,
        format="parquet",
    )
    assert parquet.fingerprint == manifest.fingerprint  # the content, whatever the format
    a, b = prepare.load(out), prepare.load(tmp_path)
    assert type(b).__name__ == "ParquetSource" and len(b) == len(a)
    x, y = a.read(np.arange(0, 119, 5)), b.read(np.arange(0, 119, 5))
    assert x["n"].tolist() == y["n"].tolist()
    assert [t.tolist() for t in x["tokens"]] == [t.tolist() for t in y["tokens"]]


def test_images_are_decoded_by_a_host_function(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(2):
        (tmp_path / "in" / f"class{c}").mkdir(parents=True)
        for i in range(5):
            pixels = rng.integers(0, 256, (20 + i, 30, 3), np.uint8)
            Image.fromarray(pixels).save(tmp_path / "in" / f"class{c}" / f"{i}.png")
    folder = fx.ImageFolderSource(tmp_path / "in")
    decode = fx.DecodeImage(16)
    manifest = prepare.run(folder, decode, tmp_path / "out", num_shards=2)
    assert manifest.fields["image"].shape == (16, 16, 3) and not manifest.fields["image"].ragged
    source = prepare.load(tmp_path / "out")
    got = source.read(np.arange(10))
    for i in (0, 7):
        record = {k: v[0] for k, v in folder.read(np.array([i])).items()}
        want = decode(record, None)
        np.testing.assert_array_equal(got["image"][i], want["image"])
        assert got["label"][i] == want["label"]


def test_beam_counts_the_failures_in_its_metrics(corpus, tmp_path):
    from apache_beam.metrics.metric import MetricsFilter

    path, tokenizer_file, *_ = corpus
    global TOKENIZE
    TOKENIZE = fx.TokenizeText(str(tokenizer_file))
    source = fx.JsonlSource(path, fields=("text", "n"))
    pipeline = beam.Pipeline(
        options=beam.options.pipeline_options.PipelineOptions(flags=[], runner="DirectRunner")
    )
    read = pipeline | prepare.ReadRecords(source, chunk=32)
    mapped = read.records | prepare.MapRecords(tokens_or_fail)
    _ = mapped.records | prepare.WriteShards(str(tmp_path), n=len(source), num_shards=2)
    result = pipeline.run()
    result.wait_until_finish()
    counters = result.metrics().query(MetricsFilter().with_namespace("feedax.prepare"))["counters"]
    values = {c.key.metric.name: c.committed for c in counters}
    assert values == {"records_read": 120, "records_failed": 1}


def test_records_that_disagree_on_a_field_are_an_error_naming_it(tmp_path):
    source = fx.ArraySource({"i": np.arange(6)})

    def shapes(record, ctx):
        return {"x": np.zeros((2, 2) if ctx.index < 3 else (2, 3), np.float32)}

    with pytest.raises(Exception, match=r"field 'x'.*\(2, 2\).*\(2, 3\).*first axis"):
        prepare.run(source, shapes, tmp_path, num_shards=1)


def test_load_names_what_is_missing(tmp_path):
    with pytest.raises(fx.SourceError, match=r"has no manifest.json.*Prepare it again"):
        prepare.load(tmp_path)


def test_without_beam_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "apache_beam", None)
    for name in ("feedax._prepare._run", "feedax._prepare._beam"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    with pytest.raises(ImportError, match=r"pip install 'feedax\[beam\]'"):
        prepare.run  # noqa: B018


def test_the_command_line_tokenizes_a_jsonl_file(corpus, tmp_path):
    path, tokenizer_file, docs, tokenizer = corpus
    out = tmp_path / "cli"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "feedax",
            "prepare",
            str(path),
            str(out),
            "--tokenizer",
            str(tokenizer_file),
            "--shards",
            "2",
            "--",
            "--direct_num_workers=1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "wrote 120 records in 2 array_record files" in result.stdout
    source = prepare.load(out)
    assert source.read(np.array([5]))["tokens"][0].tolist() == tokenizer.encode(docs[5]).ids
