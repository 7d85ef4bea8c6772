"""The gallery command writes a PNG with a row per operator."""

import inspect

import pytest
from flax import nnx
from ops_reference import quick_compiles  # noqa: F401  (fixture)
from PIL import Image

import feedax as fx
from feedax import gallery
from feedax.cli import main

NOT_SHOWN = {  # not images, or shown by another row
    "OneHot",
    "LabelSmoothing",
    "ToFloat",
    "RunningNormalize",
    "BrightnessContrast",
    "Sequential",
}


def test_gallery_command_writes_a_png(tmp_path):
    out = tmp_path / "gallery.png"
    assert (
        main(
            [
                "gallery",
                "--only",
                "Invert,MixUp",
                "--only",
                "RandomAffine",
                str(out),
                "--size",
                "32",
            ]
        )
        == 0
    )
    image = Image.open(out)
    cell = 32 + gallery.GAP
    assert image.size == (
        gallery.LABEL_WIDTH + gallery.RECORDS * cell + gallery.GAP,
        4 * cell + gallery.GAP,
    )
    assert main(["gallery", str(out), "--only", "NoSuchOp"]) == 2


def test_gallery_only_does_not_swallow_the_output_name(tmp_path, capsys):
    # nargs="+" used to read "out.png" as one more operator name.
    with pytest.raises(SystemExit):
        main(["gallery", "--only", "Invert", "MixUp", str(tmp_path / "out.png")])
    assert "unrecognized arguments" in capsys.readouterr().err


def test_gallery_shows_every_image_operator():
    names = " ".join(gallery._gallery_ops(nnx.Rngs(0)))
    operators = {
        obj.__name__  # OneOf is RandomChoice
        for name in fx.__all__
        if inspect.isclass(obj := getattr(fx, name))
        and issubclass(obj, fx.Operator | fx.BatchOperator)
        and not inspect.isabstract(obj)
    }
    missing = {n for n in operators - NOT_SHOWN if n not in names}
    assert not missing, missing
