"""Constructors validate their arguments and say what was expected, what came, the fix."""

import pytest
from flax import nnx

import feedax as fx


def r():
    return nnx.Rngs(augment=0)


BAD = [
    (lambda: fx.RandomCrop(4, padding=(1, 2, 3), rngs=r()), "padding must be an int >= 0"),
    (lambda: fx.RandomCrop(4, padding_mode="wrap", rngs=r()), "padding_mode must be 'constant'"),
    (lambda: fx.RandomCrop(4, fields=("image",), rngs=r()), "fields must be a sequence of other"),
    (lambda: fx.CenterCrop((4, 0)), "size must be positive"),
    (lambda: fx.Pad(-1), "padding must be an int >= 0"),
    (lambda: fx.Pad(1, padding_mode="mirror"), "padding_mode must be 'constant'"),
    (lambda: fx.Resize(8, method="area"), "method must be 'nearest'"),
    (lambda: fx.Resize((8,)), "size must be positive"),
    (
        lambda: fx.RandomResizedCrop(8, scale=(0.5, 0.1), rngs=r()),
        r"scale must be a pair \(min, max\)",
    ),
    (lambda: fx.RandomResizedCrop(8, ratio=(0, 1), rngs=r()), "ratio must be a pair"),
    (lambda: fx.RandomFlip(p=-0.1, rngs=r()), r"p must lie in \[0, 1\]"),
    (
        lambda: fx.RandomRotation(400, rngs=r()),
        r"degrees must be a (finite )?number in \[0.0, 360.0\]",
    ),
    (
        lambda: fx.RandomAffine(translate=(0.5, 2.0), rngs=r()),
        r"translate\[1\] must be a (finite )?number in",
    ),
    (
        lambda: fx.RandomAffine(shear=(1, 2, 3), rngs=r()),
        "shear must be a number, a pair or a 4-tuple",
    ),
    (lambda: fx.RandomAffine(scale=(2.0, 1.0), rngs=r()), "scale must be a pair"),
    (lambda: fx.RandomAffine(interpolation="bicubic", rngs=r()), "interpolation must be 'nearest'"),
    (lambda: fx.Brightness(-0.5, rngs=r()), "factor must be a (finite )?number in"),
    (lambda: fx.Contrast((1.5, 0.5), rngs=r()), r"factor must be a pair \(min, max\)"),
    (lambda: fx.Saturation("high", rngs=r()), r"factor must be a pair \(min, max\) of numbers"),
    (lambda: fx.Hue(0.7, rngs=r()), r"factor must be a (finite )?number in \[0.0, 0.5\]"),
    (lambda: fx.Sharpness((-1.0, 1.0), rngs=r()), "factor must be a pair"),
    (lambda: fx.ColorJitter(hue=(-0.6, 0.1), rngs=r()), "Hue: factor must be a pair"),
    (lambda: fx.Grayscale(2), "num_output_channels must be 1 or 3"),
    (lambda: fx.RandomGrayscale(1.5, rngs=r()), r"p must lie in \[0, 1\]"),
    (lambda: fx.Solarize(1.5), r"threshold must be a (finite )?number in \[0.0, 1.0\]"),
    (lambda: fx.Posterize(9), r"bits must be an int in \[0, 8\]"),
    (lambda: fx.GaussianBlur(4, rngs=r()), "kernel_size must be an odd int"),
    (lambda: fx.GaussianBlur(3, sigma=(2.0, 1.0), rngs=r()), "sigma must be a pair"),
    (lambda: fx.GaussianNoise(-0.1, rngs=r()), "std must be a (finite )?number in"),
    (
        lambda: fx.RandomErasing(value="noise", rngs=r()),
        "value must be a number, one number per channel",
    ),
    (lambda: fx.RandomErasing(scale=(0.1, 2.0), rngs=r()), "scale must be a pair"),
    (lambda: fx.Cutout(0, rngs=r()), "size must be positive"),
    (lambda: fx.RandAugment(magnitude=31, rngs=r()), r"magnitude must be an int in \[0, 30\]"),
    (lambda: fx.RandAugment(num_ops=0, rngs=r()), "num_ops must be an int >= 1"),
    (
        lambda: fx.TrivialAugment(num_magnitude_bins=1, rngs=r()),
        "num_magnitude_bins must be an int >= 2",
    ),
    (lambda: fx.OneHot(0), "num_classes must be an int >= 1"),
    (lambda: fx.OneHot(3, dtype="int32"), "dtype must be a float dtype"),
    (lambda: fx.LabelSmoothing(1.5), r"epsilon must be a (finite )?number in \[0.0, 1.0\]"),
    (lambda: fx.MixUp(0.0, rngs=r()), "alpha must be a (finite )?number in"),
    (lambda: fx.CutMix(rngs=0), "rngs must be an nnx.Rngs"),
    (lambda: fx.MixUp(label_field="", rngs=r()), "label_field must be a non-empty string"),
    (lambda: fx.RandomApply(fx.Invert(), p=2, rngs=r()), r"p must lie in \[0, 1\]"),
    (lambda: fx.RandomApply([lambda r: r], rngs=r()), "part 0 must be a feedax Operator"),
    (
        lambda: fx.RandomChoice([fx.Invert()], weights=[-1], rngs=r()),
        "weights must be 1 non-negative",
    ),
    (lambda: fx.Brightness(0.5, rngs=3), "rngs must be an nnx.Rngs"),
]


@pytest.mark.parametrize(("make", "match"), BAD, ids=[m for _, m in BAD])
def test_bad_arguments_raise_operator_error(make, match):
    with pytest.raises(fx.OperatorError, match=match) as info:
        make()
    assert "got" in str(info.value) or "rngs" in match


def test_colour_ops_reject_other_channel_counts():
    import jax.numpy as jnp
    from ops_reference import run

    with pytest.raises(fx.OperatorError, match="1 \\(grey\\) or 3 \\(RGB\\) channels"):
        run(fx.Saturation(0.5, rngs=r()), {"image": jnp.zeros((2, 4, 4, 4))})
