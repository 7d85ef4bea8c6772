"""Random colour factors: Brightness, Contrast, Saturation, Hue, Sharpness and ColorJitter.

Each draws ``u ~ U(-1, 1)`` per record and uses the factor ``center + spread * u``, where
the range ``[center - spread, center + spread]`` is given like torchvision's
``ColorJitter`` arguments. With ``learnable=True``, ``center`` and ``spread`` are
``nnx.Param``s and the factor is a reparameterised sample, so gradients reach both.
"""

from __future__ import annotations

import abc
import math
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from flax import nnx

from feedax._context import RecordContext
from feedax._operator import RandomOperator
from feedax._ops import _color_fn as C
from feedax._ops._common import (
    channels_1_or_3,
    check_spread,
    from_unit,
    hyperparameter,
    to_unit,
    value_of,
)


class ColorFactor(RandomOperator):
    """Base of the random colour-factor operators (see the module docstring).

    Subclasses set ``neutral`` (the factor that keeps the image), the allowed factor
    range ``bounds``, and implement :meth:`adjust` on a unit-scale float image.
    """

    unit_range = True

    neutral: ClassVar[float] = 1.0
    bounds: ClassVar[tuple[float, float]] = (0.0, math.inf)

    def __init__(
        self,
        factor: float | tuple[float, float],
        *,
        learnable: bool = False,
        rngs: nnx.Rngs,
        stream: str = "augment",
        field: str = "image",
    ):
        super().__init__(rngs=rngs, stream=stream, field=field)
        lo, hi = self.factor_range(factor)
        self.learnable = bool(learnable)
        self.center = hyperparameter((lo + hi) / 2.0, self.learnable)
        self.spread = hyperparameter((hi - lo) / 2.0, self.learnable)

    @classmethod
    def factor_range(cls, factor: Any) -> tuple[float, float]:
        """Torchvision's rule: ``f`` means ``[max(lo, neutral - f), neutral + f]``."""
        return check_spread(cls.__name__, "factor", factor, *cls.bounds, cls.neutral)

    def factor(self, ctx: RecordContext) -> jax.Array:
        """The record's factor ``center + spread * u``, ``u ~ U(-1, 1)``, within ``bounds``."""
        return self.factor_at(self.record_uniforms(ctx, 1)[0])

    def factor_at(self, u01: jax.Array) -> jax.Array:
        """The factor for a U[0, 1) draw ``u01`` (``u = 2 u01 - 1``), within ``bounds``."""
        f = value_of(self.center) + value_of(self.spread) * (2.0 * u01 - 1.0)
        return jnp.clip(f, *self.bounds)

    @abc.abstractmethod
    def adjust(self, x: jax.Array, factor: jax.Array) -> jax.Array:
        """The adjustment of a unit-scale float image at ``factor`` (not clipped)."""

    def apply(self, x: jax.Array, ctx: RecordContext) -> jax.Array:
        """Adjusts one HWC image (1 or 3 channels); returns its dtype."""
        channels_1_or_3(type(self).__name__, x)
        return from_unit(self.adjust(to_unit(x), self.factor(ctx)), x.dtype)


class Brightness(ColorFactor):
    """Random brightness: ``factor * x`` (PIL ``ImageEnhance.Brightness``).

    Colour op: uint8 in, uint8 out; floats in [0, 1]; clipped. Identity in eval mode.
    Fixed-factor version: ``feedax.functional.adjust_brightness``.

    Args:
      factor: ``f`` for factors in ``[max(0, 1 - f), 1 + f]``, or a range ``(min, max)``.
      learnable: make the range's centre and half-width ``nnx.Param``s.
      rngs: the RNG streams; the operator draws its key from ``stream``.
      stream: the name of the stream in ``rngs`` (default ``"augment"``).
      field: the record field to transform.

    Example:
      >>> import jax.numpy as jnp, feedax as fx
      >>> from flax import nnx
      >>> op = fx.Brightness((2.0, 2.0), rngs=nnx.Rngs(augment=0))
      >>> x = jnp.full((1, 1, 3), 100, jnp.uint8)[None]
      >>> out = fx.apply_operators(op, {"image": x}, indices=[0])
      >>> out["image"][0][0, 0].tolist()
      [200, 200, 200]
    """

    def adjust(self, x: jax.Array, factor: jax.Array) -> jax.Array:
        """``factor * x``."""
        return C.brightness_unit(x, factor)


class Contrast(ColorFactor):
    """Random contrast: blend with the image's mean grey level (PIL ``ImageEnhance.Contrast``).

    Colour op (uint8 in, uint8 out; clipped). Identity in eval mode. Fixed-factor
    version: ``feedax.functional.adjust_contrast``.

    Args:
      factor: ``f`` for factors in ``[max(0, 1 - f), 1 + f]``, or a range ``(min, max)``.
      learnable: make the range's centre and half-width ``nnx.Param``s.
      rngs: the RNG streams; the operator draws its key from ``stream``.
      stream: the name of the stream in ``rngs`` (default ``"augment"``).
      field: the record field to transform.

    Example:
      >>> import jax.numpy as jnp, feedax as fx
      >>> from flax import nnx
      >>> op = fx.Contrast((0.0, 0.0), rngs=nnx.Rngs(augment=0))
      >>> ctx = fx.RecordContext(jnp.int32(0), jnp.int32(0), jnp.bool_(True))
      >>> op({"image": jnp.array([[[0.0], [1.0]]])}, ctx)["image"][..., 0].tolist()
      [[0.5, 0.5]]
    """

    def adjust(self, x: jax.Array, factor: jax.Array) -> jax.Array:
        """Blend with the mean grey level."""
        return C.contrast_unit(x, factor)


class Saturation(ColorFactor):
    """Random saturation: blend with the grey image (PIL ``ImageEnhance.Color``).

    Colour op (uint8 in, uint8 out; clipped); grey images are unchanged. Identity in eval
    mode. Fixed-factor version: ``feedax.functional.adjust_saturation``.

    Args:
      factor: ``f`` for factors in ``[max(0, 1 - f), 1 + f]``, or a range ``(min, max)``.
      learnable: make the range's centre and half-width ``nnx.Param``s.
      rngs: the RNG streams; the operator draws its key from ``stream``.
      stream: the name of the stream in ``rngs`` (default ``"augment"``).
      field: the record field to transform.

    Example:
      >>> import jax.numpy as jnp, feedax as fx
      >>> from flax import nnx
      >>> op = fx.Saturation((0.0, 0.0), rngs=nnx.Rngs(augment=0))
      >>> ctx = fx.RecordContext(jnp.int32(0), jnp.int32(0), jnp.bool_(True))
      >>> op({"image": jnp.array([[[255, 0, 0]]], jnp.uint8)}, ctx)["image"][0, 0].tolist()
      [76, 76, 76]
    """

    def adjust(self, x: jax.Array, factor: jax.Array) -> jax.Array:
        """Blend with the grey image."""
        return C.saturation_unit(x, factor)


class Hue(ColorFactor):
    """Random hue rotation by a shift in turns (HSV, as ``colorsys``).

    Colour op (uint8 in, uint8 out); grey images are unchanged. Identity in eval mode.
    Fixed-shift version: ``feedax.functional.adjust_hue``.

    Args:
      factor: ``f`` in [0, 0.5] for shifts in ``[-f, f]``, or a range within [-0.5, 0.5].
      learnable: make the range's centre and half-width ``nnx.Param``s.
      rngs: the RNG streams; the operator draws its key from ``stream``.
      stream: the name of the stream in ``rngs`` (default ``"augment"``).
      field: the record field to transform.

    Example:
      >>> import jax.numpy as jnp, feedax as fx
      >>> from flax import nnx
      >>> op = fx.Hue((0.5, 0.5), rngs=nnx.Rngs(augment=0))
      >>> x = jnp.array([[[255, 0, 0]]], jnp.uint8)[None]
      >>> out = fx.apply_operators(op, {"image": x}, indices=[0])
      >>> out["image"][0][0, 0].tolist()
      [0, 255, 255]
    """

    neutral: ClassVar[float] = 0.0
    bounds: ClassVar[tuple[float, float]] = (-0.5, 0.5)

    def adjust(self, x: jax.Array, factor: jax.Array) -> jax.Array:
        """Rotate the hue by ``factor`` turns."""
        return C.hue_unit(x, factor)


class Sharpness(ColorFactor):
    """Random sharpness: blend with PIL's SMOOTH filter (``ImageEnhance.Sharpness``).

    Factor 0 blurs, 1 keeps, 2 sharpens; border pixels are kept, images under 3x3 are
    unchanged. Colour op (uint8 in, uint8 out). Identity in eval mode. Fixed-factor
    version: ``feedax.functional.adjust_sharpness``.

    Args:
      factor: ``f`` for factors in ``[max(0, 1 - f), 1 + f]``, or a range ``(min, max)``.
      learnable: make the range's centre and half-width ``nnx.Param``s.
      rngs: the RNG streams; the operator draws its key from ``stream``.
      stream: the name of the stream in ``rngs`` (default ``"augment"``).
      field: the record field to transform.

    Example:
      >>> import jax.numpy as jnp, feedax as fx
      >>> from flax import nnx
      >>> op = fx.Sharpness(0.5, rngs=nnx.Rngs(augment=0))
      >>> x = jnp.ones((5, 5, 3), jnp.uint8)[None]
      >>> out = fx.apply_operators(op, {"image": x}, indices=[0])
      >>> out["image"][0].shape
      (5, 5, 3)
    """

    def adjust(self, x: jax.Array, factor: jax.Array) -> jax.Array:
        """Blend with the smoothed image."""
        return C.sharpness_unit(x, factor)

    def apply(self, x: jax.Array, ctx: RecordContext) -> jax.Array:
        """Adjusts one image; the smoothed uint8 image is rounded, as PIL's filter."""
        channels_1_or_3(type(self).__name__, x)
        return C.adjust_sharpness(x, self.factor(ctx))


class ColorJitter(RandomOperator):
    """Brightness, contrast, saturation and hue jitter, in a random order per record.

    Each record draws (from this operator's key, in one call) a factor for each enabled
    part and a random order of the parts; parts run in float32, clipped to [0, 1] after
    each, and the result returns to the input dtype. On uint8 it rounds once, at the end;
    torchvision rounds after each part (its parts take and return uint8), so results may
    be a few levels apart (up to 6 in our comparison); rounding once loses less. Ranges
    as torchvision's
    ``ColorJitter``; 0 turns a part off. The parts are the modules ``brightness``,
    ``contrast``, ``saturation``, ``hue`` (None when off). Identity in eval mode.

    Args:
      brightness: ``f`` or ``(min, max)``, see :class:`Brightness`.
      contrast: ``f`` or ``(min, max)``, see :class:`Contrast`.
      saturation: ``f`` or ``(min, max)``, see :class:`Saturation`.
      hue: ``f`` in [0, 0.5] or ``(min, max)``, see :class:`Hue`.
      learnable: make each part's range a pair of ``nnx.Param``s.
      rngs: the RNG streams; the operator and its parts draw keys from ``stream``.
      stream: the name of the stream in ``rngs`` (default ``"augment"``).
      field: the record field to transform.

    Example:
      >>> import jax.numpy as jnp, feedax as fx
      >>> from flax import nnx
      >>> op = fx.ColorJitter(0.4, 0.4, 0.4, 0.1, rngs=nnx.Rngs(augment=0))
      >>> x = jnp.zeros((4, 4, 3), jnp.uint8)[None]
      >>> out = fx.apply_operators(op, {"image": x}, indices=[0])
      >>> out["image"][0].dtype
      dtype('uint8')
    """

    unit_range = True

    def __init__(
        self,
        brightness: float | tuple[float, float] = 0.0,
        contrast: float | tuple[float, float] = 0.0,
        saturation: float | tuple[float, float] = 0.0,
        hue: float | tuple[float, float] = 0.0,
        *,
        learnable: bool = False,
        rngs: nnx.Rngs,
        stream: str = "augment",
        field: str = "image",
    ):
        super().__init__(rngs=rngs, stream=stream, field=field)
        self.learnable = bool(learnable)
        kw: dict[str, Any] = {"learnable": learnable, "rngs": rngs, "stream": stream}
        parts: list[tuple[type[ColorFactor], Any]] = [
            (Brightness, brightness),
            (Contrast, contrast),
            (Saturation, saturation),
            (Hue, hue),
        ]
        made = [cls(f, field=field, **kw) if _enabled(f) else None for cls, f in parts]
        self.brightness, self.contrast, self.saturation, self.hue = made

    def parts(self) -> list[ColorFactor]:
        """The enabled parts, in their canonical order."""
        all_parts = [self.brightness, self.contrast, self.saturation, self.hue]
        return [p for p in all_parts if p is not None]

    def apply(self, x: jax.Array, ctx: RecordContext) -> jax.Array:
        """Jitters one HWC image (1 or 3 channels); returns its dtype."""
        channels_1_or_3(type(self).__name__, x)
        parts = self.parts()
        if not parts:
            return x
        u = self.record_uniforms(ctx, 2 * len(parts))
        factors = [p.factor_at(u[i]) for i, p in enumerate(parts)]
        order = jnp.argsort(u[len(parts) :])
        branches = [
            (lambda y, p=p, f=f: jnp.clip(p.adjust(y, f), 0.0, 1.0))
            for p, f in zip(parts, factors, strict=True)
        ]
        # A scan over the slots compiles the four-way switch once, not once per slot.
        y, _ = jax.lax.scan(lambda y, i: (jax.lax.switch(i, branches, y), None), to_unit(x), order)
        return from_unit(y, x.dtype)


def _enabled(factor: Any) -> bool:
    return not (isinstance(factor, int | float) and factor == 0)
