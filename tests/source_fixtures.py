"""The same small dataset written in every source format; module-level so workers can import."""

import os

import numpy as np

import feedax as fx

N = 24
SIZE = 8
KINDS = ["array", "npy", "arrayrecord", "parquet", "imagefolder", "hf"]

_DECODE = fx.DecodeImage(SIZE)


def make_data(n: int = N) -> dict[str, np.ndarray]:
    """Unique random images; labels in contiguous blocks (as an image folder sorts them)."""
    rng = np.random.default_rng(0)
    return {
        "image": rng.integers(0, 256, (n, SIZE, SIZE, 3), np.uint8),
        "label": (np.arange(n) * 3 // n).astype(np.int64),
        "id": np.arange(n, dtype=np.int64),
    }


def decode_with_id(record, ctx):
    """DecodeImage plus the record index, so image-folder batches carry their identity."""
    out = _DECODE(record, ctx)
    out["id"] = np.int64(ctx.index)
    return out


def passthrough(record, ctx):
    """A host function that keeps the numeric fields as they are."""
    return {k: np.asarray(v) for k, v in record.items() if np.asarray(v).dtype != object}


def write_all(root: str, data: dict[str, np.ndarray]) -> dict[str, str]:
    """Writes ``data`` as .npy, ArrayRecord, Parquet, PNG folders and a saved HF dataset."""
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    n = len(data["id"])
    paths = {k: os.path.join(root, k) for k in KINDS if k != "array"}
    os.makedirs(paths["npy"])
    for field, values in data.items():
        np.save(os.path.join(paths["npy"], f"{field}.npy"), values)
    fx.write_array_record(
        os.path.join(paths["arrayrecord"], "data.array_record"), data, num_shards=3
    )
    os.makedirs(paths["parquet"])
    flat = data["image"].reshape(n, -1)
    for part, (lo, hi) in enumerate([(0, 14), (14, n)]):
        image = pa.FixedSizeListArray.from_arrays(pa.array(flat[lo:hi].ravel()), flat.shape[1])
        table = pa.table({"image": image, "label": data["label"][lo:hi], "id": data["id"][lo:hi]})
        pq.write_table(
            table, os.path.join(paths["parquet"], f"part{part}.parquet"), row_group_size=5
        )
    for i in range(n):
        folder = os.path.join(paths["imagefolder"], f"class_{data['label'][i]}")
        os.makedirs(folder, exist_ok=True)
        Image.fromarray(data["image"][i]).save(os.path.join(folder, f"{i:03d}.png"))
    features = datasets.Features(
        {
            "image": datasets.Array3D(data["image"].shape[1:], "uint8"),
            "label": datasets.Value("int64"),
            "id": datasets.Value("int64"),
        }
    )
    datasets.Dataset.from_dict(dict(data), features=features).save_to_disk(paths["hf"])
    return paths


def build(kind: str, paths: dict[str, str], data: dict[str, np.ndarray]) -> fx.Source:
    """The source of ``kind`` over the written data."""
    import jax

    if kind == "array":
        return fx.ArraySource(data)
    if kind == "npy":
        return fx.NpySource(paths["npy"])
    if kind == "arrayrecord":
        return fx.ArrayRecordSource(os.path.join(paths["arrayrecord"], "data.array_record-*"))
    if kind == "parquet":
        spec = {"image": jax.ShapeDtypeStruct((SIZE, SIZE, 3), np.uint8)}
        return fx.ParquetSource(paths["parquet"], element_spec=spec, cache_row_groups=2)
    if kind == "imagefolder":
        return fx.ImageFolderSource(paths["imagefolder"])
    if kind == "hf":
        import datasets

        return fx.HFSource(datasets.load_from_disk(paths["hf"]))
    raise ValueError(kind)
