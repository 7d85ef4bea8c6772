"""Operators at fixed parameters: the pure functions the operators use.

``feedax.functional.adjust_brightness(x, 1.3)`` is what ``fx.Brightness`` does to a record
whose draw is 1.3. All take one HWC image (no batch axis), uint8 or float, and return the
same dtype (colour functions: floats in [0, 1], clipped; uint8 rounded). Pixel-valued
arguments (``fill``, ``threshold``, erase ``value``) are on the unit scale.

Example:
  >>> import jax.numpy as jnp
  >>> from feedax import functional as F
  >>> F.invert(jnp.array([[[0, 255]]], jnp.uint8)).tolist()
  [[[255, 0]]]
"""

from feedax._ops._color_fn import (
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    adjust_sharpness,
    autocontrast,
    equalize,
    erase,
    gaussian_blur,
    hsv_to_rgb,
    invert,
    posterize,
    rgb_to_hsv,
    solarize,
    to_grayscale,
)
from feedax._ops._geometry_fn import (
    affine,
    affine_matrix,
    center_crop_offsets,
    crop,
    pad,
    resize,
    resized_crop,
    rotate,
    warp_affine,
)
from feedax._ops.mix import cutmix_box, mixup

__all__ = [
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
    "adjust_sharpness",
    "affine",
    "affine_matrix",
    "autocontrast",
    "center_crop_offsets",
    "crop",
    "cutmix_box",
    "equalize",
    "erase",
    "gaussian_blur",
    "hsv_to_rgb",
    "invert",
    "mixup",
    "pad",
    "posterize",
    "resize",
    "resized_crop",
    "rgb_to_hsv",
    "rotate",
    "solarize",
    "to_grayscale",
    "warp_affine",
]
