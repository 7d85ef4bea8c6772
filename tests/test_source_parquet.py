import jax
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import check_skip_and_resume

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
    assert len(source._store.cache) <= 2
    reads.clear()
    source.read(np.array([0, 1, 2, 3]))  # one row group
    source.read(np.array([3, 2, 1, 0]))  # cached now
    assert len(reads) == 1


def write_parts(tmp_path, damage):
    """Three files of ids 0..9, 10..15 (damaged as ``damage`` says) and 16..29."""
    for name, ids in [("a", range(10)), ("b", range(10, 16)), ("c", range(16, 30))]:
        ids = np.array(ids)
        columns = {"id": ids, "label": ids % 3}
        if name == "b" and damage == "wrong_type":
            columns["label"] = [f"class {i % 3}" for i in ids]
        if name == "b" and damage == "missing_column":
            del columns["label"]
        pq.write_table(pa.table(columns), tmp_path / f"{name}.parquet", row_group_size=4)


CAUSES = {
    "wrong_type": r"column 'label' has type string, but int64 in the first file '.*a\.parquet'",
    "missing_column": r"column 'label' is missing from the file \(it has \['id'\]\)",
}


@pytest.mark.parametrize("damage", sorted(CAUSES))
def test_a_wrong_typed_or_missing_column_fails_per_record_naming_file_column_and_fix(
    tmp_path, damage
):
    write_parts(tmp_path, damage)
    source = fx.ParquetSource(tmp_path)  # the file's rows keep their indices 10..15
    assert len(source) == 30 and source.element_spec["label"].dtype == np.int64
    good = np.array([29, 0, 9, 16])
    assert source.read(good)["id"].tolist() == good.tolist()
    message = (
        rf"ParquetSource: record index 12 \(file '.*b\.parquet'\): {CAUSES[damage]} \(the "
        r"file holds records 10 to 15\)\. Every file needs the selected columns with the first "
        r"file's types: re-write the file with them, select other columns with columns=, or "
        r"pass on_error='skip' to the Pipeline to skip its records\.$"
    )
    with pytest.raises(fx.SourceError, match=message):
        source.read(np.array([3, 12, 20, 10]))  # the first bad index in the batch is named
    with pytest.raises(fx.SourceError, match=r"record index 1[0-5] \(file '.*b\.parquet'\)"):
        list(fx.Pipeline(source, batch_size=4, shuffle=True, seed=0).epoch())
    only_id = fx.ParquetSource(tmp_path, columns=["id"])  # the damage is in another column
    assert only_id.read(np.arange(30))["id"].tolist() == list(range(30))


@pytest.mark.parametrize("damage", sorted(CAUSES))
def test_skip_policy_skips_exactly_the_damaged_file_and_resumes_on_the_same_stream(
    tmp_path, damage
):
    write_parts(tmp_path, damage)

    def pipeline():
        return fx.Pipeline(
            fx.ParquetSource(tmp_path, cache_row_groups=2),
            batch_size=5,
            shuffle=True,
            seed=4,
            drop_remainder=False,
            on_error="skip",
            max_skip_fraction=0.25,
        )

    check_skip_and_resume(pipeline, bad=list(range(10, 16)), n=30, batch_size=5)


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
    pq.write_table(pa.table({"x": [1, 2, 3]}), tmp_path / "a.parquet")
    with pytest.raises(
        fx.SourceError,
        match=r"ParquetSource: cannot read the Parquet metadata of '.*junk\.parquet' \(records "
        r"from index 3 on\): .*truncated or not Parquet, so its row count is unknown and its "
        r"records cannot be numbered \(on_error='skip' cannot skip them\): re-write the file, "
        r"or leave it out of paths\.",
    ):
        fx.ParquetSource([tmp_path / "a.parquet", tmp_path / "junk.parquet"])
    with pytest.raises(fx.SourceError, match="cache_row_groups must be an int >= 1"):
        fx.ParquetSource(tmp_path / "junk.parquet", cache_row_groups=0)


def test_without_a_readable_row_the_source_cannot_be_built(tmp_path):
    pq.write_table(pa.table({"x": pa.array([], pa.int64())}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"x": [0.5, 1.5]}), tmp_path / "b.parquet")
    with pytest.raises(
        fx.SourceError,
        match=r"ParquetSource: no file has readable rows to take the element_spec from: "
        r"'.*b\.parquet': column 'x' has type double, but int64 in the first file "
        r"'.*a\.parquet'\. Re-write the files with the first file's column types\.",
    ):
        fx.ParquetSource(tmp_path)
