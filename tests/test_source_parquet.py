import jax
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import feedax as fx


def nested(images: np.ndarray) -> pa.Array:
    """(n, *shape) -> nested fixed_size_list column, innermost axis last."""
    array = pa.array(images.ravel())
    for size in reversed(images.shape[1:]):
        array = pa.FixedSizeListArray.from_arrays(array, size)
    return array


def test_nested_lists_become_dimensions_and_bytes_become_objects(tmp_path):
    images = np.arange(7 * 2 * 3 * 2, dtype=np.int16).reshape(7, 2, 3, 2)
    table = pa.table(
        {
            "image": nested(images),
            "ragged_ok": pa.array([[i, i + 1] for i in range(7)]),  # list<int64>, all length 2
            "raw": pa.array([bytes([i]) for i in range(7)]),
            "text": pa.array([f"t{i}" for i in range(7)]),
            "label": pa.array(np.arange(7, dtype=np.int8)),
        }
    )
    pq.write_table(table, tmp_path / "a.parquet", row_group_size=3)
    source = fx.ParquetSource(tmp_path / "a.parquet")
    spec = source.element_spec
    assert spec["image"] == jax.ShapeDtypeStruct((2, 3, 2), np.int16)
    assert spec["ragged_ok"] == jax.ShapeDtypeStruct((2,), np.int64)
    assert spec["raw"].dtype == object and spec["text"].dtype == object
    idx = np.array([6, 0, 4, 4])
    out = source.read(idx)
    np.testing.assert_array_equal(out["image"], images[idx])
    assert out["raw"].tolist() == [b"\x06", b"\x00", b"\x04", b"\x04"]
    assert out["text"].tolist() == ["t6", "t0", "t4", "t4"]
    assert out["label"].dtype == np.int8 and out["label"].tolist() == [6, 0, 4, 4]
    only = fx.ParquetSource(tmp_path / "a.parquet", columns=["label"])
    assert list(only.read(idx)) == ["label"] and only.columns == ["label"]


def test_flat_column_reshaped_by_the_declared_spec(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (5, 4, 4, 3), np.uint8)
    flat = pa.array([row.tolist() for row in images.reshape(5, -1)], pa.list_(pa.uint8()))
    pq.write_table(pa.table({"image": flat}), tmp_path / "f.parquet")
    declared = {"image": jax.ShapeDtypeStruct((4, 4, 3), np.uint8)}
    source = fx.ParquetSource(tmp_path / "f.parquet", element_spec=declared)
    np.testing.assert_array_equal(source.read(np.array([3, 1]))["image"], images[[3, 1]])
    wrong = {"image": jax.ShapeDtypeStruct((5, 5, 3), np.uint8)}
    with pytest.raises(
        fx.SourceError, match=r"record index 0 \(file .*f\.parquet'\): column 'image'"
    ):
        fx.ParquetSource(tmp_path / "f.parquet", element_spec=wrong)


def test_many_files_and_row_groups_with_a_bounded_cache(tmp_path, monkeypatch):
    for part in range(3):
        ids = np.arange(part * 10, part * 10 + 10)
        pq.write_table(pa.table({"id": ids}), tmp_path / f"p{part}.parquet", row_group_size=4)
    pq.write_table(pa.table({"id": pa.array([], pa.int64())}), tmp_path / "p3.parquet")
    reads = []
    original = pq.ParquetFile.read_row_group

    def counting(self, i, *args, **kwargs):
        reads.append(i)
        return original(self, i, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", counting)
    source = fx.ParquetSource(str(tmp_path / "p*.parquet"), cache_row_groups=2)
    assert len(source) == 30
    idx = np.random.default_rng(0).permutation(30)
    assert source.read(idx)["id"].tolist() == idx.tolist()
    assert len(source._groups.cache) <= 2
    reads.clear()
    source.read(np.array([0, 1, 2, 3]))  # one row group
    source.read(np.array([3, 2, 1, 0]))  # cached now
    assert len(reads) == 1


def test_wrong_typed_column_names_the_column_and_file(tmp_path):
    pq.write_table(pa.table({"x": [1.0, 2.0], "label": [0, 1]}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"x": [3.0], "label": ["one"]}), tmp_path / "b.parquet")
    with pytest.raises(fx.SourceError) as info:
        fx.ParquetSource(tmp_path)
    message = str(info.value)
    assert "column 'label'" in message and "b.parquet" in message
    assert "has type string, but int64" in message and "records from index 2 on" in message
    assert fx.ParquetSource(tmp_path, columns=["x"]).read(np.array([2]))["x"].tolist() == [3.0]
    pq.write_table(pa.table({"y": [3.0]}), tmp_path / "c.parquet")
    with pytest.raises(fx.SourceError, match=r"column 'x' is missing from file .*c\.parquet"):
        fx.ParquetSource([tmp_path / "a.parquet", tmp_path / "c.parquet"], columns=["x"])


def test_ragged_and_null_rows_name_their_record_index(tmp_path):
    pq.write_table(pa.table({"v": [[1, 2], [3, 4]]}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"v": [[5, 6], [7, 8], [9]]}), tmp_path / "b.parquet")
    source = fx.ParquetSource(tmp_path)
    with pytest.raises(fx.SourceError, match=r"record index 4 \(file .*b\.parquet'\): column 'v'"):
        source.read(np.array([4]))
    pq.write_table(pa.table({"n": pa.array([1, None, 3])}), tmp_path / "n.parquet")
    with pytest.raises(fx.SourceError, match=r"record index 1 .*column 'n' holds a null value"):
        fx.ParquetSource(tmp_path / "n.parquet")


def test_bad_files_are_named(tmp_path):
    (tmp_path / "junk.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(fx.SourceError, match=r"junk\.parquet.*truncated or not Parquet"):
        fx.ParquetSource(tmp_path / "junk.parquet")
    with pytest.raises(fx.SourceError, match="cache_row_groups must be an int >= 1"):
        fx.ParquetSource(tmp_path / "junk.parquet", cache_row_groups=0)
