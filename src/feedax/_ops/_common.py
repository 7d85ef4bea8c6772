"""Shared pieces of the operators: argument checks, dtype conventions, sub-keys, fields.

Dtype conventions (see ``docs/operators.md``):

- *Unit scale.* Pixel-valued hyperparameters (fills, thresholds, noise levels, erase
  values) are given on the unit scale: 1.0 is full intensity, i.e. 255 for uint8 images.
- *Colour ops* read uint8 as ``x / 255`` and floats as they are (expected in [0, 1]),
  compute in float, clip to [0, 1] and return the input dtype (uint8 rounded).
- *Geometry ops* move pixels: uint8 in, uint8 out (interpolated values rounded); floats
  keep their dtype and any range.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from feedax._context import RecordContext
from feedax._errors import OperatorError

# ---------------------------------------------------------------------------- arguments


def fail(owner: str, what: str, expected: str, got: Any, fix: str = "") -> OperatorError:
    """An ``OperatorError`` saying what was expected, what came and the fix."""
    message = f"{owner}: {what} must be {expected}, got {got!r}."
    return OperatorError(f"{message} {fix}".strip())


def check_probability(owner: str, name: str, p: Any) -> float:
    """``p`` as a float in [0, 1]."""
    if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= p <= 1.0:
        raise OperatorError(
            f"{owner}: {name} must lie in [0, 1] (a probability), got {p!r}. Pass e.g. {name}=0.5."
        )
    return float(p)


def check_number(
    owner: str, name: str, value: Any, low: float = -math.inf, high: float = math.inf
) -> float:
    """``value`` as a finite float in [low, high]."""
    ok = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
    if not ok or not low <= value <= high or not math.isfinite(value):
        raise fail(owner, name, f"a finite number in [{low}, {high}]", value)
    return float(value)


def check_int(owner: str, name: str, value: Any, low: int = 0, high: int | None = None) -> int:
    """``value`` as an int in [low, high]."""
    ok = isinstance(value, int) and not isinstance(value, bool)
    if not ok or value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise fail(owner, name, f"an int {bound}", value)
    return int(value)


def check_interval(
    owner: str, name: str, value: Any, low: float = -math.inf, high: float = math.inf
) -> tuple[float, float]:
    """``value`` as a pair ``(a, b)`` with ``low <= a <= b <= high``."""
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise fail(owner, name, "a pair (min, max) of numbers", value) from None
    if not low <= a <= b <= high:
        raise fail(owner, name, f"a pair (min, max) with {low} <= min <= max <= {high}", value)
    return a, b


def check_spread(
    owner: str, name: str, value: Any, low: float, high: float, center: float = 0.0
) -> tuple[float, float]:
    """Torchvision's range rule: a number ``f`` means ``[max(low, center - f), center + f]``.

    ``f`` must lie in ``[0, high - center]``; anything else is checked as a pair
    ``(min, max)`` within ``[low, high]``.
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        f = check_number(owner, name, value, 0.0, high - center)
        # -(f - center) is center - f, but -f (not +0.0) when both are 0.
        return max(low, -(f - center)), center + f
    return check_interval(owner, name, value, low, high)


_SIZE = "positive: an int or a pair (height, width) of ints > 0"


def check_padding(owner: str, padding: Any) -> tuple[int, int, int, int]:
    """Torchvision-style padding as (top, bottom, left, right).

    An int pads all sides; a pair is (left/right, top/bottom); a 4-tuple is
    (left, top, right, bottom).
    """
    expected = (
        "an int >= 0, a pair (left/right, top/bottom) or a 4-tuple (left, top, right, bottom) "
        "of ints >= 0"
    )
    values = (padding,) if isinstance(padding, int) else padding
    try:
        values = tuple(values)
    except TypeError:
        raise fail(owner, "padding", expected, padding) from None
    if len(values) not in (1, 2, 4) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values
    ):
        raise fail(owner, "padding", expected, padding)
    if len(values) == 1:
        return (values[0],) * 4
    if len(values) == 2:
        return values[1], values[1], values[0], values[0]
    left, top, right, bottom = values
    return top, bottom, left, right


def check_size(owner: str, name: str, value: Any) -> tuple[int, int]:
    """``value`` (an int or a pair of ints) as a positive (height, width)."""
    pair = (value, value) if isinstance(value, int) else value
    try:
        h, w = pair
    except (TypeError, ValueError):
        raise fail(owner, name, _SIZE, value) from None
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (h, w)):
        raise fail(owner, name, _SIZE, value)
    return int(h), int(w)


def check_fields(owner: str, fields: Any, field: str) -> tuple[str, ...]:
    """Extra field names transformed with the same draw as ``field``."""
    names = (fields,) if isinstance(fields, str) else tuple(fields)
    if not all(isinstance(n, str) and n for n in names) or field in names:
        raise fail(
            owner,
            "fields",
            f"a sequence of other field names (not {field!r})",
            fields,
            'Pass e.g. fields=("mask",).',
        )
    return names


def check_choice(owner: str, name: str, value: Any, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices``."""
    if value not in choices:
        raise fail(owner, name, " or ".join(repr(c) for c in choices), value)
    return str(value)


def channels_1_or_3(owner: str, x: jax.Array) -> None:
    """Raises unless ``x`` is HWC with 1 or 3 channels (colour ops)."""
    if x.shape[-1] not in (1, 3):
        raise OperatorError(
            f"{owner}: colour operators need 1 (grey) or 3 (RGB) channels, got shape "
            f"{tuple(x.shape)}. Apply it to an RGB or grey HWC image field."
        )


def hyperparameter(value: float, learnable: bool) -> nnx.Param[jax.Array] | float:
    """``value`` as a float32 ``nnx.Param`` if ``learnable``, else the float itself."""
    return nnx.Param(jnp.asarray(value, jnp.float32)) if learnable else value


def value_of(v: Any) -> Any:
    """The array held by a Variable, or ``v`` itself (a plain hyperparameter)."""
    return v[...] if isinstance(v, nnx.Variable) else v


# ---------------------------------------------------------------------------- dtypes


def full_scale(dtype: Any) -> float:
    """The level of full intensity of an image dtype (1.0 for floats).

    255 for uint8, 65535 for uint16, 32767 for int16 (torchvision's convention).
    """
    if jnp.issubdtype(dtype, jnp.floating):
        return 1.0
    return float(jnp.iinfo(dtype).max)


def to_unit(x: jax.Array) -> jax.Array:
    """An image on the unit scale in float32 (at least): integers as ``x / full_scale``.

    bfloat16 and float16 are computed in float32 (colour rules round poorly in them);
    float32 is unchanged (assumed in [0, 1]).
    """
    if jnp.issubdtype(x.dtype, jnp.floating):
        return x.astype(jnp.promote_types(x.dtype, jnp.float32))
    return x.astype(jnp.float32) / full_scale(x.dtype)


def from_unit(y: jax.Array, dtype: Any) -> jax.Array:
    """Clips ``y`` to [0, 1] and returns it as ``dtype`` (integers: ``round(full_scale y)``)."""
    y = jnp.clip(y, 0.0, 1.0)
    if jnp.issubdtype(dtype, jnp.floating):
        return y.astype(dtype)
    return jnp.round(y * full_scale(dtype)).astype(dtype)


def like(y: jax.Array, dtype: Any) -> jax.Array:
    """Geometry: ``y`` back in ``dtype`` (uint8 rounded and clipped to [0, 255])."""
    if jnp.issubdtype(dtype, jnp.floating):
        return y.astype(dtype)
    info = jnp.iinfo(dtype)
    return jnp.clip(jnp.round(y), info.min, info.max).astype(dtype)


def pixel_fill(value: Any, dtype: Any, what: str = "fill") -> np.ndarray:
    """A constant fill (unit scale) in the units of ``dtype``, exactly as it will be stored.

    Integer images get it rounded to the nearest level (0.5 -> 128 on uint8), the same
    eager and under ``jit``; a value outside [0, 1] cannot be stored there and raises
    instead of wrapping or clipping. Float images take any value (e.g. after ``Normalize``).
    """
    unit = np.asarray(value, np.float64)
    if jnp.issubdtype(dtype, jnp.floating):
        return unit
    top = full_scale(dtype)
    if (unit < 0).any() or (unit > 1).any():
        raise OperatorError(
            f"{what}={value!r} is outside [0, 1], the unit scale of {np.dtype(dtype)} images "
            f"(1.0 is {top:.0f}). Give it on the unit scale, e.g. {what}="
            f"{np.round(unit / top, 4).tolist()!r} for levels {unit.tolist()!r}."
        )
    return np.round(unit * top)


# ---------------------------------------------------------------------------- draws


def below(u: jax.Array, n: Any) -> jax.Array:
    """A uniform integer in ``[0, n)`` from a U[0, 1) draw ``u``; ``n`` may be traced."""
    return jnp.minimum(jnp.floor(u * n).astype(jnp.int32), jnp.asarray(n, jnp.int32) - 1)


def lerp(u: jax.Array, low: Any, high: Any) -> jax.Array:
    """A uniform number in ``[low, high)`` from a U[0, 1) draw ``u``."""
    return low + (high - low) * u


def box_sides(
    u: Any,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    xp: Any = jnp,
) -> tuple[Any, Any]:
    """The sides of ``n`` candidate boxes (torchvision's retries) from ``2 n`` U[0, 1) draws.

    Box ``i`` has its area uniform in ``scale`` times the image area (from ``u[i]``) and
    its aspect ``a`` log-uniform in ``ratio`` (from ``u[n + i]``). Returns the rounded
    (half to even) int32 sides ``(sqrt(area * a), sqrt(area / a))``, so ``a`` is first
    side / second side. ``xp``: ``jax.numpy``, or NumPy for the host's draws.
    """
    n = u.shape[0] // 2
    area = height * width * lerp(u[:n], *scale)
    lo, hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = xp.exp(lerp(u[n : 2 * n], lo, hi))
    along = xp.round(xp.sqrt(area * aspect)).astype(xp.int32)
    across = xp.round(xp.sqrt(area / aspect)).astype(xp.int32)
    return along, across


# ---------------------------------------------------------------------------- sub-keys


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class SubContext(RecordContext):
    """A record context for a sub-operator at ``path`` inside composite operators.

    Its key is the record's key folded with each position of ``path``, so every
    sub-operator of a composite gets its own key per record, even when two sub-operators
    hold the same stream key (the same instance twice, or the same seed).
    """

    path: tuple[int, ...] = dataclasses.field(default=(), metadata={"static": True})

    def key(self, stream_key: jax.Array) -> jax.Array:
        """The record key of ``stream_key``, folded with the sub-operator's path."""
        key = super().key(stream_key)
        for i in self.path:
            key = jax.random.fold_in(key, i)
        return key

    def uniforms(self, stream_key: jax.Array, n: int) -> jax.Array:
        """The record's draws from ``stream_key`` folded with the sub-operator's path."""
        for i in self.path:
            stream_key = jax.random.fold_in(stream_key, i)
        return super().uniforms(stream_key, n)


def child(ctx: RecordContext, i: int) -> SubContext:
    """The context of sub-operator ``i`` of a composite called with ``ctx``."""
    path = ctx.path if isinstance(ctx, SubContext) else ()
    return SubContext(ctx.epoch, ctx.index, ctx.valid, path=(*path, i))
