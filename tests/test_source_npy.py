import os

import numpy as np
import pytest

import feedax as fx


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def test_dict_of_files_and_directory_give_the_same_records(tmp_path):
    images = np.arange(10 * 2 * 2, dtype=np.float32).reshape(10, 2, 2)
    np.save(tmp_path / "image.npy", images)
    np.save(tmp_path / "label.npy", np.arange(10, dtype=np.int16))
    by_dir = fx.NpySource(tmp_path)
    by_dict = fx.NpySource({"x": tmp_path / "image.npy", "label": str(tmp_path / "label.npy")})
    assert set(by_dir.element_spec) == {"image", "label"}
    assert by_dict.element_spec["x"].shape == (2, 2)
    assert by_dict.element_spec["label"].dtype == np.int16
    idx = np.array([9, 0, 4])
    np.testing.assert_array_equal(by_dir.read(idx)["image"], images[idx])
    np.testing.assert_array_equal(by_dict.read(idx)["x"], images[idx])
    assert by_dict.read(idx)["label"].tolist() == [9, 0, 4]
    assert by_dir.paths["label"].endswith("label.npy")


def test_a_file_larger_than_what_we_load_is_memory_mapped_not_read(tmp_path):
    rows, row_shape = 262_144, (64, 64)  # 1 GiB of uint8, sparse on disk
    big = np.lib.format.open_memmap(tmp_path / "image.npy", "w+", np.uint8, (rows, *row_shape))
    marked = np.arange(0, rows, 4096)
    big[marked, 0, 0] = (marked // 4096).astype(np.uint8)  # a few real bytes to read back
    big.flush()
    del big
    np.save(tmp_path / "id.npy", np.arange(rows, dtype=np.int64))
    size = os.path.getsize(tmp_path / "image.npy")
    assert size > 2**30

    warm = fx.ArraySource({"image": np.zeros((64, *row_shape), np.uint8), "id": np.arange(64)})
    next(fx.Pipeline(warm, batch_size=64).epoch())  # compile outside the measurement

    before = rss_bytes()
    source = fx.NpySource(tmp_path)
    pipe = fx.Pipeline(source, batch_size=64, shuffle=True, seed=0)
    seen = []
    for _, batch in zip(range(20), pipe, strict=False):
        seen.append(np.asarray(batch["id"]))
    growth = rss_bytes() - before
    ids = np.concatenate(seen)
    assert len(set(ids.tolist())) == 20 * 64
    assert growth < 150 * 2**20, f"RSS grew by {growth / 2**20:.0f} MiB reading a {size} B file"
    np.testing.assert_array_equal(source.read(marked[:8])["image"][:, 0, 0], np.arange(8))


def test_bad_files_are_named(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros(5))
    np.save(tmp_path / "b.npy", np.zeros(6))
    with pytest.raises(fx.SourceError, match=r"same number of records.*'a': 5.*'b': 6"):
        fx.NpySource(tmp_path)
    with pytest.raises(fx.SourceError, match="does not exist"):
        fx.NpySource({"x": tmp_path / "missing.npy"})
    np.save(tmp_path / "obj.npy", np.array([b"x", None], dtype=object), allow_pickle=True)
    with pytest.raises(fx.SourceError, match=r"cannot memory-map field 'obj'.*obj\.npy"):
        fx.NpySource({"obj": tmp_path / "obj.npy"})
    (tmp_path / "empty").mkdir()
    with pytest.raises(fx.SourceError, match=r"holds no \.npy files"):
        fx.NpySource(tmp_path / "empty")
    with pytest.raises(IndexError, match=r"NpySource: record index 5 is out of range"):
        fx.NpySource({"a": tmp_path / "a.npy"}).read(np.array([1, 5]))
