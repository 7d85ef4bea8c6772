"""Separable resampling with a fixed number of taps per output pixel (PIL's definition).

Output pixel ``i`` of an axis is centred on ``c = start + (i + 0.5) * length / out`` in
input pixel coordinates. With ``ss = max(length / out, 1)`` when antialiasing (else 1),
input pixel ``k`` weighs ``kernel((k + 0.5 - c) / ss)``, over the pixels inside the
image, normalised to sum to one: PIL's ``Image.resize(size, filter, box)``, and
``jax.image.scale_and_translate`` with ``antialias``.

``jax.image`` builds a dense ``(out, in)`` weight matrix per axis and contracts it, which
on a CPU costs about ``in`` multiply-adds per output value. A kernel of support ``r``
touches at most ``ceil(2 * r * ss)`` input pixels, and ``ss`` is bounded by the input
size, which is static: so each output value is a sum of that many gathered values
(four, say, for bilinear from 256 to 224 pixels), several times less work, and a gather
of whole rows fuses into one loop per pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

Kernel = Callable[[jax.Array], jax.Array]


def _triangle(x: jax.Array) -> jax.Array:
    return jnp.maximum(0.0, 1.0 - jnp.abs(x))


def _keys_cubic(x: jax.Array) -> jax.Array:
    # Keys' kernel with a = -0.5, PIL's bicubic (and jax.image's "cubic").
    x = jnp.abs(x)
    near = ((1.5 * x - 2.5) * x) * x + 1.0
    far = ((-0.5 * x + 2.5) * x - 4.0) * x + 2.0
    return jnp.where(x < 1.0, near, jnp.where(x < 2.0, far, 0.0))


def _lanczos(radius: int) -> Kernel:
    def kernel(x: jax.Array) -> jax.Array:
        x = jnp.abs(x)
        return jnp.where(x < radius, jnp.sinc(x) * jnp.sinc(x / radius), 0.0)

    return kernel


KERNELS: dict[str, tuple[Kernel, float]] = {
    "bilinear": (_triangle, 1.0),
    "bicubic": (_keys_cubic, 2.0),
    "lanczos3": (_lanczos(3), 3.0),
    "lanczos5": (_lanczos(5), 5.0),
}
"""Method -> (kernel, support radius in kernel units)."""

# A tap whose distance from the centre is within this (in kernel units) of the support's
# edge may be dropped by float rounding of the window's start; its weight is at most about
# this much, far below a level of an 8-bit image.
_EDGE = 1e-3


def taps(method: str, in_size: int, out_size: int, antialias: bool) -> int:
    """The taps per output pixel that cover any box of an ``in_size`` axis."""
    _, support = KERNELS[method]
    ss = max(in_size / out_size, 1.0) if antialias else 1.0
    return max(1, math.ceil(2.0 * support * ss))


def axis_weights(
    start: jax.Array,
    length: jax.Array,
    in_size: int,
    out_size: int,
    method: str,
    antialias: bool,
    flip: Any = None,
) -> tuple[jax.Array, jax.Array]:
    """The taps of one axis: input ``index`` and ``weight``, both ``(out_size, taps)``.

    ``start`` and ``length`` (the box along the axis, inside ``[0, in_size]``, input
    pixels) may be traced and fractional. Where ``flip`` (traced) is set, the output
    positions come in reverse order.
    """
    kernel, support = KERNELS[method]
    n = taps(method, in_size, out_size, antialias)
    scale = length / out_size
    ss = jnp.maximum(scale, 1.0) if antialias else jnp.float32(1.0)
    # Reversed positions, not reversed tables: a select of two tables makes XLA compute
    # both inside the resampling loop, for every output value.
    centre = start + (positions(out_size, flip) + 0.5) * scale
    first = jnp.floor(centre - support * ss + 0.5 + _EDGE * ss)
    k = first[:, None] + jnp.arange(n, dtype=jnp.float32)[None, :]
    w = kernel((k + 0.5 - centre[:, None]) / ss)
    w = jnp.where((k >= 0) & (k < in_size), w, 0.0)
    # A centre outside the image has no taps in it: its weights stay zero (as in
    # jax.image). A plain division, as a select here keeps XLA from fusing the passes well.
    w = w / jnp.maximum(jnp.sum(w, axis=1, keepdims=True), 1e-12)
    return jnp.clip(k, 0, in_size - 1).astype(jnp.int32), w


def _pass(x: jax.Array, axis: int, index: jax.Array, weight: jax.Array) -> jax.Array:
    """Resamples ``x`` along ``axis``: a weighted sum of ``taps`` gathered slices."""
    dtype = jnp.promote_types(x.dtype, jnp.float32)
    weight = weight.astype(dtype)
    shape = [1] * x.ndim
    shape[axis] = index.shape[0]
    out = None
    for t in range(index.shape[1]):
        term = jnp.take(x, index[:, t], axis=axis, mode="clip").astype(dtype)
        term = weight[:, t].reshape(shape) * term
        out = term if out is None else out + term
    assert out is not None
    return out


def resample(
    x: jax.Array,
    box: tuple[jax.Array, jax.Array, jax.Array, jax.Array],
    size: tuple[int, int],
    method: str,
    antialias: bool,
    mirror: tuple[Any, Any] | None = None,
) -> jax.Array:
    """Resamples the box ``(top, left, height, width)`` (inside the image) of HWC ``x``.

    To ``size``; float32 (float64 for float64 input). The columns are resampled first
    (as PIL does) unless the rows first would take less than half the multiply-adds: a
    last pass along the columns leaves XLA's output transposed in memory, and the copy
    back costs as much as a pass. ``mirror``: traced (rows, cols) flags; where set, that
    axis of the output comes in reverse order (its tables computed at reversed positions).
    """
    top, left, height, width = box
    h_in, w_in = x.shape[0], x.shape[1]
    h_out, w_out = size
    flips = (None, None) if mirror is None else mirror
    rows = axis_weights(top, height, h_in, h_out, method, antialias, flips[0])
    cols = axis_weights(left, width, w_in, w_out, method, antialias, flips[1])
    t_rows, t_cols = rows[0].shape[1], cols[0].shape[1]
    rows_first = h_out * w_in * t_rows + h_out * w_out * t_cols
    cols_first = h_in * w_out * t_cols + h_out * w_out * t_rows
    if 2 * rows_first < cols_first:
        return _pass(_pass(x, 0, *rows), 1, *cols)
    return _pass(_pass(x, 1, *cols), 0, *rows)


def positions(n: int, flip: Any = None, dtype: Any = jnp.float32) -> jax.Array:
    """``0, 1, ..., n - 1`` (of ``dtype``), reversed where ``flip`` (traced) is set."""
    ascending = jnp.arange(n, dtype=dtype)
    return ascending if flip is None else jnp.where(flip, n - 1 - ascending, ascending)
