"""Colour, filter and occlusion operators against references on a real photograph.

References and tolerances (uint8 unless stated):
- Brightness, Contrast, Saturation (Color), Sharpness: PIL ``ImageEnhance``; at most 1
  level apart (PIL truncates where we round; PIL's Contrast rounds the mean grey).
- Grayscale: PIL ``convert("L")``, at most 1 level, >= 99% equal.
- Invert, Solarize, Posterize, Equalize: PIL ``ImageOps``, exact. AutoContrast: at most 1.
- Hue: Python's ``colorsys`` per pixel on floats, max abs error 1e-5.
- GaussianBlur: ``scipy.ndimage.gaussian_filter`` (mode "mirror"), floats, 1e-5.
- GaussianNoise, RandomErasing, Cutout: NumPy formulas and statistics.
"""

import colorsys

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from ops_reference import (
    china,
    flower,
    jit,
    level_diff,
    one,
    quick_compiles,  # noqa: F401  (fixture)
    run,
)
from PIL import Image, ImageEnhance, ImageOps
from scipy import ndimage

import feedax as fx
from feedax import functional as F

IMG = china(64)
PIL_IMG = Image.fromarray(IMG)
FLOAT = IMG.astype(np.float32) / 255.0

ENHANCE = [
    (fx.Brightness, F.adjust_brightness, ImageEnhance.Brightness),
    (fx.Contrast, F.adjust_contrast, ImageEnhance.Contrast),
    (fx.Saturation, F.adjust_saturation, ImageEnhance.Color),
    (fx.Sharpness, F.adjust_sharpness, ImageEnhance.Sharpness),
]


@pytest.mark.parametrize(("op", "fn", "pil"), ENHANCE, ids=[e[0].__name__ for e in ENHANCE])
def test_enhance_ops_match_pil_and_use_their_function(op, fn, pil):
    for factor in (0.3, 1.7):
        ours = jit(fn, IMG, factor)
        assert ours.dtype == np.uint8
        assert level_diff(ours, pil(PIL_IMG).enhance(factor)).max() <= 1
        # The operator at a fixed factor (a zero-width range) is the function.
        fixed = op((factor, factor), rngs=nnx.Rngs(augment=0))
        np.testing.assert_array_equal(one(fixed, IMG), ours)


def test_hue_matches_colorsys():
    def reference(x, shift):
        pixels = x.reshape(-1, 3).astype(np.float64)
        hsv = (colorsys.rgb_to_hsv(*p) for p in pixels)
        return np.array([colorsys.hsv_to_rgb((h + shift) % 1.0, s, v) for h, s, v in hsv]).reshape(
            x.shape
        )

    for shift in (0.1, -0.3, 0.5):
        np.testing.assert_allclose(
            jit(F.adjust_hue, FLOAT, shift), reference(FLOAT, shift), atol=1e-5
        )
    ours = jit(F.adjust_hue, IMG, 0.25)
    assert level_diff(ours, np.round(reference(FLOAT, 0.25) * 255)).max() <= 1
    np.testing.assert_array_equal(one(fx.Hue((0.25, 0.25), rngs=nnx.Rngs(augment=0)), IMG), ours)


def test_hsv_round_trip_and_grey_pixels():
    h, s, v = jit(F.rgb_to_hsv, FLOAT)
    np.testing.assert_allclose(jit(F.hsv_to_rgb, h, s, v), FLOAT, atol=1e-6)
    grey = np.full((2, 2, 3), 0.4, np.float32)
    np.testing.assert_allclose(jit(F.adjust_hue, grey, 0.3), grey, atol=1e-7)


def test_grayscale_matches_pil():
    ours = np.asarray(one(fx.Grayscale(), IMG))
    ref = np.asarray(PIL_IMG.convert("L"))[..., None]
    assert level_diff(ours, ref).max() <= 1 and (level_diff(ours, ref) == 0).mean() > 0.99
    three = np.asarray(one(fx.Grayscale(3), IMG))
    assert three.shape == (64, 64, 3) and (three == ours).all()


@pytest.mark.parametrize(
    ("op", "pil", "tolerance"),
    [
        (fx.Invert(), ImageOps.invert, 0),
        (fx.Solarize(128 / 255), lambda im: ImageOps.solarize(im, 128), 0),
        (fx.Solarize(0.25), lambda im: ImageOps.solarize(im, 64), 0),
        (fx.Posterize(3), lambda im: ImageOps.posterize(im, 3), 0),
        (fx.Posterize(1), lambda im: ImageOps.posterize(im, 1), 0),
        (fx.Equalize(), ImageOps.equalize, 0),
        (fx.AutoContrast(), ImageOps.autocontrast, 1),
    ],
    ids=[
        "invert",
        "solarize128",
        "solarize64",
        "posterize3",
        "posterize1",
        "equalize",
        "autocontrast",
    ],
)
def test_tone_ops_match_pil_imageops(op, pil, tolerance):
    for image in (IMG, flower(48)):
        ours = np.asarray(one(op, image))
        assert ours.dtype == np.uint8
        assert level_diff(ours, pil(Image.fromarray(image))).max() <= tolerance


def test_tone_ops_on_floats_are_the_uint8_result_scaled():
    for op in (fx.Posterize(3), fx.Equalize(), fx.Solarize(0.5), fx.Invert()):
        np.testing.assert_allclose(one(op, FLOAT), np.asarray(one(op, IMG)) / 255.0, atol=1e-6)


@pytest.mark.parametrize(("kernel", "sigma"), [(5, 1.0), (9, 2.5), (3, 0.5)])
def test_gaussian_blur_matches_scipy(kernel, sigma):
    radius = kernel // 2
    ref = np.stack(
        [
            ndimage.gaussian_filter(
                FLOAT[..., c].astype(np.float64),
                sigma,
                mode="mirror",
                truncate=(radius + 0.25) / sigma,
            )
            for c in range(3)
        ],
        axis=-1,
    )
    ours = jit(F.gaussian_blur, FLOAT, kernel_size=(kernel, kernel), sigma=(sigma, sigma))
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    fixed = fx.GaussianBlur(kernel, sigma=sigma, rngs=nnx.Rngs(augment=0))
    np.testing.assert_allclose(one(fixed, FLOAT), ours, atol=1e-6)


def test_gaussian_noise_has_the_requested_std_per_pixel_and_record():
    op = fx.GaussianNoise(0.05, rngs=nnx.Rngs(augment=0))
    x = jnp.full((16, 32, 32, 3), 0.5, jnp.float32)
    noise = np.asarray(run(op, {"image": x})["image"]) - 0.5
    assert abs(noise.mean()) < 0.002 and abs(noise.std() - 0.05) < 0.002
    corr = np.corrcoef(noise[0].ravel(), noise[1].ravel())[0, 1]
    assert abs(corr) < 0.05  # independent across records


def test_erase_matches_numpy_and_random_erasing_follows_its_ranges():
    expected = IMG.copy()
    expected[10:30, 5:45] = np.round(np.array([0.2, 0.4, 1.0]) * 255).astype(np.uint8)
    np.testing.assert_array_equal(
        jit(F.erase, IMG, 10, 5, 20, 40, jnp.array([0.2, 0.4, 1.0])), expected
    )
    op = fx.RandomErasing(0.7, scale=(0.1, 0.3), ratio=(0.5, 2.0), rngs=nnx.Rngs(augment=0))
    ones = jnp.full((200, 40, 40, 1), 255, jnp.uint8)
    erased = np.asarray(run(op, {"image": ones})["image"])[..., 0] == 0
    area = erased.mean(axis=(1, 2))
    hit = area > 0
    assert 0.7 - 4 * np.sqrt(0.21 / 200) < hit.mean() < 0.7 + 4 * np.sqrt(0.21 / 200)
    assert area[hit].min() > 0.08 and area[hit].max() < 0.33
    rows, cols = erased.any(axis=2).sum(axis=1)[hit], erased.any(axis=1).sum(axis=1)[hit]
    assert (rows * cols == erased.sum(axis=(1, 2))[hit]).all()  # one rectangle
    assert (rows / cols).min() > 0.4 and (rows / cols).max() < 2.5  # ratio is height / width


def test_cutout_erases_a_clipped_square():
    op = fx.Cutout(10, value=0.5, rngs=nnx.Rngs(augment=0))
    out = np.asarray(run(op, {"image": jnp.zeros((64, 20, 20, 3), jnp.uint8)})["image"])
    erased = (out == 128).all(axis=-1)
    counts = erased.sum(axis=(1, 2))
    assert counts.max() == 100 and counts.min() >= 25 and (counts < 100).any()


def test_color_jitter_applies_its_parts_in_a_random_order_per_record():
    op = fx.ColorJitter(0.5, 0.5, 0.5, 0.2, rngs=nnx.Rngs(augment=0))
    n = 12
    x = jnp.broadcast_to(jnp.asarray(FLOAT), (n, *FLOAT.shape))
    out = np.asarray(run(op, {"image": x})["image"])

    def u_of(i):
        return fx.RecordContext(jnp.int32(0), jnp.int32(i), jnp.bool_(True)).uniforms(
            op.stream_key[...], 8
        )

    parts = [op.brightness, op.contrast, op.saturation, op.hue]
    fns = [F.adjust_brightness, F.adjust_contrast, F.adjust_saturation, F.adjust_hue]
    orders = set()
    for i in range(n):
        u = np.asarray(u_of(i))
        order = np.argsort(u[4:])
        orders.add(tuple(order))
        y = FLOAT
        for j in order:
            y = jit(fns[j], y, parts[j].factor_at(u[j]))
        np.testing.assert_allclose(out[i], y, atol=1e-5)
    assert len(orders) > 4


def test_learnable_factor_gradients_match_finite_differences():
    x = jnp.asarray(FLOAT[None, :16, :16])
    for cls in (fx.Brightness, fx.Contrast, fx.Hue):
        op = cls(
            (0.1, 0.3) if cls is fx.Hue else (0.6, 0.9), learnable=True, rngs=nnx.Rngs(augment=0)
        )

        def loss(op):
            return jnp.mean(run(op, {"image": x})["image"] ** 2)

        grads = nnx.grad(loss)(op)
        eps = 1e-3
        for name in ("center", "spread"):
            var = getattr(op, name)
            base = float(var[...])
            var[...] = jnp.float32(base + eps)
            up = float(loss(op))
            var[...] = jnp.float32(base - eps)
            down = float(loss(op))
            var[...] = jnp.float32(base)
            numeric = (up - down) / (2 * eps)
            analytic = float(getattr(grads, name)[...])
            assert abs(analytic - numeric) < 2e-3 + 0.02 * abs(numeric), (cls.__name__, name)
