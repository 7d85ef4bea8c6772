"""Sources on any filesystem: fsspec URLs and OpenFile objects, tested on memory:// and file://."""

import io
import json
import os
import sys

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fsspec.implementations.memory import MemoryFileSystem
from PIL import Image

import feedax as fx
from feedax import testing

N = 24
RNG = np.random.default_rng(0)
X = RNG.normal(size=(N, 3)).astype(np.float32)
Y = np.arange(N, dtype=np.int64)


@pytest.fixture
def memory():
    fs = fsspec.filesystem("memory")
    yield fs
    fs.store.clear()
    fs.pseudo_dirs.clear()
    fs.pseudo_dirs.append("")


def parquet_bytes(lo, hi):
    buffer = io.BytesIO()
    table = pa.table(
        {"x": pa.FixedSizeListArray.from_arrays(pa.array(X[lo:hi].ravel()), 3), "y": Y[lo:hi]}
    )
    pq.write_table(table, buffer, row_group_size=5)
    return buffer.getvalue()


def check_xy(source):
    assert len(source) == N
    at = np.array([5, 0, 23, 11])
    got = source.read(at)
    np.testing.assert_array_equal(np.stack(got["x"]).reshape(-1, 3), X[at])
    np.testing.assert_array_equal(got["y"], Y[at])


def test_parquet_from_a_memory_url_glob(memory):
    memory.pipe("/data/part-0.parquet", parquet_bytes(0, 14))
    memory.pipe("/data/part-1.parquet", parquet_bytes(14, N))
    source = fx.ParquetSource("memory://data/*.parquet")
    assert source.files == ["memory:///data/part-0.parquet", "memory:///data/part-1.parquet"]
    check_xy(source)
    testing.check_source(source)
    # A directory URL and fsspec OpenFile objects name the same files.
    check_xy(fx.ParquetSource("memory://data"))
    check_xy(fx.ParquetSource(fsspec.open_files("memory://data/*.parquet")))


def test_parquet_through_file_urls_equals_local_paths(tmp_path):
    pq.write_table(pa.table({"y": Y}), tmp_path / "a.parquet", row_group_size=7)
    local = fx.ParquetSource(str(tmp_path / "a.parquet"))
    remote = fx.ParquetSource(f"file://{tmp_path}/a.parquet")
    at = np.arange(N)[::-1]
    np.testing.assert_array_equal(local.read(at)["y"], remote.read(at)["y"])


def test_text_and_jsonl_from_memory(memory):
    lines = [json.dumps({"text": f"record {i}", "label": i}) for i in range(N)]
    memory.pipe("/text/a.jsonl", ("\n".join(lines[:10]) + "\n").encode())
    memory.pipe("/text/b.jsonl", ("\n".join(lines[10:]) + "\n").encode())
    source = fx.JsonlSource("memory://text/*.jsonl", fields=["text", "label"])
    got = source.read(np.array([12, 3]))
    assert list(got["text"]) == ["record 12", "record 3"]
    assert got["label"].tolist() == [12, 3]
    memory.pipe("/text/plain.txt", b"first\nsecond\nthird\n")
    text = fx.TextSource("memory://text/plain.txt")
    assert list(text.read(np.array([2, 0]))["text"]) == ["third", "first"]
    whole = fx.TextSource("memory://text/plain.txt", unit="file")
    assert list(whole.read(np.array([0]))["text"]) == ["first\nsecond\nthird\n"]


def test_npy_from_memory_reads_only_its_rows(memory):
    for name, values in (("x", X), ("y", Y)):
        buffer = io.BytesIO()
        np.save(buffer, values)
        memory.pipe(f"/npy/{name}.npy", buffer.getvalue())
    source = fx.NpySource("memory://npy")
    assert sorted(source.paths) == ["x", "y"]
    check_xy(source)
    testing.check_source(source)


def test_image_folder_from_memory(memory):
    for label in range(2):
        for i in range(4):
            buffer = io.BytesIO()
            Image.fromarray(np.full((6, 6, 3), 40 * label + i, np.uint8)).save(buffer, "PNG")
            memory.pipe(f"/images/class_{label}/{i:02d}.png", buffer.getvalue())
    source = fx.ImageFolderSource("memory://images")
    assert source.classes == ["class_0", "class_1"] and len(source) == 8
    pipe = fx.Pipeline(source, batch_size=4, host=fx.HostMap(fx.DecodeImage(6), workers=2))
    batch = next(iter(pipe))
    assert np.asarray(batch["image"])[:, 0, 0, 0].tolist() == [0, 1, 2, 3]
    assert np.asarray(batch["label"]).tolist() == [0, 0, 0, 0]


def test_listing_happens_once_not_per_epoch(memory, monkeypatch):
    memory.pipe("/c/part-0.parquet", parquet_bytes(0, 14))
    memory.pipe("/c/part-1.parquet", parquet_bytes(14, N))
    calls = []
    for method in ("ls", "glob", "find"):  # listings; opening a file (lazily) is not one
        original = getattr(MemoryFileSystem, method)

        def counted(self, *args, _original=original, _method=method, **kwargs):
            calls.append(_method)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(MemoryFileSystem, method, counted)
    source = fx.ParquetSource("memory://c")
    assert calls  # the listing happened, when the source was built
    built = len(calls)
    pipe = fx.Pipeline(source, batch_size=8, shuffle=True)
    for _ in range(3):
        for _ in pipe.epoch():
            pass
    assert calls[built:] == []


def test_missing_backend_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "gcsfs", None)  # as if not installed (it is not, here)
    with pytest.raises(ImportError, match=r"feedax\[gcs\]"):
        fx.ParquetSource("gs://some-bucket/data/*.parquet")


def test_missing_url_and_unsupported_sources_say_so(memory, tmp_path):
    with pytest.raises(fx.SourceError, match="matches no"):
        fx.ParquetSource("memory://nothing/*.parquet")
    with pytest.raises(fx.SourceError, match="does not exist"):
        fx.NpySource("memory://nothing/x.npy")
    with pytest.raises(fx.SourceError, match="local"):
        fx.TokenSource.from_directory("memory://corpus")
    with pytest.raises(fx.SourceError, match="local"):
        fx.ArrayRecordSource("memory://data/*.array_record")
    assert os.path.isdir(tmp_path)
