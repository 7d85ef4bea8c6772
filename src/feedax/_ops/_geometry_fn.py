"""Pure geometry functions on one HWC image at fixed parameters (the operators use them).

Every function takes uint8 or float HWC input and returns the same dtype: interpolated
uint8 values are rounded. ``fill`` values are on the unit scale (1.0 is 255 for uint8).
Positions may be traced arrays; sizes are static Python ints.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from feedax._operator import Mirror, to_float
from feedax._ops import _resample as R
from feedax._ops._common import like, pixel_fill

PAD_MODES = ("constant", "edge", "reflect", "symmetric")
# "nearest": torchvision's NEAREST, source pixel floor(i * in / out); "nearest_exact":
# torchvision's NEAREST_EXACT and PIL's, floor((i + 0.5) * in / out); then the kernels.
RESIZE_METHODS = ("nearest", "nearest_exact", *R.KERNELS)
WARP_METHODS = ("nearest", "bilinear")


def pad(
    x: jax.Array,
    padding: tuple[int, int, int, int],
    mode: str = "constant",
    fill: float = 0.0,
) -> jax.Array:
    """Pads height and width of an HWC image.

    Args:
      x: HWC image.
      padding: ``(top, bottom, left, right)`` pixels.
      mode: ``"constant"`` (``fill``), ``"edge"`` (repeat the border), ``"reflect"``
        (mirror without repeating the border) or ``"symmetric"`` (mirror with it).
      fill: the constant, on the unit scale (rounded to a level of an integer image; in
        [0, 1] for one).

    Returns:
      The padded image, dtype of ``x``.

    Example:
      >>> import jax.numpy as jnp
      >>> pad(jnp.ones((1, 1, 1)), (0, 0, 1, 1))[..., 0].tolist()
      [[0.0, 1.0, 0.0]]
    """
    top, bottom, left, right = padding
    widths = ((top, bottom), (left, right), (0, 0))
    if mode == "constant":
        fill_value = jnp.asarray(pixel_fill(fill, x.dtype)).astype(x.dtype)
        return jnp.pad(x, widths, mode="constant", constant_values=fill_value)
    return jnp.pad(x, widths, mode=mode)


def crop(x: jax.Array, top: Any, left: Any, height: int, width: int) -> jax.Array:
    """The ``height`` x ``width`` window of ``x`` at (``top``, ``left``), which may be traced.

    Example:
      >>> import jax.numpy as jnp
      >>> crop(jnp.arange(9).reshape(3, 3, 1), 1, 1, 2, 2)[..., 0].tolist()
      [[4, 5], [7, 8]]
    """
    return jax.lax.dynamic_slice(x, (top, left, 0), (height, width, x.shape[2]))


def _source_index(position: jax.Array, size: int, mode: str) -> jax.Array:
    """The index in ``[0, size)`` that padded position ``position`` reads, per pad mode."""
    if mode in ("constant", "edge"):
        return jnp.clip(position, 0, size - 1)
    if mode == "reflect":
        if size == 1:
            return jnp.zeros_like(position)
        period = 2 * (size - 1)
        folded = jnp.abs(position) % period
        return jnp.where(folded >= size, period - folded, folded)
    period = 2 * size  # symmetric
    folded = position % period
    return jnp.where(folded >= size, period - 1 - folded, folded)


def take_pixels(x: jax.Array, rows: jax.Array, cols: jax.Array) -> jax.Array:
    """``x[rows[:, None], cols[None, :]]`` for HW... ``x``, as one gather of whole pixels.

    XLA on a CPU gathers rows of the ``(H * W, ...)`` view well; at 224 pixels, a gather
    along the width axis leaves its output transposed in memory and the copy back costs
    as much again (a flip of 64 images: 8.5 ms against 20). At 32 pixels the gather
    along the axis is the faster (see ``RandomFlip``).

    Example:
      >>> import jax.numpy as jnp
      >>> x = jnp.arange(6).reshape(2, 3)
      >>> take_pixels(x, jnp.array([1, 0]), jnp.array([2, 0])).tolist()
      [[5, 3], [2, 0]]
    """
    h, w = x.shape[0], x.shape[1]
    pixels = (rows[:, None] * w + cols[None, :]).reshape(-1)
    flat = jnp.take(x.reshape(h * w, *x.shape[2:]), pixels, axis=0)
    return flat.reshape(rows.shape[0], cols.shape[0], *x.shape[2:])


def padded_crop(
    x: jax.Array,
    padding: tuple[int, int, int, int],
    mode: str,
    fill: float,
    top: Any,
    left: Any,
    height: int,
    width: int,
) -> jax.Array:
    """``crop(pad(x, padding, mode, fill), top, left, height, width)`` without the pad.

    Gathers the window's rows and columns straight from ``x`` (positions outside it are
    mapped back by the pad mode, or filled), which on CPU is several times faster than
    materialising the padded image.

    Example:
      >>> import jax.numpy as jnp
      >>> x = jnp.arange(4.0).reshape(2, 2, 1)
      >>> padded_crop(x, (1, 1, 1, 1), "constant", 0.0, 0, 0, 2, 2)[..., 0].tolist()
      [[0.0, 0.0], [0.0, 0.0]]
    """
    pad_top, _, pad_left, _ = padding
    rows = jnp.arange(height) + top - pad_top
    cols = jnp.arange(width) + left - pad_left
    out = jnp.take(
        jnp.take(x, _source_index(rows, x.shape[0], mode), axis=0),
        _source_index(cols, x.shape[1], mode),
        axis=1,
    )
    if mode != "constant" or not any(padding):
        return out
    inside = ((rows >= 0) & (rows < x.shape[0]))[:, None, None] & (
        (cols >= 0) & (cols < x.shape[1])
    )[None, :, None]
    fill_value = jnp.asarray(pixel_fill(fill, x.dtype)).astype(x.dtype)
    return jnp.where(inside, out, fill_value)


def center_crop_offsets(shape: tuple[int, ...], size: tuple[int, int]) -> tuple[int, int]:
    """The (top, left) of a centred ``size`` window, rounded as torchvision does."""
    return round((shape[0] - size[0]) / 2.0), round((shape[1] - size[1]) / 2.0)


def resize(
    x: jax.Array,
    size: tuple[int, int],
    method: str = "bilinear",
    antialias: bool = True,
    mirror: Mirror | None = None,
) -> jax.Array:
    """Resizes an HWC image to ``size`` = (height, width).

    Args:
      x: HWC image.
      size: output (height, width).
      method: ``"nearest"`` (torchvision's ``NEAREST``: source pixel
        ``floor(i * in / out)``), ``"nearest_exact"`` (torchvision's ``NEAREST_EXACT`` and
        PIL's nearest: ``floor((i + 0.5) * in / out)``), ``"bilinear"``, ``"bicubic"``,
        ``"lanczos3"`` or ``"lanczos5"``. Bicubic is Keys' kernel with a = -0.5 (PIL's,
        and torchvision's with antialias); torchvision without antialias and OpenCV use
        a = -0.75, up to a few levels apart at sharp edges.
      antialias: widen the kernel when downscaling (as PIL does), for all but nearest.
      mirror: traced (rows, cols) flags: mirror the output along those axes too.

    Example:
      >>> import jax.numpy as jnp
      >>> resize(jnp.ones((4, 4, 3), jnp.uint8), (2, 3)).shape
      (2, 3, 3)
    """
    return resized_crop(x, 0, 0, x.shape[0], x.shape[1], size, method, antialias, mirror)


def resized_crop(
    x: jax.Array,
    top: Any,
    left: Any,
    height: Any,
    width: Any,
    size: tuple[int, int],
    method: str = "bilinear",
    antialias: bool = True,
    mirror: Mirror | None = None,
) -> jax.Array:
    """Resizes the box (``top``, ``left``, ``height``, ``width``) of ``x`` to ``size``.

    The box may be traced and fractional, and must lie inside the image (as PIL's
    ``Image.resize(..., box=...)`` requires). Pixels just outside the box (inside the
    image) contribute to the kernel at its border, as in PIL. Each output pixel sums a
    fixed number of taps, enough for any box inside the image.

    Example:
      >>> import jax.numpy as jnp
      >>> resized_crop(jnp.ones((8, 8, 3)), 2, 2, 4, 4, (2, 2)).shape
      (2, 2, 3)
    """
    h_out, w_out = size
    height = jnp.asarray(height, jnp.float32)
    width = jnp.asarray(width, jnp.float32)
    top = jnp.asarray(top, jnp.float32)
    left = jnp.asarray(left, jnp.float32)
    if method in ("nearest", "nearest_exact"):
        # torchvision's NEAREST samples at output pixel corners, NEAREST_EXACT at centres.
        at = 0.5 if method == "nearest_exact" else 0.0
        flips = (None, None) if mirror is None else mirror
        ys = top + (R.positions(h_out, flips[0]) + at) * (height / h_out)
        xs = left + (R.positions(w_out, flips[1]) + at) * (width / w_out)
        yi = jnp.clip(jnp.floor(ys).astype(jnp.int32), 0, x.shape[0] - 1)
        xi = jnp.clip(jnp.floor(xs).astype(jnp.int32), 0, x.shape[1] - 1)
        return x[yi[:, None], xi[None, :]]
    box = (top, left, height, width)
    return like(R.resample(x, box, size, method, antialias, mirror), x.dtype)


def affine_matrix(
    angle: Any,
    translate: Any = (0.0, 0.0),
    scale: Any = 1.0,
    shear: Any = (0.0, 0.0),
    center: Any = (0.0, 0.0),
) -> jax.Array:
    """The 2x3 inverse map (output pixel -> input pixel) of an affine transform.

    The forward map, in pixel-corner coordinates (x right, y down), is
    ``p_out = center + translate + R(angle) S(scale) Sh(shear) (p_in - center)``, as
    torchvision's ``F.affine``: ``R`` turns the picture clockwise by ``angle`` degrees,
    ``S`` scales, and ``Sh`` shears: first ``x -= tan(shear_x) y``, then
    ``y -= tan(shear_y) x`` (degrees). All arguments may be traced.

    Example:
      >>> (affine_matrix(0.0, (2.0, 1.0)) + 0.0).tolist()
      [[1.0, 0.0, -2.0], [0.0, 1.0, -1.0]]
    """
    theta = jnp.deg2rad(jnp.asarray(angle, jnp.float32))
    cos, sin = jnp.cos(theta), jnp.sin(theta)
    rot = jnp.array([[cos, -sin], [sin, cos]])  # y points down: clockwise on screen
    sx, sy = (jnp.tan(jnp.deg2rad(jnp.asarray(s, jnp.float32))) for s in shear)
    shear_m = jnp.array([[1.0, 0.0], [-sy, 1.0]]) @ jnp.array([[1.0, -sx], [0.0, 1.0]])
    a = jnp.asarray(scale, jnp.float32) * (rot @ shear_m)
    det = a[0, 0] * a[1, 1] - a[0, 1] * a[1, 0]
    inv = jnp.array([[a[1, 1], -a[0, 1]], [-a[1, 0], a[0, 0]]]) / det
    c = jnp.asarray(center, jnp.float32)
    t = jnp.asarray(translate, jnp.float32)
    offset = c - inv @ (c + t)
    return jnp.concatenate([inv, offset[:, None]], axis=1)


def warp_affine(
    x: jax.Array, inverse: jax.Array, interpolation: str = "bilinear", fill: float = 0.0
) -> jax.Array:
    """Resamples ``x`` through the 2x3 inverse map ``inverse`` (output -> input pixel).

    Sampling follows PIL's ``Image.transform(..., Image.AFFINE)``: an output pixel whose
    centre maps outside the input gets ``fill`` (unit scale); inside, bilinear sampling
    repeats the border pixels.

    Example:
      >>> import jax.numpy as jnp
      >>> eye = jnp.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
      >>> warp_affine(jnp.arange(4.0).reshape(2, 2, 1), eye)[..., 0].tolist()
      [[0.0, 1.0], [2.0, 3.0]]
    """
    height, width = x.shape[0], x.shape[1]
    ys, xs = jnp.meshgrid(
        jnp.arange(height, dtype=jnp.float32) + 0.5,
        jnp.arange(width, dtype=jnp.float32) + 0.5,
        indexing="ij",
    )
    xin = inverse[0, 0] * xs + inverse[0, 1] * ys + inverse[0, 2]
    yin = inverse[1, 0] * xs + inverse[1, 1] * ys + inverse[1, 2]
    inside = (xin >= 0) & (xin < width) & (yin >= 0) & (yin < height)
    fill_value = jnp.asarray(pixel_fill(fill, x.dtype), jnp.float32)
    if interpolation == "nearest":
        xi = jnp.clip(jnp.floor(xin).astype(jnp.int32), 0, width - 1)
        yi = jnp.clip(jnp.floor(yin).astype(jnp.int32), 0, height - 1)
        out = to_float(x[yi, xi])
    else:
        u, v = xin - 0.5, yin - 0.5
        x0, y0 = jnp.floor(u), jnp.floor(v)
        dx, dy = (u - x0)[..., None], (v - y0)[..., None]
        x0i = jnp.clip(x0.astype(jnp.int32), 0, width - 1)
        x1i = jnp.clip(x0.astype(jnp.int32) + 1, 0, width - 1)
        y0i = jnp.clip(y0.astype(jnp.int32), 0, height - 1)
        y1i = jnp.clip(y0.astype(jnp.int32) + 1, 0, height - 1)
        xf = to_float(x)
        row0 = xf[y0i, x0i] * (1 - dx) + xf[y0i, x1i] * dx
        row1 = xf[y1i, x0i] * (1 - dx) + xf[y1i, x1i] * dx
        out = row0 * (1 - dy) + row1 * dy
    out = jnp.where(inside[..., None], out, fill_value.astype(out.dtype))
    return like(out, x.dtype)


def affine(
    x: jax.Array,
    angle: Any = 0.0,
    translate: Any = (0.0, 0.0),
    scale: Any = 1.0,
    shear: Any = (0.0, 0.0),
    interpolation: str = "bilinear",
    fill: float = 0.0,
) -> jax.Array:
    """Applies :func:`affine_matrix` about the image centre, same output size.

    torchvision's ``F.affine``: ``angle`` turns clockwise (degrees), ``translate`` is in
    pixels (x, y), ``shear`` in degrees; see :func:`affine_matrix`. Unlike torchvision's
    default (nearest), ``interpolation`` defaults to bilinear here: give
    ``interpolation="nearest"`` to match it.

    Example:
      >>> import jax.numpy as jnp
      >>> affine(jnp.arange(3.0).reshape(1, 3, 1), translate=(1.0, 0.0))[..., 0].tolist()
      [[0.0, 0.0, 1.0]]
    """
    center = (x.shape[1] * 0.5, x.shape[0] * 0.5)
    inverse = affine_matrix(angle, translate, scale, shear, center)
    return warp_affine(x, inverse, interpolation, fill)


def rotate(
    x: jax.Array, angle: Any, interpolation: str = "bilinear", fill: float = 0.0
) -> jax.Array:
    """Turns ``x`` counter-clockwise by ``angle`` degrees about its centre, same size.

    torchvision's ``F.rotate`` (counter-clockwise, unlike ``F.affine``), with bilinear
    sampling by default (torchvision: nearest).

    Example:
      >>> import jax.numpy as jnp
      >>> rotate(jnp.arange(4.0).reshape(2, 2, 1), 90.0)[..., 0].tolist()
      [[1.0, 3.0], [0.0, 2.0]]
    """
    return affine(x, -jnp.asarray(angle), interpolation=interpolation, fill=fill)
