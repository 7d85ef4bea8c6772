import io
import pickle

import numpy as np
import pytest
from helpers import first_batches, host
from PIL import Image

import feedax as fx
from feedax._sources import decode_image


def save(path, array, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, fmt)


def gradient(h, w):
    """An image whose pixels say where they are (lossless in PNG)."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 4 % 256, y * 4 % 256, (x + y) % 256], -1).astype(np.uint8)


def test_classes_labels_and_sorted_recursive_files(tmp_path):
    pixel = np.zeros((4, 4, 3), np.uint8)
    save(tmp_path / "dog" / "b.png", pixel)
    save(tmp_path / "dog" / "a.JPG", pixel)
    save(tmp_path / "dog" / "sub" / "c.png", pixel)
    save(tmp_path / "cat" / "z.png", pixel)
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    (tmp_path / "empty_class").mkdir()
    source = fx.ImageFolderSource(tmp_path)
    assert source.classes == ["cat", "dog", "empty_class"]
    assert source.class_to_index == {"cat": 0, "dog": 1, "empty_class": 2}
    out = source.read(np.arange(len(source)))
    names = [p[len(str(tmp_path)) + 1 :] for p in out["path"]]
    assert names == ["cat/z.png", "dog/a.JPG", "dog/b.png", "dog/sub/c.png"]
    assert out["label"].tolist() == [0, 1, 1, 1]
    assert source.element_spec["path"].dtype == object
    with pytest.raises(fx.SourceError, match="has no sub-folders"):
        fx.ImageFolderSource(tmp_path / "empty_class")
    with pytest.raises(fx.SourceError, match="no image files"):
        fx.ImageFolderSource(tmp_path, extensions=(".webp",))


def test_center_crop_and_resize_match_pillow(tmp_path):
    image = gradient(40, 60)
    save(tmp_path / "g.png", image)
    crop = fx.DecodeImage((20, 20), field="p")({"p": str(tmp_path / "g.png")}, None)["image"]
    reference = np.asarray(Image.fromarray(image).resize((30, 20), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(crop, reference[:, 5:25])
    stretched = fx.DecodeImage((10, 16), field="p", mode="resize")({"p": tmp_path / "g.png"}, None)
    reference = np.asarray(Image.fromarray(image).resize((16, 10), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(stretched["image"], reference)
    same = fx.DecodeImage((40, 60), field="p")({"p": str(tmp_path / "g.png")}, None)["image"]
    np.testing.assert_array_equal(same, image)
    gray = fx.DecodeImage(8, field="p", channels=1)({"p": str(tmp_path / "g.png")}, None)["image"]
    assert gray.shape == (8, 8, 1) and gray.dtype == np.uint8


@pytest.mark.parametrize("channels", [1, 3])
def test_a_16_bit_png_is_scaled_to_8_bits_not_saturated(tmp_path, channels):
    levels = (np.arange(12 * 16).reshape(12, 16) * 341).astype(np.uint16)  # 0..65131
    Image.fromarray(levels).save(tmp_path / "deep.png")
    decode = fx.DecodeImage((12, 16), field="p", channels=channels)
    out = decode({"p": str(tmp_path / "deep.png")}, None)["image"]
    expected = np.round(levels / 257.0).astype(np.uint8)
    assert out.shape == (12, 16, channels)
    for c in range(channels):
        np.testing.assert_array_equal(out[..., c], expected)
    assert (out == 255).mean() < 0.01


def test_jpeg_with_simplejpeg_and_with_pillow_fallback(tmp_path, monkeypatch):
    image = np.zeros((96, 128, 3), np.uint8)
    image[..., 0] = 200
    image[:, 64:, 2] = 100
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=95)
    decode = fx.DecodeImage(24, field="jpeg", out_field="x")
    record = {"jpeg": buf.getvalue(), "label": np.int64(4), "name": "kept out"}
    fast = decode(record, None)
    assert sorted(fast) == ["label", "x"] and int(fast["label"]) == 4
    assert fast["x"].shape == (24, 24, 3) and fast["x"].dtype == np.uint8
    monkeypatch.setattr(decode_image, "simplejpeg_module", lambda: None)
    slow = decode(record, None)["x"]
    assert np.abs(fast["x"].astype(int) - slow.astype(int)).mean() < 4
    np.testing.assert_allclose(slow[:, :, 0].mean(), 200, atol=4)
    assert pickle.loads(pickle.dumps(decode)).size == (24, 24)


@pytest.mark.parametrize(
    ("bad", "cause"),
    [
        (b"", r"is empty \(0 bytes\)"),
        (b"\xff\xd8\xff\xe0 this is not really a jpeg", "cannot decode image file"),
        (b"\x89PNG\r\n\x1a\n truncated", "cannot decode image file"),
    ],
)
def test_corrupt_or_empty_file_names_source_path_index_and_cause(tmp_path, bad, cause):
    for i in range(6):
        save(tmp_path / "c" / f"{i}.png", np.full((8, 8, 3), i, np.uint8))
    path = tmp_path / "c" / "3.png"
    path.write_bytes(bad)
    source = fx.ImageFolderSource(tmp_path, name="my_images")
    pipe = fx.Pipeline(source, batch_size=2, host=fx.HostMap(fx.DecodeImage(8), workers=2))
    with pytest.raises(fx.HostStageError, match=cause) as info:
        list(pipe.epoch())
    message = str(info.value)
    assert "'my_images'" in message and str(path) in message and "record index 3" in message
    assert "re-encode it or remove it" in message


def test_decode_image_checks_its_arguments_and_input():
    with pytest.raises(fx.SourceError, match="size must be positive"):
        fx.DecodeImage(0)
    with pytest.raises(fx.SourceError, match="channels must be 1 or 3"):
        fx.DecodeImage(8, channels=4)
    with pytest.raises(fx.SourceError, match="has no field 'path'"):
        fx.DecodeImage(8)({"image": b"x"}, None)
    with pytest.raises(fx.SourceError, match="cannot read image file"):
        fx.DecodeImage(8)({"path": "/nonexistent/x.png"}, None)


def test_skip_policy_leaves_out_a_corrupt_image(tmp_path):
    for i in range(8):
        save(tmp_path / "c" / f"{i}.png", np.full((8, 8, 3), i, np.uint8))
    (tmp_path / "c" / "6.png").write_bytes(b"\x89PNG broken")
    source = fx.ImageFolderSource(tmp_path)
    pipe = fx.Pipeline(
        source,
        batch_size=2,
        drop_remainder=False,
        host=fx.HostMap(fx.DecodeImage(8), workers=2),
        on_error="skip",
        max_skip_fraction=0.2,
    )
    batches = [host(b) for b in pipe.epoch()]
    values = np.concatenate([b["image"][b["valid"], 0, 0, 0] for b in batches])
    assert sorted(values.tolist()) == [0, 1, 2, 3, 4, 5, 7]
    assert list(pipe.skipped_indices) == [6]


def test_skip_policy_with_a_corrupt_jpeg_and_an_empty_file_resumes_on_the_same_stream(tmp_path):
    from flax import nnx

    for i in range(20):
        save(tmp_path / f"c{i % 2}" / f"{i:02d}.jpg", np.full((8, 8, 3), 10 * i, np.uint8))
    (tmp_path / "c1" / "05.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    (tmp_path / "c0" / "12.jpg").write_bytes(b"")

    def pipeline():
        return fx.Pipeline(
            fx.ImageFolderSource(tmp_path),
            batch_size=4,
            shuffle=True,
            seed=1,
            host=fx.HostMap(fx.DecodeImage(8), workers=2),
            on_error="skip",
            max_skip_fraction=0.1,
        )

    pipe = pipeline()
    batches = [host(b) for b in pipe.epoch()]
    assert len(batches) == 18 // 4 and all(len(b["label"]) == 4 for b in batches)
    source = fx.ImageFolderSource(tmp_path)
    paths = source.read(np.arange(len(source)))["path"]
    bad = sorted(i for i, p in enumerate(paths) if p.endswith(("05.jpg", "12.jpg")))
    assert sorted(pipe.skipped_indices) == bad

    reference = first_batches(pipeline(), 9)  # crosses an epoch boundary (4 batches per epoch)
    for k in (1, 3, 4, 6):
        partial = pipeline()
        first_batches(partial, k)
        fresh = pipeline()
        nnx.update(fresh, nnx.clone(nnx.state(partial)))
        assert sorted(fresh.skipped_indices) == sorted(partial.skipped_indices)
        for e, g in zip(reference[k:], first_batches(fresh, 9 - k), strict=True):
            np.testing.assert_array_equal(e["image"], g["image"])
            np.testing.assert_array_equal(e["label"], g["label"])
