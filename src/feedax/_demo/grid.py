"""The demo's picture: the same training records augmented in two epochs, as a PNG."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import cast

import numpy as np
from flax import nnx
from PIL import Image

import feedax as fx

GRID_RECORDS = 12
GRID_SCALE = 8
GRID_GAP = 4


def grid_size(rows: int = 3) -> tuple[int, int]:
    """The (width, height) in pixels of a grid of ``rows`` rows of 8x8 images."""
    cell = 8 * GRID_SCALE + GRID_GAP
    return GRID_RECORDS * cell + GRID_GAP, rows * cell + GRID_GAP


def write_grid(pipe: fx.Pipeline, path: Path) -> Path:
    """Writes a PNG of the first records of ``pipe``: original, then epochs 0 and 1.

    A record's augmentation depends only on (operator key, epoch, index). So a pipeline
    over the first records alone, with a copy of the training crop, yields exactly the images
    training sees for those records (before normalisation). Each 8x8 image is shown
    ``GRID_SCALE`` times larger, nearest-neighbour.

    Example:
      >>> write_grid(train_pipe, Path("augmented.png"))  # doctest: +SKIP
    """
    images = cast(fx.Source, pipe.source).read(np.arange(GRID_RECORDS))["image"]
    preview = fx.Pipeline(
        fx.ArraySource({"image": images}), [nnx.clone(pipe.operators[0])], batch_size=GRID_RECORDS
    )
    rows = [images] + [np.asarray(b["image"]) for b in itertools.islice(preview, 2)]
    width, height = grid_size(len(rows))
    grid = np.full((height, width), 96, np.uint8)
    cell = 8 * GRID_SCALE + GRID_GAP
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            big = np.kron(image[..., 0], np.ones((GRID_SCALE, GRID_SCALE), np.uint8))
            top, left = GRID_GAP + r * cell, GRID_GAP + c * cell
            grid[top : top + big.shape[0], left : left + big.shape[1]] = big
    Image.fromarray(grid, mode="L").save(path)
    return path
