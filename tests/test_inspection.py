"""Inspection like a model: summary(), reprs, nnx.tabulate, record ids, write_grid."""

import jax
import numpy as np
import pytest
from flax import nnx
from PIL import Image

import feedax as fx


def image_pipeline(**options):
    images = np.random.default_rng(0).integers(0, 256, (20, 8, 8, 3), np.uint8)
    src = fx.ArraySource({"image": images, "label": np.arange(20) % 4})
    ops = [
        fx.RandomFlip(rngs=nnx.Rngs(augment=0)),
        fx.ToFloat(),
        fx.BrightnessContrast(),
        fx.RunningNormalize(3),
    ]
    return fx.Pipeline(src, ops, batch_size=4, **options)


def test_summary_states_each_stage():
    pipe = image_pipeline()
    summary = pipe.summary()
    stages = {s.stage: s for s in summary.stages}
    assert [s.name for s in summary.stages] == [
        "ArraySource",
        "RandomFlip",
        "ToFloat",
        "BrightnessContrast",
        "RunningNormalize",
    ]
    assert stages["source"].fields["image"].shape == (8, 8, 3)
    assert stages["operators[0]"].fields["image"].dtype == np.uint8
    assert stages["operators[1]"].fields["image"].dtype == np.float32
    assert [s.random for s in summary.stages] == [False, True, False, False, False]
    assert stages["operators[2]"].learnable == 2  # brightness and contrast
    assert stages["operators[3]"].state_bytes > 0 and stages["operators[3]"].learnable == 0
    leaves = jax.tree.leaves(nnx.state(pipe))
    total = sum(
        np.asarray(
            jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x
        ).nbytes
        for x in leaves
    )
    assert summary.state_bytes == total
    assert summary.batch == pipe.output_spec
    text = str(summary)
    assert "BrightnessContrast" in text and "float32[4, 8, 8, 3]" in text


def test_summary_of_host_and_pack_stages(tmp_path):
    corpus = fx.write_tokens(tmp_path, [np.arange(n) + 1 for n in (5, 9, 3, 7) * 5])

    def double(record, ctx):
        return {"tokens": np.repeat(record["tokens"], 2)}

    pipe = fx.Pipeline(corpus, batch_size=2, pack=fx.Pack(32), host=fx.HostMap(double, workers=0))
    stages = [s.stage for s in pipe.summary().stages]
    assert stages == ["source", "host", "pack"]
    assert pipe.summary().stages[2].fields["segment_ids"].shape == (2, 32)
    assert str(tmp_path) in str(pipe.summary())


def test_tabulate_fails_clearly_and_leaves_everything_working():
    pipe, twin = image_pipeline(), image_pipeline()
    with pytest.raises(fx.PipelineError, match="summary"):
        nnx.tabulate(pipe, {"image": np.zeros((4, 8, 8, 3), np.uint8)}, indices=np.arange(4))
    # Nothing stays patched: the pipeline iterates as an untouched twin does ...
    got = [np.asarray(b["image"]) for b in pipe.epoch()]
    want = [np.asarray(b["image"]) for b in twin.epoch()]
    np.testing.assert_array_equal(np.stack(got), np.stack(want))
    # ... and tabulate still works on an ordinary model.
    assert "Linear" in nnx.tabulate(nnx.Linear(2, 3, rngs=nnx.Rngs(0)), np.ones((1, 2)))


def test_reprs_show_the_cursor_and_the_source(tmp_path):
    pipe = image_pipeline()
    it = iter(pipe)
    next(it)
    next(it)
    assert "Cursor(epoch=0, step=2, position=8, offset=0)" in repr(pipe)
    assert repr(pipe.cursor) == "Cursor(epoch=0, step=2, position=8, offset=0)"
    text = repr(pipe.source)
    assert "records=20" in text and "location='memory'" in text and "uint8[8, 8, 3]" in text
    np.save(tmp_path / "x.npy", np.zeros((5, 2), np.float32))
    npy = fx.NpySource({"x": str(tmp_path / "x.npy")})
    assert npy.location == str(tmp_path / "x.npy") and "records=5" in repr(npy)


@pytest.mark.parametrize("shuffle", [False, True])
def test_record_ids_name_each_rows_record(shuffle):
    data = np.arange(10, 30, dtype=np.float32)
    pipe = fx.Pipeline(fx.ArraySource({"x": data}), batch_size=4, shuffle=shuffle, record_ids=True)
    pipe.eval()  # pads the last batch: padding rows repeat row 0, marked by valid
    seen = []
    for batch in pipe.epoch():
        index, valid = np.asarray(batch["index"]), np.asarray(batch["valid"])
        np.testing.assert_array_equal(np.asarray(batch["x"]), data[index])
        seen += index[valid].tolist()
    assert sorted(seen) == list(range(20))
    assert pipe.output_spec["index"].shape == (4,)


def test_record_ids_under_a_mix_name_the_source():
    a = fx.ArraySource({"x": np.arange(10.0)}, name="a")
    b = fx.ArraySource({"x": np.arange(100.0, 106.0)}, name="b")
    mix = fx.Mix([a, b], weights=[0.5, 0.5])
    pipe = fx.Pipeline(mix, batch_size=4, shuffle=True, record_ids=True)
    for batch in pipe.epoch():
        source, index = np.asarray(batch["source"]), np.asarray(batch["index"])
        originals = [
            mix.sources[int(s)].read(np.array([i]))["x"][0]
            for s, i in zip(source, index, strict=True)
        ]
        np.testing.assert_array_equal(np.asarray(batch["x"]), originals)
    assert set(source.tolist()) <= {0, 1}
    assert [mix.names[s] for s in (0, 1)] == ["a", "b"]


def test_record_ids_errors(tmp_path):
    device = fx.ArraySource({"x": np.arange(8.0)}, on_device=True)
    with pytest.raises(fx.PipelineError, match="on_device"):
        fx.Pipeline(device, batch_size=2, record_ids=True)
    taken = fx.ArraySource({"index": np.arange(8)})
    with pytest.raises(fx.PipelineError, match="already"):
        fx.Pipeline(taken, batch_size=2, record_ids=True)
    with pytest.raises(fx.PipelineError, match="True or False"):
        fx.Pipeline(fx.ArraySource({"x": np.arange(8.0)}), batch_size=2, record_ids="yes")


def test_write_grid_draws_every_image(tmp_path):
    pipe = image_pipeline(drop_remainder=True)
    batch = next(iter(pipe))  # normalised floats: rescaled per image
    path = fx.write_grid(batch, tmp_path / "sub" / "batch.png", columns=2, names=list("abcd"))
    picture = np.asarray(Image.open(path))
    scale = 8  # 8-pixel images enlarged to 64
    cell_w, cell_h = 8 * scale + 4, 8 * scale + 14 + 4
    assert picture.shape == (4 + 2 * cell_h, 4 + 2 * cell_w, 3)
    # The first tile is the first image, rescaled to its own range and enlarged.
    x = np.asarray(batch["image"][0])
    want = np.round((x - x.min()) / (x.max() - x.min()) * 255).astype(np.uint8)
    np.testing.assert_array_equal(picture[4 : 4 + 64 : scale, 4 : 4 + 64 : scale], want)


def test_write_grid_uint8_one_hot_and_errors(tmp_path):
    images = np.full((2, 4, 4, 1), 200, np.uint8)
    batch = {
        "image": images,
        "label": np.array([[0.3, 0.7], [1.0, 0.0]]),
        "valid": np.array([True, False]),
    }
    picture = np.asarray(Image.open(fx.write_grid(batch, tmp_path / "g.png", min_size=4)))
    assert picture[4, 4].tolist() == [200, 200, 200]
    with pytest.raises(fx.PipelineError, match="no field 'pixels'"):
        fx.write_grid(batch, tmp_path / "g.png", field="pixels")
    with pytest.raises(fx.PipelineError, match="label=None"):
        fx.write_grid({"image": images}, tmp_path / "g.png")
    with pytest.raises(fx.PipelineError, match="expected"):
        fx.write_grid({"image": np.zeros((2, 4, 4, 2))}, tmp_path / "g.png", label=None)


def test_packed_rows_name_each_tokens_record(tmp_path):
    sequences = [np.full(n, 100 + i, np.int32) for i, n in enumerate((5, 9, 3, 7, 12, 4) * 3)]
    corpus = fx.write_tokens(tmp_path, sequences)
    pipe = fx.Pipeline(corpus, batch_size=2, shuffle=True, pack=fx.Pack(16), record_ids=True)
    assert pipe.output_spec["index"].shape == (2, 16)
    for batch in pipe.epoch():
        tokens, index = np.asarray(batch["tokens"]), np.asarray(batch["index"])
        pad = np.asarray(batch["segment_ids"]) == 0
        assert (index[pad] == -1).all()
        np.testing.assert_array_equal(tokens[~pad], 100 + index[~pad])  # its record's tokens


def test_aligned_packed_fields_and_a_mix_name_records_per_field(tmp_path):
    pairs = fx.ArraySource(
        {
            "inputs": [np.full(3 + i % 2, i) for i in range(8)],  # ragged: lists of arrays
            "targets": [np.full(2 + i % 2, 50 + i) for i in range(8)],
        }
    )
    pack = fx.Pack({"inputs": 8, "targets": 6}, targets=False)
    batch = next(iter(fx.Pipeline(pairs, batch_size=2, pack=pack, record_ids=True)))
    for field, base in (("inputs", 0), ("targets", 50)):
        index, values = np.asarray(batch[f"{field}_index"]), np.asarray(batch[field])
        real = np.asarray(batch[f"{field}_segment_ids"]) > 0
        np.testing.assert_array_equal(values[real], base + index[real])
    a = fx.write_tokens(
        tmp_path / "a",
        [np.full(4, 1, np.int32)] * 6,
    )
    b = fx.write_tokens(tmp_path / "b", [np.full(4, 2, np.int32)] * 6)
    mixed = fx.Pipeline(fx.Mix([a, b]), batch_size=2, pack=fx.Pack(8), record_ids=True)
    batch = next(iter(mixed))
    real = np.asarray(batch["segment_ids"]) > 0
    source, tokens = np.asarray(batch["source"]), np.asarray(batch["tokens"])
    np.testing.assert_array_equal(tokens[real], source[real] + 1)
