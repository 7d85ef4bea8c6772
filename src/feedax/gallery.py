"""A picture of every image operator: ``python -m feedax.gallery OUT.png`` (or ``feedax gallery``).

Each row is one operator applied to six records (scikit-learn's china and flower
photographs, alternating, so that MixUp and CutMix have partners), below the originals.
Each operator runs as its own compiled program, under a progress bar. Needs the demo
extra (scikit-learn ships the photographs; PIL writes the PNG).

Example:
  $ python -m feedax.gallery /tmp/gallery.png
  $ python -m feedax.gallery /tmp/few.png --size 64 --only Brightness,RandomAffine
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

import feedax as fx

RECORDS = 6
LABEL_WIDTH = 150
GAP = 4


def _gallery_ops(rngs: nnx.Rngs) -> dict[str, Callable[[str], Any]]:
    """Operator name -> a factory of the operator acting on the given field."""
    r = rngs
    return {
        "RandomCrop(pad 16, reflect)": lambda f: fx.RandomCrop(
            128, padding=16, padding_mode="reflect", field=f, rngs=r
        ),
        "CenterCrop(80)": lambda f: fx.CenterCrop(80, field=f),
        "RandomResizedCrop": lambda f: fx.RandomResizedCrop(128, field=f, rngs=r),
        "Resize(64)": lambda f: fx.Resize(64, field=f),
        "RandomFlip": lambda f: fx.RandomFlip(field=f, rngs=r),
        "RandomFlip(vertical)": lambda f: fx.RandomFlip("vertical", field=f, rngs=r),
        "RandomRotation(45)": lambda f: fx.RandomRotation(45, field=f, rngs=r),
        "RandomAffine": lambda f: fx.RandomAffine(
            20, translate=(0.2, 0.2), scale=(0.7, 1.2), shear=15, field=f, rngs=r
        ),
        "Pad(16, edge)": lambda f: fx.Pad(16, padding_mode="edge", field=f),
        "Brightness(0.6)": lambda f: fx.Brightness(0.6, field=f, rngs=r),
        "Contrast(0.8)": lambda f: fx.Contrast(0.8, field=f, rngs=r),
        "Saturation(1.0)": lambda f: fx.Saturation(1.0, field=f, rngs=r),
        "Hue(0.5)": lambda f: fx.Hue(0.5, field=f, rngs=r),
        "ColorJitter": lambda f: fx.ColorJitter(0.4, 0.4, 0.4, 0.1, field=f, rngs=r),
        "Grayscale(3)": lambda f: fx.Grayscale(3, field=f),
        "RandomGrayscale(0.5)": lambda f: fx.RandomGrayscale(0.5, field=f, rngs=r),
        "Solarize(0.5)": lambda f: fx.Solarize(0.5, field=f),
        "Posterize(2)": lambda f: fx.Posterize(2, field=f),
        "Equalize": lambda f: fx.Equalize(field=f),
        "AutoContrast": lambda f: fx.AutoContrast(field=f),
        "Invert": lambda f: fx.Invert(field=f),
        "GaussianBlur(9)": lambda f: fx.GaussianBlur(9, sigma=(0.5, 4.0), field=f, rngs=r),
        "Sharpness((0, 4))": lambda f: fx.Sharpness((0.0, 4.0), field=f, rngs=r),
        "GaussianNoise(0.1)": lambda f: fx.GaussianNoise(0.1, field=f, rngs=r),
        "RandomErasing": lambda f: fx.RandomErasing(0.9, value="random", field=f, rngs=r),
        "Cutout(48)": lambda f: fx.Cutout(48, value=0.5, field=f, rngs=r),
        "RandAugment(2, 15)": lambda f: fx.RandAugment(2, 15, field=f, rngs=r),
        "TrivialAugment": lambda f: fx.TrivialAugment(field=f, rngs=r),
        "RandomApply(Invert, 0.5)": lambda f: fx.RandomApply(fx.Invert(field=f), 0.5, rngs=r),
        "RandomChoice": lambda f: fx.RandomChoice(
            [
                fx.Equalize(field=f),
                fx.Posterize(3, field=f),
                fx.RandomRotation(30, field=f, rngs=r),
            ],
            rngs=r,
        ),
        "Normalize (shown rescaled)": lambda f: fx.Normalize(
            (124.0, 116.0, 104.0), (58.0, 57.0, 57.0), field=f
        ),
        "MixUp(1.0)": lambda f: fx.MixUp(1.0, field=f, label_field=f"{f}_label", rngs=r),
        "CutMix(1.0)": lambda f: fx.CutMix(1.0, field=f, label_field=f"{f}_label", rngs=r),
    }


def photographs(size: int) -> np.ndarray:
    """``RECORDS`` photographs (china, flower, ...) as uint8 ``size`` x ``size`` x 3."""
    from PIL import Image
    from sklearn.datasets import load_sample_image

    scenes = []
    for name in ("china.jpg", "flower.jpg"):
        image = load_sample_image(name)
        side = min(image.shape[:2])
        top, left = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
        square = Image.fromarray(image[top : top + side, left : left + side])
        scenes.append(np.asarray(square.resize((size, size), Image.Resampling.BILINEAR)))
    return np.stack([scenes[i % 2] for i in range(RECORDS)])


def render(size: int = 128, only: Sequence[str] | None = None, seed: int = 0) -> dict[str, Any]:
    """Applies the operators (all, or those whose name starts with one of ``only``).

    Returns name -> the ``RECORDS`` outputs (uint8 HWC, rescaled for float outputs), plus
    ``"original"``.
    """
    factories = _gallery_ops(nnx.Rngs(augment=seed))
    if only:
        factories = {k: v for k, v in factories.items() if any(k.startswith(o) for o in only)}
        if not factories:
            raise ValueError(
                f"no operator matches {list(only)}; names: {list(_gallery_ops(nnx.Rngs(0)))}"
            )
    from tqdm.auto import tqdm

    images = photographs(size)
    scale = size / 128
    shown = {"original": images}
    for name, make in tqdm(factories.items(), desc="gallery", unit="op", delay=1.0):
        batch: dict[str, Any] = {"image": jnp.asarray(images)}
        if name.startswith(("MixUp", "CutMix")):
            batch["image_label"] = jnp.eye(RECORDS)
        if scale != 1 and name.startswith(("RandomCrop", "RandomResizedCrop", "Cutout")):
            make = _scaled(name, size, nnx.Rngs(augment=seed))
        out = fx.apply_operators([make("image")], batch, indices=np.arange(RECORDS), epoch=0)
        x = np.asarray(out["image"])
        if x.dtype != np.uint8:  # float output: rescale each image to the full range
            lo = x.min(axis=(1, 2, 3), keepdims=True)
            hi = x.max(axis=(1, 2, 3), keepdims=True)
            x = np.round(255 * (x - lo) / np.maximum(hi - lo, 1e-6)).astype(np.uint8)
        shown[name] = x
    return shown


def _scaled(name: str, size: int, rngs: nnx.Rngs) -> Callable[[str], Any]:
    """The size-dependent operators, for a gallery of another image size."""
    if name.startswith("RandomCrop"):
        return lambda f: fx.RandomCrop(
            size, padding=size // 8, padding_mode="reflect", field=f, rngs=rngs
        )
    if name.startswith("RandomResizedCrop"):
        return lambda f: fx.RandomResizedCrop(size, field=f, rngs=rngs)
    return lambda f: fx.Cutout(max(1, 3 * size // 8), value=0.5, field=f, rngs=rngs)


def write_gallery(path: str | Path, size: int = 128, only: Sequence[str] | None = None) -> Path:
    """Writes the gallery PNG to ``path`` and returns it."""
    from PIL import Image, ImageDraw

    shown = render(size, only)
    cell = size + GAP
    width = LABEL_WIDTH + RECORDS * cell + GAP
    height = len(shown) * cell + GAP
    canvas = Image.new("RGB", (width, height), (40, 40, 40))
    draw = ImageDraw.Draw(canvas)
    for row, (name, images) in enumerate(shown.items()):
        top = GAP + row * cell
        draw.text((GAP, top + size // 2 - 6), name, fill=(230, 230, 230))
        for col, image in enumerate(images):
            tile = Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image)
            if tile.size != (size, size):  # crops / resizes: centred, at their own size
                tile = _fit(tile, size)
            canvas.paste(tile, (LABEL_WIDTH + col * cell, top))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


def _fit(tile: Any, size: int) -> Any:
    from PIL import Image

    scale = min(1.0, size / max(tile.size))
    if scale < 1:
        tile = tile.resize((int(tile.size[0] * scale), int(tile.size[1] * scale)))
    frame = Image.new("RGB", (size, size), (40, 40, 40))
    frame.paste(tile.convert("RGB"), ((size - tile.size[0]) // 2, (size - tile.size[1]) // 2))
    return frame


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m feedax.gallery OUT.png [--size N] [--only NAME ...]``."""
    parser = argparse.ArgumentParser(
        prog="feedax gallery", description="Write a PNG of every image operator of feedax."
    )
    parser.add_argument("out", help="the PNG to write")
    parser.add_argument("--size", type=int, default=128, help="image side in pixels (128)")
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAMES",
        help="comma-separated operator name prefixes, e.g. --only Brightness,RandomAffine "
        "(repeatable)",
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    only = [n.strip() for group in args.only or () for n in group.split(",") if n.strip()]
    try:
        path = write_gallery(args.out, args.size, only or None)
    except (ImportError, ValueError) as error:
        print(f"feedax gallery: {error}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
