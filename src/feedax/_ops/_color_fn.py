"""Pure colour functions on one HWC image at fixed parameters (the operators use them).

Each takes uint8 (read as ``x / 255``) or float input in [0, 1], with 1 (grey) or 3 (RGB)
channels, computes in float, clips to [0, 1] and returns the input dtype (uint8 rounded).
Factors and thresholds may be traced scalars. The definitions follow PIL's
``ImageEnhance`` / ``ImageOps`` (as torchvision does), on floats.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from feedax._ops._common import from_unit, full_scale, to_unit

GREY_WEIGHTS = (0.299, 0.587, 0.114)
"""ITU-R 601-2 luma, as PIL's ``convert("L")``."""


def _unit_op(fn: Callable[..., jax.Array]) -> Callable[..., jax.Array]:
    """Wraps a function of a unit-scale float image into one that keeps the dtype."""

    def wrapped(x: jax.Array, *args: Any, **kwargs: Any) -> jax.Array:
        return from_unit(fn(to_unit(x), *args, **kwargs), x.dtype)

    wrapped.__name__ = fn.__name__
    wrapped.__doc__ = fn.__doc__
    return wrapped


def grey(x: jax.Array) -> jax.Array:
    """Luma of a unit-scale HWC image, shape HW1 (the image itself if it is grey)."""
    if x.shape[-1] == 1:
        return x
    weights = jnp.asarray(GREY_WEIGHTS, x.dtype)
    return jnp.sum(x * weights, axis=-1, keepdims=True)


def blend(a: jax.Array, b: jax.Array, factor: Any) -> jax.Array:
    """``a + factor * (b - a)``: PIL's ``Image.blend(a, b, factor)``, unclipped."""
    return a + factor * (b - a)


def brightness_unit(x: jax.Array, factor: Any) -> jax.Array:
    """Brightness on a unit-scale float image (no clipping); see :func:`adjust_brightness`."""
    return x * factor


def contrast_unit(x: jax.Array, factor: Any) -> jax.Array:
    """Contrast on a unit-scale float image (no clipping); see :func:`adjust_contrast`."""
    return blend(jnp.mean(grey(x)), x, factor)


def saturation_unit(x: jax.Array, factor: Any) -> jax.Array:
    """Saturation on a unit-scale float image (no clipping); see :func:`adjust_saturation`."""
    return blend(grey(x), x, factor)


def sharpness_unit(x: jax.Array, factor: Any, round_smooth: bool = False) -> jax.Array:
    """Sharpness on a unit-scale float image (no clipping); see :func:`adjust_sharpness`."""
    height, width = x.shape[0], x.shape[1]
    if height < 3 or width < 3:
        return x
    kernel = ((1, 1, 1), (1, 5, 1), (1, 1, 1))
    smooth = jnp.zeros_like(x[1:-1, 1:-1])
    for i in range(3):
        for j in range(3):
            smooth = smooth + kernel[i][j] * x[i : height - 2 + i, j : width - 2 + j]
    smooth = smooth / 13.0
    if round_smooth:  # PIL filters uint8 images in uint8
        smooth = jnp.round(smooth * 255.0) / 255.0
    degenerate = x.at[1:-1, 1:-1].set(smooth.astype(x.dtype))
    return blend(degenerate, x, factor)


def hue_unit(x: jax.Array, shift: Any) -> jax.Array:
    """Hue rotation on a unit-scale float image; see :func:`adjust_hue`."""
    if x.shape[-1] == 1:
        return x
    h, s, v = rgb_to_hsv(x)
    return hsv_to_rgb(jnp.mod(h + shift, 1.0), s, v)


def rgb_to_hsv(x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Hue, saturation, value in [0, 1] of an RGB image (as ``colorsys``), NaN-free grads."""
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    maxc = jnp.max(x, axis=-1)
    minc = jnp.min(x, axis=-1)
    delta = maxc - minc
    positive = maxc > 0
    s = jnp.where(positive, delta / jnp.where(positive, maxc, 1.0), 0.0)
    chroma = delta > 0
    safe = jnp.where(chroma, delta, 1.0)
    rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
    h = jnp.where(maxc == r, bc - gc, jnp.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = jnp.where(chroma, jnp.mod(h / 6.0, 1.0), 0.0)
    return h, s, maxc


def hsv_to_rgb(h: jax.Array, s: jax.Array, v: jax.Array) -> jax.Array:
    """RGB image from hue, saturation, value in [0, 1] (as ``colorsys``).

    Branch-free form: channel ``n`` (5 for R, 3 for G, 1 for B) is
    ``v - v s clip(min(k, 4 - k), 0, 1)`` with ``k = (n + 6 h) mod 6``.
    """
    n = jnp.asarray([5.0, 3.0, 1.0], h.dtype)
    k = jnp.mod(n + 6.0 * h[..., None], 6.0)
    ramp = jnp.clip(jnp.minimum(k, 4.0 - k), 0.0, 1.0)
    return v[..., None] - (v * s)[..., None] * ramp


@_unit_op
def adjust_brightness(x: jax.Array, factor: Any) -> jax.Array:
    """``factor * x``: 0 gives black, 1 the image (PIL ``ImageEnhance.Brightness``).

    Example:
      >>> import jax.numpy as jnp
      >>> adjust_brightness(jnp.full((1, 1, 3), 100, jnp.uint8), 1.5)[0, 0].tolist()
      [150, 150, 150]
    """
    return brightness_unit(x, factor)


@_unit_op
def adjust_contrast(x: jax.Array, factor: Any) -> jax.Array:
    """Blend with the mean grey level: 0 gives flat grey (PIL ``ImageEnhance.Contrast``).

    Example:
      >>> import jax.numpy as jnp
      >>> adjust_contrast(jnp.array([[[0.2], [0.6]]]), 0.0)[..., 0].tolist()
      [[0.4000000059604645, 0.4000000059604645]]
    """
    return contrast_unit(x, factor)


@_unit_op
def adjust_saturation(x: jax.Array, factor: Any) -> jax.Array:
    """Blend with the grey image: 0 gives grey, 1 the image (PIL ``ImageEnhance.Color``).

    Example:
      >>> import jax.numpy as jnp
      >>> adjust_saturation(jnp.array([[[255, 0, 0]]], jnp.uint8), 0.0)[0, 0].tolist()
      [76, 76, 76]
    """
    return saturation_unit(x, factor)


@_unit_op
def adjust_hue(x: jax.Array, shift: Any) -> jax.Array:
    """Rotates the hue by ``shift`` turns (in [-0.5, 0.5]); grey images are unchanged.

    Example:
      >>> import jax.numpy as jnp
      >>> adjust_hue(jnp.array([[[1.0, 0.0, 0.0]]]), 1 / 3)[0, 0].round(4).tolist()
      [0.0, 1.0, 0.0]
    """
    return hue_unit(x, shift)


def adjust_sharpness(x: jax.Array, factor: Any) -> jax.Array:
    """Blend with PIL's SMOOTH filter (border pixels kept): 0 blurs, 2 sharpens.

    As PIL's ``ImageEnhance.Sharpness`` (the smoothed uint8 image is rounded, as PIL's
    filter does). Images smaller than 3x3 are returned unchanged.

    Example:
      >>> import jax.numpy as jnp
      >>> adjust_sharpness(jnp.ones((4, 4, 3), jnp.uint8), 2.0).shape
      (4, 4, 3)
    """
    rounded = x.dtype == jnp.uint8
    return from_unit(sharpness_unit(to_unit(x), factor, rounded), x.dtype)


@_unit_op
def to_grayscale(x: jax.Array, channels: int = 1) -> jax.Array:
    """Luma ``0.299 R + 0.587 G + 0.114 B`` (PIL ``convert("L")``), with ``channels`` copies.

    Example:
      >>> import jax.numpy as jnp
      >>> to_grayscale(jnp.array([[[255, 255, 0]]], jnp.uint8), 3)[0, 0].tolist()
      [226, 226, 226]
    """
    g = grey(x)
    return jnp.broadcast_to(g, (*g.shape[:-1], channels))


def invert(x: jax.Array) -> jax.Array:
    """``1 - x`` (``255 - x`` for uint8), PIL ``ImageOps.invert``.

    Example:
      >>> import jax.numpy as jnp
      >>> invert(jnp.array([[[0, 200]]], jnp.uint8)).tolist()
      [[[255, 55]]]
    """
    if jnp.issubdtype(x.dtype, jnp.floating):
        return 1.0 - x
    return (int(full_scale(x.dtype)) - x.astype(jnp.int32)).astype(x.dtype)


def solarize(x: jax.Array, threshold: Any) -> jax.Array:
    """Inverts the pixels at or above ``threshold`` (unit scale), PIL ``ImageOps.solarize``.

    Example:
      >>> import jax.numpy as jnp
      >>> solarize(jnp.array([[[100, 200]]], jnp.uint8), 0.5).tolist()
      [[[100, 55]]]
    """
    if jnp.issubdtype(x.dtype, jnp.floating):
        return jnp.where(x >= threshold, 1.0 - x, x)
    # Integer levels compared with a small slack, so threshold = k / 255 includes level k.
    top = full_scale(x.dtype)
    above = x.astype(jnp.float32) >= jnp.asarray(threshold, jnp.float32) * top - 1e-3
    return jnp.where(above, invert(x), x)


def _levels(x: jax.Array) -> jax.Array:
    """uint8-like integer levels of ``x`` (int32)."""
    if jnp.issubdtype(x.dtype, jnp.floating):
        return jnp.round(jnp.clip(x, 0.0, 1.0) * 255.0).astype(jnp.int32)
    return x.astype(jnp.int32)


def _from_levels(levels: jax.Array, dtype: Any) -> jax.Array:
    if jnp.issubdtype(dtype, jnp.floating):
        return (levels.astype(jnp.float32) / 255.0).astype(dtype)
    return levels.astype(dtype)


def posterize(x: jax.Array, bits: Any) -> jax.Array:
    """Keeps the top ``bits`` (0..8, may be traced) of each 8-bit level, PIL ``ImageOps.posterize``.

    Float input is quantised to 256 levels first. Not differentiable.

    Example:
      >>> import jax.numpy as jnp
      >>> posterize(jnp.array([[[255, 100]]], jnp.uint8), 2).tolist()
      [[[192, 64]]]
    """
    shift = 8 - jnp.asarray(bits, jnp.int32)
    mask = jnp.left_shift(jnp.right_shift(255, shift), shift)
    return _from_levels(jnp.bitwise_and(_levels(x), mask), x.dtype)


def equalize(x: jax.Array) -> jax.Array:
    """Histogram equalisation per channel, exactly PIL's ``ImageOps.equalize``.

    Float input is quantised to 256 levels first. Not differentiable.

    Example:
      >>> import jax.numpy as jnp
      >>> x = jnp.repeat(jnp.arange(0, 40, 10, dtype=jnp.uint8), 100).reshape(1, 400, 1)
      >>> jnp.unique(equalize(x)).tolist()
      [0, 100, 200, 255]
    """
    levels = _levels(x)
    flat = levels.reshape(-1, levels.shape[-1])
    channel = jnp.broadcast_to(jnp.arange(flat.shape[1]), flat.shape)
    hist = jnp.zeros((flat.shape[1], 256), jnp.int32).at[channel, flat].add(1)
    last = jnp.max(jnp.where(hist > 0, jnp.arange(256), -1), axis=1)
    step = (flat.shape[0] - jnp.take_along_axis(hist, last[:, None], axis=1)[:, 0]) // 255
    safe = jnp.maximum(step, 1)[:, None]
    before = jnp.cumsum(hist, axis=1) - hist
    lut = jnp.clip((before + safe // 2) // safe, 0, 255)
    lut = jnp.where((step > 0)[:, None], lut, jnp.arange(256))
    out = jnp.take_along_axis(lut, flat.T, axis=1).T.reshape(levels.shape)
    return _from_levels(out, x.dtype)


@_unit_op
def autocontrast(x: jax.Array) -> jax.Array:
    """Stretches each channel to the full range: ``(x - min) / (max - min)``.

    PIL ``ImageOps.autocontrast`` (cutoff 0); constant channels are unchanged.

    Example:
      >>> import jax.numpy as jnp
      >>> autocontrast(jnp.array([[[0.25], [0.75]]]))[..., 0].tolist()
      [[0.0, 1.0]]
    """
    lo = jnp.min(x, axis=(0, 1), keepdims=True)
    hi = jnp.max(x, axis=(0, 1), keepdims=True)
    spread = hi > lo
    scale = jnp.where(spread, 1.0 / jnp.where(spread, hi - lo, 1.0), 1.0)
    return (x - jnp.where(spread, lo, 0.0)) * scale


def gaussian_kernel(kernel_size: int, sigma: Any) -> jax.Array:
    """Normalised 1-D Gaussian taps ``exp(-t^2 / (2 sigma^2))``, ``t`` centred integers."""
    t = jnp.arange(kernel_size, dtype=jnp.float32) - (kernel_size - 1) / 2.0
    sigma = jnp.maximum(jnp.asarray(sigma, jnp.float32), 1e-6)
    taps = jnp.exp(-0.5 * jnp.square(t / sigma))
    return taps / jnp.sum(taps)


def blur_unit(x: jax.Array, kernel_size: tuple[int, int], sigma: tuple[Any, Any]) -> jax.Array:
    """Separable Gaussian blur with mirrored borders, on a float image."""
    for axis, (size, s) in enumerate(zip(kernel_size, sigma, strict=True)):
        radius, n = size // 2, x.shape[axis]
        if radius == 0 or n == 1:  # a single row or column: blurring keeps it
            continue
        taps = gaussian_kernel(size, s).astype(x.dtype)
        widths = [(0, 0)] * 3
        widths[axis] = (radius, radius)
        padded = jnp.pad(x, widths, mode="reflect")
        out = jnp.zeros_like(x)
        for k in range(size):
            out = out + taps[k] * jax.lax.slice_in_dim(padded, k, k + n, axis=axis)
        x = out
    return x


@_unit_op
def gaussian_blur(x: jax.Array, kernel_size: tuple[int, int], sigma: tuple[Any, Any]) -> jax.Array:
    """Gaussian blur, ``kernel_size`` = (width, height) taps (odd), mirrored borders.

    torchvision's ``gaussian_blur``: its argument order (x first: ``(kx, ky)`` taps and
    ``(sigma_x, sigma_y)``), taps and borders (``scipy.ndimage`` mode ``"mirror"``).
    ``sigma`` may be traced.

    Example:
      >>> import jax.numpy as jnp
      >>> gaussian_blur(jnp.ones((5, 5, 3)), (3, 3), (1.0, 1.0)).shape
      (5, 5, 3)
    """
    (kx, ky), (sx, sy) = kernel_size, sigma
    return blur_unit(x, (ky, kx), (sy, sx))


def erase(x: jax.Array, top: Any, left: Any, height: Any, width: Any, value: Any) -> jax.Array:
    """Sets the box (``top``, ``left``, ``height``, ``width``) to ``value`` (unit scale).

    The box may be traced and may reach past the border (it is clipped). ``value`` is a
    scalar, a per-channel vector or an array of the image's shape.

    Example:
      >>> import jax.numpy as jnp
      >>> erase(jnp.ones((1, 3, 1), jnp.uint8), 0, 1, 1, 1, 0.0)[..., 0].tolist()
      [[1, 0, 1]]
    """
    rows = jnp.arange(x.shape[0])[:, None]
    cols = jnp.arange(x.shape[1])[None, :]
    inside = (rows >= top) & (rows < top + height) & (cols >= left) & (cols < left + width)
    fill = jnp.broadcast_to(jnp.asarray(value, jnp.float32), x.shape)
    fill = fill if jnp.issubdtype(x.dtype, jnp.floating) else jnp.round(fill * full_scale(x.dtype))
    return jnp.where(inside[..., None], fill.astype(x.dtype), x)
