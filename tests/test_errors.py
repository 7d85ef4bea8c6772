"""Every bad input is rejected with a message that names what, where, and the fix."""

import numpy as np
import pytest
from conftest import make_images, make_pipeline
from flax import nnx

import feedax as fx


def test_fields_of_different_lengths():
    with pytest.raises(fx.SourceError, match=r"same number of records.*'image': 10, 'label': 9"):
        fx.ArraySource({"image": make_images(10), "label": np.arange(9)})


@pytest.mark.parametrize(
    ("data", "match"),
    [({}, "expected a non-empty dict"), ({"x": np.zeros((0, 3))}, r"the source is empty \(0 rec")],
)
def test_empty_source(data, match):
    with pytest.raises(fx.SourceError, match=match):
        fx.ArraySource(data)


def test_scalar_field_and_non_dict():
    with pytest.raises(fx.SourceError, match="field 'x' is a scalar"):
        fx.ArraySource({"x": 3})
    with pytest.raises(fx.SourceError, match="expected a non-empty dict"):
        fx.ArraySource([np.zeros(3)])


def test_out_of_range_index_names_the_source_and_index():
    src = fx.ArraySource({"x": np.arange(5)}, name="train")
    with pytest.raises(IndexError, match=r"train: record index 7 is out of range.*5 records"):
        src.read(np.array([1, 7]))


def test_batch_larger_than_source_with_drop_remainder():
    with pytest.raises(fx.PipelineError, match=r"batch_size=64 is larger than the source.*10 rec"):
        make_pipeline(10, batch_size=64)
    assert make_pipeline(10, batch_size=64, drop_remainder=False).steps_per_epoch == 1


@pytest.mark.parametrize("bad", [0, -1, 2.5])
def test_bad_batch_size(bad):
    with pytest.raises(fx.PipelineError, match="batch_size must be an int >= 1"):
        make_pipeline(10, batch_size=bad)


def test_missing_field_named_with_the_fields_present():
    src = fx.ArraySource({"img": make_images(10)})
    with pytest.raises(
        fx.OperatorError, match=r"RandomFlip: the record has no field 'image'.*\['img'\].*field="
    ):
        fx.Pipeline(src, [fx.RandomFlip(rngs=nnx.Rngs(0))], batch_size=2)


def test_wrong_rank():
    src = fx.ArraySource({"image": np.zeros((10, 8, 8), np.uint8)})
    with pytest.raises(
        fx.OperatorError, match=r"RandomCrop: field 'image'.*HWC \(rank 3\), got shape \(8, 8\)"
    ):
        fx.Pipeline(src, [fx.RandomCrop(4, rngs=nnx.Rngs(0))], batch_size=2)


def test_wrong_dtype():
    src = fx.ArraySource({"image": np.zeros((10, 8, 8, 3), np.int32)})
    with pytest.raises(fx.OperatorError, match="dtype int32, expected uint8 or uint16 or int16"):
        fx.Pipeline(src, [fx.Normalize(0, 1)], batch_size=2)


def test_crop_larger_than_image():
    src = fx.ArraySource({"image": make_images(10, size=8)})
    with pytest.raises(fx.OperatorError, match=r"crop size \(12, 12\) is larger than the padded"):
        fx.Pipeline(src, [fx.RandomCrop(12, padding=1, rngs=nnx.Rngs(0))], batch_size=2)


def test_channel_count_mismatch():
    src = fx.ArraySource({"image": make_images(10, channels=3)})
    with pytest.raises(fx.OperatorError, match="built for 1 channels but field 'image' has 3"):
        fx.Pipeline(src, [fx.RunningNormalize(1)], batch_size=2)
    with pytest.raises(fx.OperatorError, match="2 per-channel values given"):
        fx.Pipeline(src, [fx.Normalize((1, 2), (1, 1))], batch_size=2)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: fx.RandomCrop(0, rngs=nnx.Rngs(0)), "size must be positive"),
        (lambda: fx.RandomCrop(4, padding=-1, rngs=nnx.Rngs(0)), "padding must be an int >= 0"),
        (lambda: fx.RandomCrop(4, rngs=0), "rngs must be an nnx.Rngs"),
        (lambda: fx.RandomFlip("diagonal", rngs=nnx.Rngs(0)), "direction must be"),
        (lambda: fx.RandomFlip(p=2.0, rngs=nnx.Rngs(0)), r"p must lie in \[0, 1\]"),
        (lambda: fx.Normalize(0, 0), "std must be positive"),
        (lambda: fx.Normalize((1, 2, 3), (1, 2)), "mean has 3 values and std 2"),
        (lambda: fx.RunningNormalize(0), "channels must be an int >= 1"),
        (lambda: fx.RunningNormalize(3, momentum=1.0), r"momentum must lie in \[0, 1\)"),
        (lambda: fx.Normalize(0, 1, field=""), "field must be a non-empty string"),
    ],
)
def test_operator_arguments_are_validated(make, match):
    with pytest.raises(fx.OperatorError, match=match):
        make()


def test_pipeline_arguments_are_validated():
    src = fx.ArraySource({"image": make_images(10)})
    with pytest.raises(fx.PipelineError, match="source must be a feedax Source"):
        fx.Pipeline({"image": make_images(10)}, batch_size=2)
    with pytest.raises(
        fx.PipelineError, match=r"operators\[0\] must be a feedax Operator or BatchOperator"
    ):
        fx.Pipeline(src, [lambda r: r], batch_size=2)
    with pytest.raises(fx.PipelineError, match="prefetch must be an int >= 0"):
        fx.Pipeline(src, batch_size=2, prefetch=-1)
    with pytest.raises(fx.PipelineError, match="field named 'valid'"):
        fx.Pipeline(fx.ArraySource({"valid": np.arange(3)}), batch_size=2, drop_remainder=False)


@pytest.mark.parametrize("on_device", [False, True])
@pytest.mark.parametrize(
    ("values", "match"),
    [
        (np.array([1, 2**31 + 5, 3, 4], np.int64), r"holds 2147483653 \(int64\), which int32"),
        (np.array([1.0, 1e300, 0.0, 2.0]), r"holds 1e\+300 \(float64\), which float32"),
    ],
)
def test_64_bit_values_the_device_cannot_hold_are_an_error_not_a_wrap(values, match, on_device):
    source = fx.ArraySource({"x": values}, on_device=on_device)
    with pytest.raises(fx.SourceError, match=match):
        next(iter(fx.Pipeline(source, batch_size=4)))
    fine = fx.ArraySource({"x": values % 1000}, on_device=on_device)
    assert next(iter(fx.Pipeline(fine, batch_size=4)))["x"].dtype in ("int32", "float32")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), (0.5, float("-inf"), 0.5)])
def test_non_finite_constants_are_rejected_when_built(bad):
    with pytest.raises(fx.OperatorError, match="finite"):
        fx.Normalize(bad, 1.0)
    with pytest.raises(fx.OperatorError, match="finite"):
        fx.Normalize(0.0, bad)
    with pytest.raises(fx.OperatorError, match="finite"):
        fx.GaussianNoise(float("inf"), rngs=nnx.Rngs(augment=0))


def test_normalize_takes_numpy_statistics():
    norm = fx.Normalize(np.array([1.0, 2.0, 3.0]), np.float32(2.0))
    assert norm.mean == (1.0, 2.0, 3.0) and norm.std == (2.0,)


def test_rngs_without_the_operators_stream_is_named():
    with pytest.raises(fx.OperatorError, match=r"no stream 'augment'.*it has \['params'\]"):
        fx.RandomFlip(rngs=nnx.Rngs(params=0))
    fx.RandomFlip(rngs=nnx.Rngs(params=0), stream="params")  # the stream it has: fine


@pytest.mark.parametrize(
    ("data", "ops", "error", "match"),
    [
        (
            {"x": np.arange(8, dtype=">i4")},
            [],
            fx.PipelineError,
            r"is >i4 \(not the machine's byte",
        ),
        (
            {"image": np.zeros((4, 0, 8, 3), np.uint8)},
            [fx.RandomFlip(rngs=nnx.Rngs(augment=0))],
            fx.OperatorError,
            r"empty shape \(0, 8, 3\)",
        ),
        (
            {"image": np.zeros((4, 8, 8, 3), bool), "label": np.zeros((4, 3), np.float32)},
            [fx.MixUp(0.4, rngs=nnx.Rngs(augment=0))],
            fx.OperatorError,
            "has dtype bool; mixing blends pixel values",
        ),
    ],
)
def test_odd_arrays_get_a_feedax_error_with_the_fix(data, ops, error, match):
    with pytest.raises(error, match=match):
        fx.Pipeline(fx.ArraySource(data), batch_size=2, operators=ops)


@pytest.mark.parametrize("on_device", [False, True])
def test_nan_in_a_float_field_is_caught_on_the_first_batch(on_device):
    images = np.zeros((8, 4, 4, 3), np.float32)
    images[2, 1, 1, 0] = np.nan
    source = fx.ArraySource({"image": images}, on_device=on_device)
    flip = fx.RandomFlip(rngs=nnx.Rngs(augment=0))
    pipe = fx.Pipeline(source, [flip], batch_size=4)
    with pytest.raises(fx.PipelineError, match=r"'image' of (record index|row) 2 holds NaN or inf"):
        next(iter(pipe))


@pytest.mark.parametrize("on_device", [False, True])
def test_a_label_outside_one_hots_classes_is_named(on_device):
    labels = np.array([0, 1, 2, 3, 1, 2, 7, 0])  # record 6 has class 7 of 4
    source = fx.ArraySource({"label": labels}, on_device=on_device)
    pipe = fx.Pipeline(source, [fx.Sequential([fx.OneHot(4)])], batch_size=4)  # nested: found
    with pytest.raises(fx.PipelineError, match=r"record index 6 holds the label 7, outside \[0, 4"):
        list(pipe.epoch())


def test_next_on_a_pipeline_points_to_iter_and_epoch():
    pipe = fx.Pipeline(fx.ArraySource({"x": np.arange(4)}), batch_size=2)
    with pytest.raises(TypeError, match=r"iter\(pipe\).*pipe\.epoch\(\)"):
        next(pipe)


def test_pyproject_license_is_an_spdx_string():
    # A table (license = {text = ...}) makes setuptools warn on every install.
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    assert project["project"]["license"] == "Apache-2.0"


def test_a_fractional_seed_and_a_lone_operator_are_named():
    source = fx.ArraySource({"image": np.zeros((8, 4, 4, 3), np.uint8)})
    with pytest.raises(fx.PipelineError, match=r"seed must be an int, got 1\.5"):
        fx.Pipeline(source, batch_size=2, seed=1.5)
    with pytest.raises(fx.PipelineError, match=r"got one RandomFlip\. Pass \[op\]"):
        fx.Pipeline(source, fx.RandomFlip(rngs=nnx.Rngs(augment=0)), batch_size=2)
