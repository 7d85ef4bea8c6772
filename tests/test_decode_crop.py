"""DecodeRandomResizedCrop (host) against the device RandomResizedCrop and Pillow.

References and tolerances:
- Boxes: the device operator's draws over 4,000 records (area fraction and aspect
  quantiles within 0.03; the fallback and the eval box exactly equal).
- Full-scale decode: Pillow's ``Image.resize(size, BILINEAR, box)`` of the same decode,
  exactly; the device operator's resize of the same box within one level (PIL rounds
  between its passes).
- DCT-scaled decode: the full decode then resized, mean difference under 1.5 levels on a
  photograph.
"""

import io
import pickle
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from ops_reference import china, draws, level_diff
from PIL import Image

import feedax as fx
from feedax._sources import decode_image
from feedax.functional import resized_crop


def jpeg(image: np.ndarray, quality: int = 95) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def ctx(index: int, training: bool = True, epoch: int = 0) -> fx.HostContext:
    return fx.HostContext(epoch=epoch, index=index, training=training, seed=3)


def test_boxes_follow_the_device_operators_distribution():
    host = fx.DecodeRandomResizedCrop(32)
    device = fx.RandomResizedCrop(32, rngs=nnx.Rngs(augment=0))
    shape = (48, 96, 3)  # wide: some candidates do not fit
    n = 4000
    _, _, h, w = (np.asarray(v) for v in draws(device, shape, n))
    ours = np.array([host.box(48, 96, ctx(i)) for i in range(n)])
    for theirs, mine in (
        (h * w / (48 * 96), ours[:, 2] * ours[:, 3] / (48 * 96)),
        (w / h, ours[:, 3] / ours[:, 2]),
    ):
        q = [0.1, 0.25, 0.5, 0.75, 0.9]
        np.testing.assert_allclose(np.quantile(mine, q), np.quantile(theirs, q), atol=0.03)
    assert (ours[:, 0] >= 0).all() and (ours[:, 0] + ours[:, 2] <= 48).all()
    assert (ours[:, 1] >= 0).all() and (ours[:, 1] + ours[:, 3] <= 96).all()
    assert len({tuple(b) for b in ours}) > 3000


def test_fallback_and_eval_boxes_equal_the_device_operators():
    # No candidate of aspect 5..6 fits a square image: both take the clamped central box.
    kw = {"scale": (0.9, 1.0), "ratio": (5.0, 6.0)}
    host = fx.DecodeRandomResizedCrop((20, 30), **kw)
    device = fx.RandomResizedCrop((20, 30), **kw, rngs=nnx.Rngs(augment=0))
    expected = [int(v[0]) for v in draws(device, (50, 50, 3), 1)]
    assert list(host.box(50, 50, ctx(0))) == expected
    assert host.box(50, 70, ctx(0, training=False)) == tuple(device.eval_params((50, 70, 3)))


def test_keyed_by_record_and_the_same_in_any_worker_count():
    images = [china(64 + 8 * i) for i in range(6)]  # sizes differ, the output does not
    source = fx.ArraySource({"jpeg": np.array([jpeg(x) for x in images], object)})

    def batches(workers):
        host = fx.HostMap(
            fx.DecodeRandomResizedCrop(24, field="jpeg"), workers=workers, rngs=nnx.Rngs(0)
        )
        pipe = fx.Pipeline(source, batch_size=3, shuffle=True, seed=1, host=host)
        return [np.asarray(b["image"]) for b in pipe.epoch()]

    zero, two = batches(0), batches(2)
    assert all(np.array_equal(a, b) for a, b in zip(zero, two, strict=True))
    crop = fx.DecodeRandomResizedCrop(24, field="jpeg")
    record = {"jpeg": jpeg(images[0])}
    first = crop(record, ctx(0))["image"]
    assert np.array_equal(first, crop(record, ctx(0))["image"])
    assert not np.array_equal(first, crop(record, ctx(1))["image"])
    assert not np.array_equal(first, crop(record, ctx(0, epoch=1))["image"])


@pytest.mark.parametrize("fast", [True, False], ids=["simplejpeg", "pillow"])
def test_full_scale_decode_is_pillows_resize_of_the_box(fast, monkeypatch):
    if not fast:
        monkeypatch.setattr(decode_image, "simplejpeg_module", lambda: None)
    monkeypatch.setattr(
        "feedax._sources.decode_crop.simplejpeg_module", decode_image.simplejpeg_module
    )
    data = jpeg(china(256))
    crop = fx.DecodeRandomResizedCrop(224, field="jpeg")
    decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    for i in range(5):
        top, left, h, w = crop.box(256, 256, ctx(i))
        out = crop({"jpeg": data, "label": np.int64(2)}, ctx(i))
        assert out["image"].shape == (224, 224, 3) and int(out["label"]) == 2
        box = (left, top, left + w, top + h)
        ref = np.asarray(Image.fromarray(decoded).resize((224, 224), Image.BILINEAR, box=box))
        # simplejpeg and Pillow both run libjpeg-turbo; their decodes may differ by a level.
        assert level_diff(out["image"], ref).max() <= (0 if not fast else 2)
        device = jax.jit(resized_crop, static_argnums=5)(
            jnp.asarray(decoded), top, left, h, w, (224, 224)
        )
        assert np.mean(level_diff(device, ref) <= 1) > 0.999


@pytest.mark.parametrize("fast", [True, False], ids=["simplejpeg", "pillow"])
def test_large_boxes_decode_at_a_reduced_scale(fast, monkeypatch):
    import simplejpeg

    seen = []

    def spying(decode):
        def spy(*args, **kwargs):
            out = decode(*args, **kwargs)
            seen.append(out.shape)
            return out

        return spy

    fake = types.SimpleNamespace(
        decode_jpeg_header=simplejpeg.decode_jpeg_header,
        decode_jpeg=spying(simplejpeg.decode_jpeg),
    )
    monkeypatch.setattr(
        "feedax._sources.decode_crop.simplejpeg_module", lambda: fake if fast else None
    )
    monkeypatch.setattr("feedax._sources.decode_crop.decode_pil", spying(decode_image.decode_pil))
    data = jpeg(china(1024))
    crop = fx.DecodeRandomResizedCrop(64, scale=(0.5, 1.0), field="jpeg")
    full = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    for i in range(4):
        top, left, h, w = crop.box(1024, 1024, ctx(i))
        out = crop({"jpeg": data}, ctx(i))["image"]
        box = (left, top, left + w, top + h)
        ref = np.asarray(Image.fromarray(full).resize((64, 64), Image.BILINEAR, box=box))
        assert level_diff(out, ref).mean() < 1.5
    # Every box is at least 4x the output: decoded at 1/4 (256 px) or 1/8, never whole.
    assert len(seen) == 4 and all(s[0] <= 256 for s in seen), seen


def test_grey_png_and_eval(tmp_path):
    path = tmp_path / "a.png"
    Image.fromarray(china(40)[:, :, 0]).save(path)
    crop = fx.DecodeRandomResizedCrop(16, channels=1)
    out = crop({"path": str(path)}, ctx(0, training=False))["image"]
    ref = Image.fromarray(china(40)[:, :, 0]).resize((16, 16), Image.BILINEAR, box=(0, 0, 40, 40))
    assert out.shape == (16, 16, 1) and np.array_equal(out[:, :, 0], np.asarray(ref))
    assert pickle.loads(pickle.dumps(crop)).size == (16, 16)


def test_errors_name_what_is_wrong():
    crop = fx.DecodeRandomResizedCrop(8, field="jpeg")
    with pytest.raises(fx.SourceError, match="HostContext"):
        crop({"jpeg": jpeg(china(16))}, None)
    with pytest.raises(fx.SourceError, match="cannot decode image bytes of field 'jpeg'"):
        crop({"jpeg": b"\xff\xd8 not a jpeg"}, ctx(0))
    with pytest.raises(fx.SourceError, match="no field 'jpeg'"):
        crop({"path": "x.jpg"}, ctx(0))
    with pytest.raises(fx.SourceError, match="scale must satisfy"):
        fx.DecodeRandomResizedCrop(8, scale=(0.5, 2.0))
    with pytest.raises(fx.SourceError, match="ratio must satisfy"):
        fx.DecodeRandomResizedCrop(8, ratio=(2.0, 1.0))
