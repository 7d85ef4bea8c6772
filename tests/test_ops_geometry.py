"""Geometry operators against references (NumPy, PIL) on a real photograph.

References and tolerances:
- Pad, RandomCrop, CenterCrop, RandomFlip: NumPy (np.pad / slicing / np.flip), exact.
- Resize, resized crop: PIL ``Image.resize`` (with ``box=``) on 32-bit float images,
  max abs error 1e-4 (bilinear, bicubic, lanczos3); nearest: >= 97% of pixels equal (PIL
  and we break exact ties of ``(i + 0.5) * scale`` differently).
- Rotation: PIL ``Image.rotate``; affine: PIL ``Image.transform(AFFINE)`` with the inverse
  of a forward matrix built and inverted independently in NumPy. Float images, bilinear
  max abs error 1e-4; nearest >= 99% of pixels equal.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from ops_reference import (
    china,
    draws,
    jit,
    level_diff,
    one,
    pil_float,
    quick_compiles,  # noqa: F401  (fixture)
    run,
)
from PIL import Image

import feedax as fx
from feedax import functional as F

IMG = china(64)
FLOAT = IMG.astype(np.float32) / 255.0


def batch(n=8, dtype=np.uint8):
    rng = np.random.default_rng(1)
    crops = [IMG[y : y + 48, x : x + 48] for y, x in rng.integers(0, 16, (n, 2))]
    x = np.stack(crops)
    return {"image": jnp.asarray(x if dtype == np.uint8 else x / np.float32(255))}


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect", "symmetric"])
def test_pad_matches_numpy(mode):
    op = fx.Pad((3, 1, 2, 5), padding_mode=mode, fill=1.0)  # left, top, right, bottom
    out = np.asarray(one(op, IMG))
    kw = {"constant_values": 255} if mode == "constant" else {}
    np.testing.assert_array_equal(out, np.pad(IMG, ((1, 5), (3, 2), (0, 0)), mode=mode, **kw))


@pytest.mark.parametrize("mode", ["constant", "reflect"])
def test_random_crop_is_the_window_of_the_padded_image_at_its_draw(mode):
    op = fx.RandomCrop(40, padding=6, padding_mode=mode, rngs=nnx.Rngs(augment=0))
    b = batch(16)
    out = np.asarray(run(op, b)["image"])
    padded = np.pad(np.asarray(b["image"]), ((0, 0), (6, 6), (6, 6), (0, 0)), mode=mode)
    offsets = list(zip(*(np.asarray(v).tolist() for v in draws(op, (48, 48, 3), 16)), strict=True))
    for i, (top, left) in enumerate(offsets):
        np.testing.assert_array_equal(out[i], padded[i, top : top + 40, left : left + 40])
    assert all(0 <= t <= 20 and 0 <= left <= 20 for t, left in offsets)
    assert len(set(offsets)) > 12


def test_center_crop_matches_torchvision_rounding():
    for size in [(31, 20), (64, 64), (1, 63)]:
        out = np.asarray(one(fx.CenterCrop(size), IMG))
        top, left = round((64 - size[0]) / 2), round((64 - size[1]) / 2)
        np.testing.assert_array_equal(out, IMG[top : top + size[0], left : left + size[1]])


@pytest.mark.parametrize("method", ["bilinear", "bicubic", "lanczos3"])
@pytest.mark.parametrize("size", [(23, 37), (97, 80)], ids=["down", "up"])
def test_resize_matches_pil_on_float_images(method, size):
    pil = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "lanczos3": Image.LANCZOS}
    out = np.asarray(one(fx.Resize(size, method=method), FLOAT))
    ref = pil_float(FLOAT, lambda im: im.resize(size[::-1], pil[method]))
    assert out.shape == (*size, 3)
    np.testing.assert_allclose(out, ref, atol=1e-4)


def test_resize_nearest_and_uint8_against_pil():
    # Nearest exact: the source pixel is floor((i + 0.5) * in / out), exactly (NumPy). PIL
    # accumulates the position in floating point and so breaks exact ties (row 11 here:
    # 11.5 * 64 / 23 = 32) downwards: it agrees on all other rows.
    out = np.asarray(jit(F.resize, FLOAT, size=(23, 37), method="nearest_exact"))
    rows = np.floor((np.arange(23) + 0.5) * 64 / 23).astype(int)
    cols = np.floor((np.arange(37) + 0.5) * 64 / 37).astype(int)
    np.testing.assert_array_equal(out, FLOAT[rows[:, None], cols[None, :]])
    ref = pil_float(FLOAT, lambda im: im.resize((37, 23), Image.NEAREST))
    assert np.mean(np.abs(out - ref) < 1e-6) > 0.95
    # uint8: PIL rounds between its two passes; we round once.
    out8 = np.asarray(jit(F.resize, IMG, size=(23, 37), method="bilinear"))
    ref8 = np.asarray(Image.fromarray(IMG).resize((37, 23), Image.BILINEAR))
    assert out8.dtype == np.uint8 and level_diff(out8, ref8).max() <= 1


def test_resize_smaller_edge():
    x = jax.ShapeDtypeStruct((1, 30, 50, 3), jnp.uint8)
    y = jax.ShapeDtypeStruct((1, 50, 30, 3), jnp.uint8)
    shape = jax.eval_shape(lambda x: run(fx.Resize(10), {"image": x})["image"], x).shape
    assert shape == (1, 10, 16, 3)
    assert jax.eval_shape(lambda y: run(fx.Resize(10), {"image": y})["image"], y).shape[1:3] == (
        16,
        10,
    )


@pytest.mark.parametrize("method", ["bilinear", "bicubic", "nearest_exact"])
def test_resized_crop_matches_pil_resize_with_box(method):
    pil = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest_exact": Image.NEAREST}
    for top, left, h, w in [(5, 7, 30, 41), (10.5, 3.25, 20.0, 50.5)]:
        out = np.asarray(jit(F.resized_crop, FLOAT, top, left, h, w, size=(24, 24), method=method))
        box = (left, top, left + w, top + h)
        ref = pil_float(FLOAT, lambda im, box=box: im.resize((24, 24), pil[method], box=box))
        np.testing.assert_allclose(out, ref, atol=1e-4)


def test_random_resized_crop_boxes_follow_scale_and_ratio():
    op = fx.RandomResizedCrop(16, scale=(0.2, 0.6), ratio=(0.5, 2.0), rngs=nnx.Rngs(augment=1))
    top, left, h, w = (np.asarray(v) for v in draws(op, (48, 64, 3), 200))
    boxes = np.stack([top, left, h, w], axis=1)
    assert (
        (top >= 0).all() and (left >= 0).all() and (top + h <= 48).all() and (left + w <= 64).all()
    )
    area = h * w / (48 * 64)
    assert area.min() > 0.18 and area.max() < 0.63  # rounding of the sides
    aspect = w / h
    assert aspect.min() > 0.45 and aspect.max() < 2.2
    assert len({tuple(b) for b in boxes}) > 150
    # The op's output is the functional resized crop at its draw.
    b = batch(4)
    out = np.asarray(run(op, b)["image"])
    box = draws(op, (48, 48, 3), 4)
    expected = jax.jit(jax.vmap(lambda x, *box: F.resized_crop(x, *box, (16, 16))))(
        b["image"], *box
    )
    assert level_diff(out, expected).max() <= 1 and (level_diff(out, expected) > 0).mean() < 0.01


def test_random_resized_crop_falls_back_to_the_central_crop():
    # No box of half the area or more can have aspect >= 50 in a 48x48 image: all tries fail.
    op = fx.RandomResizedCrop(8, scale=(0.5, 1.0), ratio=(50.0, 60.0), rngs=nnx.Rngs(augment=0))
    top, left, h, w = (int(v[3]) for v in draws(op, (48, 48, 3), 4))
    assert (h, w) == (1, 48) and (top, left) == (23, 0)  # aspect clamped to 50 -> 48 / 50


def test_random_flip_matches_numpy_and_p():
    op = fx.RandomFlip("vertical", p=0.3, rngs=nnx.Rngs(augment=0))
    x = jnp.broadcast_to(jnp.asarray(IMG), (200, *IMG.shape))
    out = np.asarray(run(op, {"image": x})["image"])
    flipped = np.array([np.array_equal(o, IMG[::-1]) for o in out])
    kept = np.array([np.array_equal(o, IMG) for o in out])
    assert (flipped | kept).all()
    assert 0.3 - 4 * np.sqrt(0.21 / 200) < flipped.mean() < 0.3 + 4 * np.sqrt(0.21 / 200)


@pytest.mark.parametrize("angle", [30.0, -47.0, 90.0])
def test_rotate_matches_pil(angle):
    out = np.asarray(jit(F.rotate, FLOAT, angle, interpolation="bilinear"))
    ref = pil_float(FLOAT, lambda im: im.rotate(angle, resample=Image.BILINEAR))
    np.testing.assert_allclose(out, ref, atol=1e-4)
    out = np.asarray(jit(F.rotate, FLOAT, angle, interpolation="nearest"))
    ref = pil_float(FLOAT, lambda im: im.rotate(angle, resample=Image.NEAREST))
    assert np.mean(np.abs(out - ref) < 1e-6) > 0.99


def forward_matrix(angle, translate, scale, shear, center):
    """3x3 forward map in torchvision's closed form (``_get_inverse_affine_matrix``'s
    comment: RSS = R(a) S(s) SHy(sy) SHx(sx), angle clockwise), independently of feedax."""
    a, sx, sy = np.deg2rad([angle, *shear])
    rss = scale * np.array(
        [
            [np.cos(a - sy) / np.cos(sy), -np.cos(a - sy) * np.tan(sx) / np.cos(sy) - np.sin(a)],
            [np.sin(a - sy) / np.cos(sy), -np.sin(a - sy) * np.tan(sx) / np.cos(sy) + np.cos(a)],
        ]
    )

    def t(v):
        return np.array([[1, 0, v[0]], [0, 1, v[1]], [0, 0, 1.0]])

    m = np.eye(3)
    m[:2, :2] = rss
    c = np.asarray(center)
    return t(c + np.asarray(translate)) @ m @ t(-c)


def test_a_positive_angle_turns_clockwise_in_affine_and_counter_clockwise_in_rotate():
    x = np.zeros((9, 9, 1), np.float32)
    x[0, 4] = 1.0  # a dot at the top centre
    right = np.asarray(F.affine(x, 90.0, interpolation="nearest"))[..., 0]
    left = np.asarray(F.rotate(x, 90.0, interpolation="nearest"))[..., 0]
    assert np.argwhere(right).tolist() == [[4, 8]]  # clockwise: top -> right
    assert np.argwhere(left).tolist() == [[4, 0]]  # counter-clockwise: top -> left
    # Shear as torchvision: x -= tan(sx) * (y - cy): the top row moves right for sx > 0.
    sheared = np.asarray(F.affine(x, 0.0, shear=(45.0, 0.0), interpolation="nearest"))[..., 0]
    assert np.argwhere(sheared)[0, 1] > 4


@pytest.mark.parametrize(
    ("angle", "translate", "scale", "shear"),
    [(25.0, (3.0, -5.5), 1.2, (10.0, 0.0)), (-60.0, (0.0, 7.0), 0.8, (-5.0, 12.0))],
)
def test_affine_matches_pil_transform(angle, translate, scale, shear):
    inverse = np.linalg.inv(forward_matrix(angle, translate, scale, shear, (32.0, 32.0)))
    data = tuple(inverse[:2].ravel())
    for method, pil, check in [
        ("bilinear", Image.BILINEAR, lambda o, r: np.abs(o - r).max() < 1e-4),
        ("nearest", Image.NEAREST, lambda o, r: np.mean(np.abs(o - r) < 1e-6) > 0.99),
    ]:
        out = np.asarray(jit(F.affine, FLOAT, angle, translate, scale, shear, interpolation=method))
        ref = pil_float(FLOAT, lambda im, p=pil: im.transform((64, 64), Image.AFFINE, data, p))
        assert check(out, ref), method


def test_random_affine_output_is_the_functional_warp_at_its_draw():
    op = fx.RandomAffine(
        30,
        translate=(0.1, 0.2),
        scale=(0.7, 1.3),
        shear=(-10, 10, -5, 5),
        interpolation="bilinear",
        rngs=nnx.Rngs(augment=2),
    )
    b = batch(4)
    out = np.asarray(run(op, b)["image"])
    matrices = draws(op, (48, 48, 3), 4)
    expected = jax.jit(jax.vmap(F.warp_affine))(b["image"], matrices)
    assert level_diff(out, expected).max() <= 1 and (level_diff(out, expected) > 0).mean() < 0.01
    assert len({m.tobytes() for m in np.asarray(matrices)}) == 4
    # Rotation only: the linear part is a pure rotation within +-40 degrees.
    rot = fx.RandomRotation(40, rngs=nnx.Rngs(augment=2))
    m = np.asarray(draws(rot, (48, 48, 3), 1)[0])
    assert np.isclose(np.linalg.det(m[:, :2]), 1.0, atol=1e-5)
    assert abs(np.degrees(np.arctan2(m[0, 1], m[0, 0]))) <= 40.0


SPATIAL = [
    (
        "RandomCrop",
        lambda: fx.RandomCrop(40, padding=4, fields=("mask",), rngs=nnx.Rngs(augment=0)),
    ),
    ("CenterCrop", lambda: fx.CenterCrop(30, fields=("mask",))),
    ("Pad", lambda: fx.Pad(3, padding_mode="reflect", fields=("mask",))),
    ("Resize", lambda: fx.Resize((20, 33), method="nearest", fields=("mask",))),
    ("RandomFlip", lambda: fx.RandomFlip(fields=("mask",), rngs=nnx.Rngs(augment=0))),
    (
        "RandomResizedCrop",
        lambda: fx.RandomResizedCrop(
            24, method="nearest", fields=("mask",), rngs=nnx.Rngs(augment=0)
        ),
    ),
    (
        "RandomAffine",
        lambda: fx.RandomAffine(
            30,
            translate=(0.1, 0.1),
            scale=(0.8, 1.2),
            interpolation="nearest",
            fields=("mask",),
            rngs=nnx.Rngs(augment=0),
        ),
    ),
]


@pytest.mark.parametrize(("name", "make"), SPATIAL, ids=[s[0] for s in SPATIAL])
def test_extra_fields_get_the_same_draw(name, make):
    b = batch(8)
    b["mask"] = b["image"][..., 0]  # HW label map equal to channel 0
    op = make()
    out = run(op, b)
    np.testing.assert_array_equal(out["mask"], out["image"][..., 0])
    if isinstance(op, fx.RandomOperator):
        assert not np.array_equal(out["mask"][0], out["mask"][1]) or name == "RandomFlip"
        op.eval()
        same = run(op, b)
        np.testing.assert_array_equal(same["mask"], same["image"][..., 0])
        assert same["image"].shape == out["image"].shape  # eval keeps the train shape
        if op.eval_params(b["image"].shape[1:]) is None:
            np.testing.assert_array_equal(same["mask"], b["mask"])


def test_extra_field_of_another_size_is_rejected():
    b = {"image": jnp.zeros((2, 8, 8, 3)), "mask": jnp.zeros((2, 4, 4))}
    with pytest.raises(fx.OperatorError, match="extra field 'mask' must be HW or HWC"):
        run(fx.RandomFlip(fields=("mask",), rngs=nnx.Rngs(augment=0)), b)


@pytest.mark.parametrize("method", ["bilinear", "bicubic", "lanczos3"])
def test_strong_downscale_keeps_every_tap(method):
    # 64 -> 5 pixels: each output pixel sums about 13 (bilinear) to 39 (lanczos3) inputs.
    pil = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "lanczos3": Image.LANCZOS}
    out = np.asarray(jit(F.resize, FLOAT, size=(5, 7), method=method))
    ref = pil_float(FLOAT, lambda im: im.resize((7, 5), pil[method]))
    np.testing.assert_allclose(out, ref, atol=1e-4)
