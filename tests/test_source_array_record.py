import os
import pickle
import re

import jax
import numpy as np
import pytest
from helpers import check_skip_and_resume

import feedax as fx


def records(n):
    rng = np.random.default_rng(0)
    for i in range(n):
        yield {
            "image": rng.integers(0, 256, (4, 4, 3), np.uint8),
            "label": i,
            "jpeg": bytes([i % 256]) * (i + 1),
            "caption": f"record {i}",
        }


def test_codec_round_trips_arrays_numbers_bytes_and_str():
    record = {
        "a": np.arange(6, dtype=np.float16).reshape(2, 3),
        "s": np.int32(7),
        "i": 3,
        "f": 0.5,
        "b": True,
        "raw": b"\x00\xff",
        "text": "hé",
    }
    out = fx.decode_record(fx.encode_record(record))
    np.testing.assert_array_equal(out["a"], record["a"])
    assert out["a"].dtype == np.float16 and out["s"].dtype == np.int32 and out["s"].shape == ()
    assert out["i"].dtype == np.int64 and out["f"].dtype == np.float64 and out["b"].dtype == bool
    assert out["raw"] == b"\x00\xff" and out["text"] == "hé"
    with pytest.raises(fx.SourceError, match="cannot encode a value of type set"):
        fx.encode_record({"x": {1, 2}})
    with pytest.raises(fx.SourceError, match="cannot encode an array of dtype object"):
        fx.encode_record({"x": np.array([b"a", None], dtype=object)})


def test_writer_splits_an_iterator_into_contiguous_shards(tmp_path):
    paths = fx.write_array_record(
        tmp_path / "out-{shard}-of-{num_shards}.ar", records(10), num_shards=3, num_records=10
    )
    assert [os.path.basename(p) for p in paths] == [
        "out-0-of-3.ar",
        "out-1-of-3.ar",
        "out-2-of-3.ar",
    ]
    source = fx.ArrayRecordSource(paths)
    assert len(source) == 10
    spec = source.element_spec
    assert spec["image"] == jax.ShapeDtypeStruct((4, 4, 3), np.uint8)
    assert spec["jpeg"].dtype == object and spec["caption"].dtype == object
    expected = list(records(10))
    idx = np.array([9, 3, 0, 6, 3])  # across all shards, with a repeat, out of order
    got = source.read(idx)
    for row, i in enumerate(idx):
        np.testing.assert_array_equal(got["image"][row], expected[i]["image"])
        assert got["label"][row] == i
        assert got["jpeg"][row] == expected[i]["jpeg"]
        assert got["caption"][row] == f"record {i}"


def test_writer_needs_a_length_for_an_unsized_iterable_and_checks_it(tmp_path):
    with pytest.raises(fx.SourceError, match="pass num_records="):
        fx.write_array_record(tmp_path / "a", records(4), num_shards=2)
    with pytest.raises(fx.SourceError, match="ran out 2 short"):
        fx.write_array_record(tmp_path / "b", records(4), num_shards=2, num_records=6)
    with pytest.raises(fx.SourceError, match="more records than num_records=3"):
        fx.write_array_record(tmp_path / "c", records(4), num_shards=2, num_records=3)


def test_custom_parser_and_bytes_records(tmp_path):
    blobs = [np.full(3, i, np.int32).tobytes() for i in range(8)]
    paths = fx.write_array_record(tmp_path / "raw.array_record", blobs, num_shards=2)
    source = fx.ArrayRecordSource(tmp_path, parse=parse_int32)  # the directory
    assert source.files == paths
    assert source.read(np.array([7, 1]))["x"].tolist() == [[7, 7, 7], [1, 1, 1]]


def parse_int32(blob):
    return {"x": np.frombuffer(blob, np.int32)}


def test_truncated_file_is_named(tmp_path):
    data = {"x": np.random.default_rng(0).integers(0, 256, (600, 500), np.uint8)}
    paths = fx.write_array_record(tmp_path / "d.array_record", data, num_shards=3)
    size = os.path.getsize(paths[1])
    with open(paths[1], "r+b") as f:
        f.truncate(size // 2)  # cut mid-record: the footer and half the records are gone
    with pytest.raises(fx.SourceError) as info:
        fx.ArrayRecordSource(paths)
    message = str(info.value)
    assert "ArrayRecordSource" in message and paths[1] in message
    assert "records from index 200 on" in message and "truncated or corrupt" in message
    assert "Its record count is unknown" in message
    assert message.endswith(
        "pass counts= (the number of records each file holds) so that on_error='skip' can "
        "skip its records."
    )


def write_shards(tmp_path, damage, bad):
    """30 records (``id``, ``x``) in 3 shards of 10; shard ``bad`` damaged as ``damage`` says.

    Returns the paths and the ``counts=`` to declare.
    """
    rng = np.random.default_rng(0)
    data = {"id": np.arange(30), "x": rng.integers(0, 256, (30, 300), np.uint8)}
    paths = fx.write_array_record(tmp_path / "d.array_record", data, num_shards=3)
    counts = [10, 10, 10]
    if damage == "truncated":
        with open(paths[bad], "r+b") as f:
            f.truncate(os.path.getsize(paths[bad]) // 2)  # mid-record: no footer
    elif damage == "not_array_record":
        with open(paths[bad], "wb") as f:
            f.write(b"not an array_record file" * 100)
    elif damage == "wrong_count":
        counts[bad] = 12  # the metadata says 12, the file holds 10
    return paths, counts


DAMAGES = {
    "truncated": r"the reader found no valid footer \(the file is truncated or corrupt\)",
    "not_array_record": r"the reader found no valid footer \(the file is truncated or corrupt\)",
    "wrong_count": r"the file holds 10 records, but counts= says 12",
}


@pytest.mark.parametrize(
    ("damage", "bad"),
    [("truncated", 1), ("truncated", 0), ("not_array_record", 2), ("wrong_count", 1)],
)
def test_with_counts_a_damaged_file_fails_per_record_naming_file_and_cause(
    tmp_path, monkeypatch, damage, bad
):
    import feedax._sources.array_record as module

    paths, counts = write_shards(tmp_path, damage, bad)
    opened = []
    real_open = module._open
    monkeypatch.setattr(module, "_open", lambda *a: opened.append(a[0]) or real_open(*a))
    source = fx.ArrayRecordSource(paths, counts=counts)  # the spec: the first file that opens
    assert len(source) == sum(counts) and source.element_spec["x"].shape == (300,)
    assert opened == paths[: 2 if bad == 0 else 1]  # opened for the spec only, not to count
    first, last = 10 * bad, 10 * bad + counts[bad] - 1
    good = [i for i in range(sum(counts)) if not first <= i <= last]
    shift = counts[bad] - 10  # with a wrong count, the next files' indices move by this much
    expected = [i - shift if i > last else i for i in good[::-1]]
    assert source.read(np.array(good[::-1]))["id"].tolist() == expected
    message = (
        rf"ArrayRecordSource: record index {first + 3} \(file '{re.escape(paths[bad])}'\): the "
        rf"file \(records {first} to {last}\) cannot be read: {DAMAGES[damage]}[^\n]*\. "
        r"Re-write or re-download the file \(or correct counts= if it is wrong\), or pass "
        r"on_error='skip' to the Pipeline to skip its records\.$"
    )
    for _ in range(2):  # the failed open is remembered: the file is tried once per process
        with pytest.raises(fx.SourceError, match=message):
            source.read(np.array([good[0], first + 3, first]))
    assert opened.count(paths[bad]) == 1
    with pytest.raises(fx.SourceError, match=rf"record index {first} \(file .*cannot be read"):
        list(fx.Pipeline(source, batch_size=4).epoch())
    clone = pickle.loads(pickle.dumps(source))  # as process workers get it: damage found anew
    with pytest.raises(fx.SourceError, match=message):
        clone.read(np.array([first + 3]))
    assert opened.count(paths[bad]) == 2


def identity(record, ctx):
    return {"id": record["id"], "x": record["x"]}


@pytest.mark.parametrize(("damage", "workers"), [("truncated", 0), ("wrong_count", 2)])
def test_skip_policy_skips_exactly_the_damaged_file_and_resumes_on_the_same_stream(
    tmp_path, damage, workers
):
    paths, counts = write_shards(tmp_path, damage, bad=1)
    pipeline = skipping(paths, counts=counts, workers=workers, seed=2, max_skip_fraction=0.4)
    bad = list(range(10, 10 + counts[1]))  # a wrong count moves the next file's indices
    delivered = [*range(10), *range(20, 30)]  # the ids the good files hold
    check_skip_and_resume(pipeline, n=sum(counts), bad=bad, batch_size=6, delivered=delivered)


def skipping(paths, *, workers, batch_size=6, counts=None, **kwargs):
    """Builds identical shuffled Pipelines that skip unreadable records, ``workers`` or not."""

    def pipeline():
        return fx.Pipeline(
            fx.ArrayRecordSource(paths, counts=counts),
            batch_size=batch_size,
            shuffle=True,
            drop_remainder=False,
            host=fx.HostMap(identity, workers=workers) if workers else None,
            on_error="skip",
            **kwargs,
        )

    return pipeline


@pytest.mark.parametrize(
    ("counts", "message"),
    [
        (
            [10, 10],
            r"counts must hold one number per file: expected 3 \(the files \[.*\]\), got 2\. "
            r"Pass the number of records of each file, in index order\.",
        ),
        ([10, -1, 10], r"counts\[1\] \(file '.*00001-of-00003'\) must be >= 0, got -1\."),
        ([10, 10.0, 10], r"counts\[1\] \(file '.*00001-of-00003'\) must be an int, got 10\.0\."),
        ([10, True, 10], r"counts\[1\] .* must be an int, got True\."),
        (30, r"counts must be a sequence of ints .* got int\. Pass e\.g\. counts=\[1000"),
        ("10", r"counts must be a sequence of ints .* got str\."),
    ],
)
def test_counts_are_validated(tmp_path, counts, message):
    paths, _ = write_shards(tmp_path, None, bad=0)
    with pytest.raises(fx.SourceError, match=r"^ArrayRecordSource: " + message):
        fx.ArrayRecordSource(paths, counts=counts)
    source = fx.ArrayRecordSource(paths, counts=np.array([10, 10, 10]))  # NumPy ints work
    assert source.read(np.array([29]))["id"].tolist() == [29]


def test_with_counts_every_file_damaged_needs_a_declared_spec(tmp_path):
    paths, _ = write_shards(tmp_path, "truncated", bad=0)
    for path in paths[1:]:
        with open(path, "r+b") as f:
            f.truncate(100)
    with pytest.raises(
        fx.SourceError,
        match=r"ArrayRecordSource: no file can be read, so the element_spec cannot be taken "
        r"from a record: '.*00000-of-00003': the reader found no valid footer .*; "
        r"'.*00002-of-00003': .*\. Re-write or re-download .* Or declare element_spec=",
    ):
        fx.ArrayRecordSource(paths, counts=[10, 10, 10])
    spec = {"id": jax.ShapeDtypeStruct((), np.int64)}
    source = fx.ArrayRecordSource(paths, counts=[10, 10, 10], element_spec=spec)
    with pytest.raises(fx.SourceError, match=r"record index 25 .*cannot be read"):
        source.read(np.array([25]))


def test_corrupt_record_names_its_index_and_file(tmp_path):
    rng = np.random.default_rng(0)
    data = {"x": rng.integers(0, 256, (300, 1000), np.uint8)}
    (path,) = fx.write_array_record(tmp_path / "c.array_record", data)
    with open(path, "r+b") as f:
        f.seek(150_000)
        f.write(b"\x00" * 100)
    source = fx.ArrayRecordSource(path)
    with pytest.raises(
        fx.SourceError, match=r"record index (\d+) \(file '.*c\.array_record"
    ) as info:
        source.read(np.arange(300))
    bad = int(re.search(r"record index (\d+)", str(info.value)).group(1))
    assert "ArrayRecord reader failed" in str(info.value)
    source.read(np.array([bad - 1, bad + 1]))  # the neighbours are fine
    with pytest.raises(fx.SourceError, match=f"record index {bad} "):
        source.read(np.array([bad]))


def test_missing_field_and_wrong_shape_name_the_record(tmp_path):
    good = {"image": np.zeros((2, 2), np.uint8), "label": np.int64(0)}
    rows = [dict(good) for _ in range(8)]
    del rows[5]["label"]
    rows[7]["image"] = np.zeros((3, 2), np.uint8)
    (path,) = fx.write_array_record(tmp_path / "r.array_record", rows)
    source = fx.ArrayRecordSource(path)
    with pytest.raises(fx.SourceError, match=r"record index 5 \(file .*field 'label' is missing"):
        source.read(np.array([0, 5]))
    with pytest.raises(
        fx.SourceError, match=r"record index 7 .*'image' has shape \(3, 2\).*\(2, 2\)"
    ):
        source.read(np.array([7]))
    declared = {"image": jax.ShapeDtypeStruct((2, 2), np.float32)}
    with pytest.raises(fx.SourceError, match=r"record index 1 .*dtype uint8.*float32"):
        fx.ArrayRecordSource(path, element_spec=declared).read(np.array([1]))
    only_image = fx.ArrayRecordSource(path, element_spec={"image": good["image"]})
    assert list(only_image.read(np.array([5]))) == ["image"]  # undeclared fields are dropped


def test_garbage_records_and_bad_paths(tmp_path):
    (path,) = fx.write_array_record(tmp_path / "g.array_record", [b"not msgpack \xc1"])
    with pytest.raises(fx.SourceError, match=r"record index 0 .*does not parse"):
        fx.ArrayRecordSource(path)
    with pytest.raises(fx.SourceError, match="does not exist"):
        fx.ArrayRecordSource(tmp_path / "nope.array_record")
    with pytest.raises(fx.SourceError, match="matches no array_record file"):
        fx.ArrayRecordSource(tmp_path / "nope-*")


@pytest.mark.parametrize("workers", [0, 2])
def test_skip_policy_leaves_out_a_bad_record_and_names_it(tmp_path, workers):
    rows = [{"id": np.int32(i), "x": np.full(2, i, np.int32)} for i in range(12)]
    rows[5] = {"id": np.int32(5), "y": np.zeros(2, np.int32)}  # no field "x"
    (path,) = fx.write_array_record(tmp_path / "s.array_record", rows)
    source = fx.ArrayRecordSource(path)
    raising = fx.Pipeline(source, batch_size=4)
    with pytest.raises(fx.SourceError, match=r"record index 5 .*field 'x' is missing"):
        list(raising.epoch())
    pipe = fx.Pipeline(source, batch_size=4, on_error="skip", max_skip_fraction=0.1)
    seen = np.concatenate([np.asarray(b["x"])[:, 0] for b in pipe.epoch()])
    assert seen.tolist() == [0, 1, 2, 3, 4, 6, 7, 8]  # in order, 5 replaced by the next good one
    assert list(pipe.skipped_indices) == [5]
    pipeline = skipping([path], workers=workers, batch_size=4, seed=3, max_skip_fraction=0.1)
    check_skip_and_resume(pipeline, n=12, bad=[5], batch_size=4)
