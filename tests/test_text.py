"""Text sources and tokenizing into a TokenSource, with a tokenizer trained in the test."""

import json

import numpy as np
import pytest

import feedax as fx

LINES = ["alpha beta", "", "gamma", "delta epsilon zeta"]


def test_text_lines_and_files(tmp_path):
    a = tmp_path / "a.txt"
    a.write_text("\n".join(LINES) + "\n")
    b = tmp_path / "b.txt"
    b.write_text("last line without newline")
    src = fx.TextSource([a, b])
    assert len(src) == 5
    assert src.read(np.arange(5))["text"].tolist() == [*LINES, "last line without newline"]
    whole = fx.TextSource([a, b], unit="file")
    assert len(whole) == 2 and whole.read(np.array([1]))["text"][0] == "last line without newline"
    with pytest.raises(IndexError, match="record index 5 is out of range"):
        src.read(np.array([5]))


def test_text_indexing_crosses_chunk_boundaries(tmp_path, monkeypatch):
    from feedax._sources import text

    monkeypatch.setattr(text, "CHUNK", 7)
    path = tmp_path / "t.txt"
    lines = [f"line {i} " + "x" * (i % 5) for i in range(50)]
    path.write_text("\n".join(lines))
    assert fx.TextSource(path).read(np.arange(50))["text"].tolist() == lines


def test_jsonl_fields_types_and_errors(tmp_path):
    path = tmp_path / "d.jsonl"
    rows = [{"text": f"t{i}", "score": i / 10, "n": i} for i in range(6)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    src = fx.JsonlSource(path, fields=["text", "score", "n"])
    batch = src.read(np.array([4, 1]))
    assert batch["text"].tolist() == ["t4", "t1"] and batch["n"].tolist() == [4, 1]
    keep = fx.Filter(lambda m: m["score"] > 0.25, columns=["score"])
    source = fx.JsonlSource(path, fields=["n", "score"])
    pipe = fx.Pipeline(source, batch_size=2, filter=keep, drop_remainder=False)
    kept = [int(i) for b in pipe.epoch() for i, ok in zip(b["n"], b["valid"], strict=True) if ok]
    assert sorted(kept) == [3, 4, 5]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"txt": "no"}\n{oops\n')
    src = fx.JsonlSource(bad)
    with pytest.raises(fx.SourceError, match=r"record index 1 .*has no key 'text'"):
        src.read(np.array([1]))
    with pytest.raises(fx.SourceError, match=r"record index 2 .*not valid JSON"):
        src.read(np.array([2]))


def trained_tokenizer(files):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.train(files, trainers.BpeTrainer(vocab_size=300, show_progress=False))
    return tokenizer


def test_tokenize_with_a_tokenizer_trained_here_then_pack(tmp_path):
    pytest.importorskip("tokenizers")
    import os

    files = sorted(str(p) for p in __import__("pathlib").Path(os.__file__).parent.glob("c*.py"))[:5]
    tokenizer = trained_tokenizer(files)
    texts = fx.TextSource(files, unit="file")
    tokens = fx.tokenize(texts, tokenizer, tmp_path / "tok", eos_id=0, progress=False)
    assert len(tokens) == len(files)
    first = __import__("pathlib").Path(files[0]).read_bytes().decode()
    assert tokens.sequence(0).tolist() == [*tokenizer.encode(first).ids, 0]
    assert tokens._flat.tokens.dtype == np.uint16  # a small vocabulary: two bytes a token
    # Cached: the same source and tokenizer reuse the files.
    mtime = os.path.getmtime(tmp_path / "tok" / "tokens.npy")
    again = fx.tokenize(texts, tokenizer, tmp_path / "tok", eos_id=0, progress=False)
    assert os.path.getmtime(tmp_path / "tok" / "tokens.npy") == mtime
    assert (
        again.lengths(np.arange(len(files))).tolist()
        == tokens.lengths(np.arange(len(files))).tolist()
    )
    pipe = fx.Pipeline(tokens, batch_size=4, pack=fx.Pack(128), drop_remainder=False)
    total = sum(
        int((np.asarray(b["segment_ids"]) > 0)[np.asarray(b["valid"])].sum()) for b in pipe.epoch()
    )
    assert total == int(tokens.lengths(np.arange(len(files))).sum())


def test_tokenize_rejects_what_is_not_text(tmp_path):
    numbers = fx.ArraySource({"text": np.arange(3)})
    with pytest.raises(fx.SourceError, match="record index 0 has a int64 in field 'text'"):
        fx.tokenize(numbers, lambda t: [[1]] * len(t), tmp_path, progress=False)
    with pytest.raises(fx.SourceError, match="tokenizer must be"):
        fx.tokenize(numbers, 5, tmp_path, progress=False)


def test_tokenize_with_a_sentencepiece_model_trained_here(tmp_path):
    spm = pytest.importorskip("sentencepiece")
    import io
    import os
    import pathlib

    files = sorted(str(p) for p in pathlib.Path(os.__file__).parent.glob("c*.py"))[:4]
    lines = [line for f in files for line in pathlib.Path(f).read_text().splitlines() if line]

    def model(vocab):
        proto = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines),
            model_writer=proto,
            vocab_size=vocab,
            model_type="bpe",
            minloglevel=2,
        )
        return spm.SentencePieceProcessor(model_proto=proto.getvalue())

    texts = fx.TextSource(files)
    small = model(300)
    tokens = fx.tokenize(texts, small.encode, tmp_path / "sp", progress=False)
    assert tokens.sequence(0).tolist() == small.encode(texts.read(np.array([0]))["text"][0])
    # Another model behind the same function name is not mistaken for the cached one.
    other = model(400)
    again = fx.tokenize(texts, other.encode, tmp_path / "sp", progress=False)
    assert again.sequence(0).tolist() == other.encode(texts.read(np.array([0]))["text"][0])


def test_tokenize_with_a_tiktoken_encoding_built_here(tmp_path):
    tiktoken = pytest.importorskip("tiktoken")
    import os
    import pathlib

    # tiktoken's named encodings are downloaded; a byte-level one is built from its ranks.
    ranks = {bytes([i]): i for i in range(256)}
    for j, merge in enumerate([b"se", b"lf", b"self", b"in", b"re", b"de", b"def", b" self"]):
        ranks[merge] = 256 + j
    pattern = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\w+| ?\d+| ?[^\s\w\d]+|\s+(?!\S)|\s+"""

    def encoding(name, merges):
        kept = {k: v for k, v in ranks.items() if v < 256 + merges}
        return tiktoken.Encoding(name, pat_str=pattern, mergeable_ranks=kept, special_tokens={})

    files = sorted(str(p) for p in pathlib.Path(os.__file__).parent.glob("c*.py"))[:3]
    texts = fx.TextSource(files)
    rich = encoding("rich", 8)
    tokens = fx.tokenize(texts, rich.encode_batch, tmp_path / "tk", progress=False)
    first = texts.read(np.array([0]))["text"][0]
    assert tokens.sequence(0).tolist() == rich.encode(first)
    assert rich.decode(tokens.sequence(0).tolist()) == first
    poor = encoding("poor", 2)  # another encoding behind the same method name: not cached
    again = fx.tokenize(texts, poor.encode_batch, tmp_path / "tk", progress=False)
    assert again.sequence(0).tolist() == poor.encode(first) != rich.encode(first)
