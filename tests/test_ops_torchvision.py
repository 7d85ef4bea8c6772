"""Operators named after torchvision transforms mean what torchvision means.

Each test pins one convention a user porting a torchvision recipe relies on: fill scale
and rounding, argument order, direction, defaults, and dtypes.
"""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import feedax as fx
import feedax.functional as F


def one(op, x):
    return np.asarray(
        fx.apply_operators(op, {"image": jnp.asarray(x)[None]}, indices=[0])["image"][0]
    )


@pytest.mark.parametrize(("fill", "level"), [(0.5, 128), (1.0, 255), (100 / 255, 100), (0.0, 0)])
def test_a_uint8_fill_is_rounded_to_a_level_the_same_eager_and_under_jit(fill, level):
    x = jnp.zeros((4, 4, 1), jnp.uint8)
    eager = np.asarray(F.pad(x, (1, 0, 0, 0), "constant", fill))
    jitted = np.asarray(jax.jit(lambda v: F.pad(v, (1, 0, 0, 0), "constant", fill))(x))
    assert eager[0, 0, 0] == jitted[0, 0, 0] == level
    op = fx.RandomCrop(6, padding=2, fill=fill, rngs=nnx.Rngs(augment=0))
    op.eval()
    assert one(op, x)[0, 0, 0] == level  # eval: the centre of the padded image


@pytest.mark.parametrize(
    "make",
    [
        lambda: fx.Pad(1, fill=100),
        lambda: fx.RandomCrop(4, padding=2, fill=255, rngs=nnx.Rngs(augment=0)),
        lambda: fx.RandomRotation(10, fill=2.0, rngs=nnx.Rngs(augment=0)),
        lambda: fx.RandomErasing(1.0, value=(10, 20, 30), rngs=nnx.Rngs(augment=0)),
        lambda: fx.Cutout(2, value=-0.5, rngs=nnx.Rngs(augment=0)),
    ],
)
def test_a_fill_off_the_unit_scale_of_uint8_is_an_error_not_a_wrap(make):
    source = fx.ArraySource({"image": np.zeros((4, 4, 4, 3), np.uint8)})
    with pytest.raises(fx.FeedaxError, match=r"outside \[0, 1\], the unit scale of uint8"):
        fx.Pipeline(source, batch_size=2, operators=[make()])


def test_a_float_fill_may_be_any_value():
    x = jnp.zeros((2, 2, 1), jnp.float32)
    assert float(F.pad(x, (1, 0, 0, 0), "constant", -2.5)[0, 0, 0]) == -2.5


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_colour_jitter_runs_on_half_precision_images_and_keeps_their_dtype(dtype):
    images = np.random.default_rng(0).random((4, 8, 8, 3)).astype(dtype)
    op = fx.ColorJitter(0.4, 0.4, 0.4, 0.1, rngs=nnx.Rngs(augment=0))
    pipe = fx.Pipeline(fx.ArraySource({"image": images}), batch_size=2, operators=[op])
    batch = next(iter(pipe))
    assert batch["image"].dtype == dtype
    assert one(fx.Normalize(0.5, 0.25), images[0]).dtype == np.float32  # as documented
    reference = one(op, images[0].astype(np.float32))
    np.testing.assert_allclose(one(op, images[0]).astype(np.float32), reference, atol=2e-2)


def test_gaussian_blur_kernel_size_is_width_then_height():
    x = np.zeros((15, 15, 1), np.float32)
    x[7, :] = 1.0  # a horizontal line: only a vertical blur spreads it
    tall = one(fx.GaussianBlur((1, 9), sigma=3.0, rngs=nnx.Rngs(augment=0)), x)[..., 0]
    wide = one(fx.GaussianBlur((9, 1), sigma=3.0, rngs=nnx.Rngs(augment=0)), x)[..., 0]
    assert tall[3, 7] > 0.05 and tall[7, 7] < 0.5  # spread up and down
    np.testing.assert_allclose(wide, x[..., 0], atol=1e-6)  # blurred along the line only
    np.testing.assert_allclose(
        np.asarray(F.gaussian_blur(jnp.asarray(x), (1, 9), (3.0, 3.0)))[..., 0], tall, atol=1e-6
    )


def test_defaults_are_torchvisions():
    def default(cls, name):
        return inspect.signature(cls.__init__).parameters[name].default

    assert default(fx.RandomRotation, "interpolation") == "nearest"
    assert default(fx.RandomAffine, "interpolation") == "nearest"
    assert default(fx.GaussianNoise, "std") == 0.1


def test_random_affine_turns_clockwise_and_random_rotation_counter_clockwise():
    x = np.zeros((9, 9, 1), np.float32)
    x[0, 4] = 1.0
    affine = fx.RandomAffine((90, 90), rngs=nnx.Rngs(augment=0))
    rotation = fx.RandomRotation((90, 90), rngs=nnx.Rngs(augment=0))
    assert np.argwhere(one(affine, x)[..., 0]).tolist() == [[4, 8]]
    assert np.argwhere(one(rotation, x)[..., 0]).tolist() == [[4, 0]]


def test_cutout_erases_exactly_its_size_away_from_the_border():
    op = fx.Cutout(5, rngs=nnx.Rngs(augment=0))
    erased = [
        int(
            (
                np.asarray(
                    fx.apply_operators(op, {"image": jnp.ones((1, 64, 64, 1))}, indices=[i])[
                        "image"
                    ]
                )
                == 0
            ).sum()
        )
        for i in range(20)
    ]
    assert max(erased) == 25  # 5 x 5 (the paper's code: 4 x 4 for an odd size)


def test_unit_scale_statistics_on_uint8_are_caught_when_the_pipeline_is_built():
    source = fx.ArraySource({"image": np.zeros((4, 4, 4, 3), np.uint8)})
    imagenet = fx.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    with pytest.raises(fx.OperatorError, match=r"look like unit-scale statistics.*ToFloat"):
        fx.Pipeline(source, batch_size=2, operators=[imagenet])
    fine = [fx.ToFloat(), fx.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))]
    assert next(iter(fx.Pipeline(source, batch_size=2, operators=fine)))["image"].dtype == "float32"


@pytest.mark.parametrize("on_device", [False, True])
def test_float_images_off_the_unit_scale_are_caught_on_the_first_batch(on_device):
    images = np.random.default_rng(0).uniform(0, 255, (8, 4, 4, 3)).astype(np.float32)
    jitter = fx.RandomApply(fx.ColorJitter(0.4, rngs=nnx.Rngs(augment=0)), 0.5, rngs=nnx.Rngs(1))
    source = fx.ArraySource({"image": images}, on_device=on_device)
    pipe = fx.Pipeline(source, batch_size=4, operators=[jitter])
    with pytest.raises(fx.PipelineError, match=r"ColorJitter reads field 'image'.*\[0, 1\]"):
        next(iter(pipe))
    scaled = fx.ArraySource({"image": images / 255}, on_device=on_device)
    ok = fx.Pipeline(scaled, batch_size=4, operators=[fx.ColorJitter(0.4, rngs=nnx.Rngs(0))])
    assert len(list(ok.epoch())) == 2


@pytest.mark.parametrize(("src", "out"), [(10, 4), (4, 10), (7, 3)])
def test_nearest_is_torchvisions_rule_and_nearest_exact_pils(src, out):
    x = jnp.arange(src * src, dtype=jnp.float32).reshape(src, src, 1)
    i = np.arange(out)
    floor = np.minimum(np.floor(i * src / out).astype(int), src - 1)  # torch "nearest"
    exact = np.minimum(np.floor((i + 0.5) * src / out).astype(int), src - 1)
    got = np.asarray(F.resize(x, (out, out), "nearest"))[..., 0]
    np.testing.assert_array_equal(got, np.asarray(x)[floor[:, None], floor[None, :], 0])
    got = np.asarray(F.resize(x, (out, out), "nearest_exact"))[..., 0]
    np.testing.assert_array_equal(got, np.asarray(x)[exact[:, None], exact[None, :], 0])
    moved = fx.apply_operators(
        fx.Resize((out, out), fields=("mask",)),
        {"image": x[None], "mask": x[None, ..., 0]},
        indices=[0],
    )["mask"][0]
    np.testing.assert_array_equal(moved, np.asarray(x)[floor[:, None], floor[None, :], 0])


@pytest.mark.parametrize(("dtype", "top"), [(np.uint16, 65535), (np.int16, 32767)])
def test_16_bit_images_are_scaled_by_their_full_level(dtype, top):
    rng = np.random.default_rng(1)
    x = (rng.random((8, 8, 3)) * top).astype(dtype)
    unit = x.astype(np.float32) / top
    np.testing.assert_allclose(one(fx.ToFloat(), x), unit, atol=1e-7)
    np.testing.assert_array_equal(one(fx.Invert(), x), top - x.astype(np.int64))
    jitter = fx.ColorJitter(0.4, 0.4, 0.4, 0.1, rngs=nnx.Rngs(augment=0))
    np.testing.assert_allclose(one(jitter, x) / top, one(jitter, unit), atol=1.5 / top)
    padded = np.asarray(F.pad(jnp.asarray(x), (1, 0, 0, 0), "constant", 0.5))
    assert padded.dtype == dtype and padded[0, 0, 0] == round(0.5 * top)
    with pytest.raises(fx.OperatorError, match="expected uint8 or float"):
        one(fx.Equalize(), x)  # 8-bit levels only, as PIL and torchvision


def test_a_colour_operator_after_normalize_is_an_error_when_built():
    source = fx.ArraySource({"image": np.zeros((4, 8, 8, 3), np.uint8)})
    late = [fx.Normalize(128.0, 64.0), fx.GaussianBlur(3, rngs=nnx.Rngs(augment=0))]
    with pytest.raises(fx.PipelineError, match="GaussianBlur reads field 'image' after Normal"):
        fx.Pipeline(source, batch_size=2, operators=late)
    other = [fx.Normalize(128.0, 64.0, field="mask"), fx.GaussianBlur(3, rngs=nnx.Rngs(0))]
    source = fx.ArraySource(
        {"image": np.zeros((4, 8, 8, 3), np.uint8), "mask": np.zeros((4, 8, 8, 1), np.uint8)}
    )
    fx.Pipeline(source, batch_size=2, operators=other)  # another field: fine
