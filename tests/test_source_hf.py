import io

import datasets
import jax
import numpy as np
import pytest
from helpers import host
from PIL import Image

import feedax as fx


def test_selected_columns_through_the_dataset_index_mapping(tmp_path):
    ds = datasets.Dataset.from_dict(
        {
            "x": np.arange(20, dtype=np.float32),
            "seq": [[i, -i] for i in range(20)],
            "t": list("abcdefghijklmnopqrst"),
        }
    )
    ds.save_to_disk(tmp_path / "ds")
    loaded = datasets.load_from_disk(tmp_path / "ds")
    assert loaded.cache_files  # memory-mapped from disk, not in memory
    view = loaded.select(range(19, -1, -2))  # an index mapping: rows 19, 17, ..., 1
    source = fx.HFSource(view, columns=["x", "seq"])
    assert len(source) == 10 and source.columns == ["x", "seq"]
    assert source.element_spec == {
        "x": jax.ShapeDtypeStruct((), np.float32),
        "seq": jax.ShapeDtypeStruct((2,), np.int64),
    }
    out = source.read(np.array([0, 9, 4]))
    assert out["x"].tolist() == [19.0, 1.0, 11.0]
    assert out["seq"].tolist() == [[19, -19], [1, -1], [11, -11]]
    text = fx.HFSource(loaded, columns=["t"]).read(np.array([2, 0]))["t"]
    assert text.dtype == object and text.tolist() == ["c", "a"]


def test_image_feature_decoded_by_the_host_stage():
    images = [np.full((6 + i, 5, 3), i * 20, np.uint8) for i in range(6)]  # different sizes
    pngs = []
    for image in images:
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, "PNG")
        pngs.append({"bytes": buf.getvalue(), "path": None})
    features = datasets.Features({"img": datasets.Image(), "label": datasets.Value("int32")})
    ds = datasets.Dataset.from_dict({"img": pngs, "label": list(range(6))}, features=features)
    source = fx.HFSource(ds)
    assert source.element_spec["img"].dtype == object
    stage = fx.HostMap(fx.DecodeImage(4, field="img"), workers=2)
    pipe = fx.Pipeline(source, batch_size=3, host=stage)
    batches = [host(b) for b in pipe.epoch()]
    assert [b["image"].shape for b in batches] == [(3, 4, 4, 3)] * 2
    labels = np.concatenate([b["label"] for b in batches])
    means = np.concatenate([b["image"].mean(axis=(1, 2, 3)) for b in batches])
    np.testing.assert_allclose(means, labels * 20)


def test_declared_spec_and_ragged_rows_name_the_record():
    ds = datasets.Dataset.from_dict({"v": [[1, 2], [3, 4], [5], [6, 7]]})
    source = fx.HFSource(ds)
    assert source.read(np.array([3, 0]))["v"].tolist() == [[6, 7], [1, 2]]
    with pytest.raises(
        fx.SourceError, match=r"HFSource: record index 2 \(file '<memory>'\): column 'v'"
    ):
        source.read(np.array([1, 2]))
    wrong = {"v": jax.ShapeDtypeStruct((3,), np.int64)}
    with pytest.raises(fx.SourceError, match=r"record index 0 .*shape \(2,\) per record.*\(3,\)"):
        fx.HFSource(ds, element_spec=wrong)
    with pytest.raises(fx.SourceError, match=r"record index 0 .*dtype int64.*float32"):
        fx.HFSource(ds, element_spec={"v": jax.ShapeDtypeStruct((2,), np.float32)})


def test_wrong_inputs_say_what_to_do():
    ds = datasets.Dataset.from_dict({"a": [1, 2]})
    with pytest.raises(fx.SourceError, match=r"DatasetDict with splits \['train'\]; pick one"):
        fx.HFSource(datasets.DatasetDict({"train": ds}))
    with pytest.raises(fx.SourceError, match="IterableDataset has no random access"):
        fx.HFSource([{"a": 1}, {"a": 2}])
    with pytest.raises(fx.SourceError, match=r"columns \['b'\] are not in the dataset"):
        fx.HFSource(ds, columns=["b"])
    with pytest.raises(IndexError, match="HFSource: record index 2 is out of range"):
        fx.HFSource(ds).read(np.array([2]))
