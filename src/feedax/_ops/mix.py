"""Batch operators that mix records and their labels: MixUp and CutMix.

Each record ``i`` of a batch is mixed with its neighbour ``i - 1`` (the batch rolled by
one, as torchvision), with its own draw (``BatchOperator.record_uniforms``:
stream, epoch and record index). The partner depends on the batch (the order of the
epoch), the draw does not. Padding rows (``valid`` False) are never mixed in and never
changed. Labels must be one-hot / soft float vectors: put ``OneHot`` first.
"""

from __future__ import annotations

import abc
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from feedax._context import RecordContext
from feedax._errors import OperatorError
from feedax._operator import RandomBatchOperator, Record, to_float
from feedax._ops._common import below, check_number, like


def mixup(x: jax.Array, other: jax.Array, lam: Any) -> jax.Array:
    """``lam * x + (1 - lam) * other`` in float, returned as ``x.dtype`` (uint8 rounded).

    Example:
      >>> import jax.numpy as jnp
      >>> mixup(jnp.array([0, 100], jnp.uint8), jnp.array([200, 0], jnp.uint8), 0.25).tolist()
      [150, 25]
    """
    return like(lam * to_float(x) + (1.0 - lam) * to_float(other), x.dtype)


GAMMA_TRIES = 16
"""Marsaglia-Tsang candidates drawn at once per gamma variate (each accepted w.p. > 0.95)."""


def sample_beta(u: jax.Array, alpha: float) -> jax.Array:
    """A Beta(alpha, alpha) variate from ``4 * GAMMA_TRIES + 2`` U[0, 1) draws, loop-free.

    ``g1 / (g1 + g2)`` for two Gamma(alpha) variates, each by Marsaglia & Tsang (2000)
    with ``GAMMA_TRIES`` candidates evaluated at once and the first accepted one kept
    (for alpha < 1, boosted: ``Gamma(alpha + 1) * U^(1 / alpha)``). All candidates are
    rejected with probability below 1e-20; then the mode is used.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> u = jax.random.uniform(jax.random.key(0), (4 * GAMMA_TRIES + 2,))
      >>> 0.0 <= float(sample_beta(u, 0.4)) <= 1.0
      True
    """
    half = 2 * GAMMA_TRIES + 1
    g1, g2 = _gamma(u[:half], alpha), _gamma(u[half:], alpha)
    return g1 / jnp.maximum(g1 + g2, 1e-30)


def _gamma(u: jax.Array, alpha: float) -> jax.Array:
    u = jnp.clip(u, 1e-7, 1.0 - 1e-7)
    k = GAMMA_TRIES
    a = alpha + 1.0 if alpha < 1.0 else alpha
    d = a - 1.0 / 3.0
    c = 1.0 / jnp.sqrt(9.0 * d)
    z = jax.scipy.special.ndtri(u[:k])
    v = (1.0 + c * z) ** 3
    safe_v = jnp.where(v > 0, v, 1.0)
    accept = (v > 0) & (jnp.log(u[k : 2 * k]) < 0.5 * z**2 + d - d * v + d * jnp.log(safe_v))
    g = d * jnp.where(jnp.any(accept), safe_v[jnp.argmax(accept)], 1.0)
    if alpha < 1.0:
        g = g * u[2 * k] ** (1.0 / alpha)
    return g


def cutmix_box(shape: tuple[int, ...], lam: Any, cy: Any, cx: Any) -> tuple[jax.Array, jax.Array]:
    """Torchvision's CutMix box for ``lam`` centred at (``cy``, ``cx``), and the adjusted lam.

    Returns the HW boolean mask of the box (clipped at the border) and
    ``1 - box area / image area``, the weight of the record's own label.

    Example:
      >>> mask, lam = cutmix_box((4, 4), 0.75, 2, 2)
      >>> int(mask.sum()), float(lam)
      (4, 0.75)
    """
    height, width = shape[0], shape[1]
    r = 0.5 * jnp.sqrt(1.0 - jnp.asarray(lam, jnp.float32))
    rh, rw = jnp.floor(r * height).astype(jnp.int32), jnp.floor(r * width).astype(jnp.int32)
    y1, y2 = jnp.clip(cy - rh, 0, height), jnp.clip(cy + rh, 0, height)
    x1, x2 = jnp.clip(cx - rw, 0, width), jnp.clip(cx + rw, 0, width)
    rows = jnp.arange(height)[:, None]
    cols = jnp.arange(width)[None, :]
    mask = (rows >= y1) & (rows < y2) & (cols >= x1) & (cols < x2)
    return mask, 1.0 - ((y2 - y1) * (x2 - x1)) / (height * width)


class _Mix(RandomBatchOperator):
    """Shared set-up, checks, draws and pairing of MixUp and CutMix (they implement ``_mix``)."""

    def __init__(
        self,
        alpha: float = 1.0,
        *,
        rngs: nnx.Rngs,
        stream: str = "augment",
        field: str = "image",
        label_field: str = "label",
    ):
        super().__init__(rngs=rngs, stream=stream)
        name = type(self).__name__
        self.alpha = check_number(name, "alpha", alpha, 1e-6)
        for what, value in (("field", field), ("label_field", label_field)):
            if not isinstance(value, str) or not value:
                raise OperatorError(f"{name}: {what} must be a non-empty string, got {value!r}.")
        self.field = field
        self.label_field = label_field

    def validate(self, batch: Record) -> None:
        """Raises unless the batch has an image batch and one-hot labels."""
        self._inputs(batch)

    def _inputs(self, batch: Record) -> tuple[jax.Array, jax.Array]:
        name = type(self).__name__
        for f in (self.field, self.label_field):
            if f not in batch:
                raise OperatorError(
                    f"{name}: the batch has no field {f!r}; its fields are {sorted(batch)}. "
                    f"Pass field= / label_field= to {name}(...)."
                )
        x, y = batch[self.field], batch[self.label_field]
        if y.ndim != 2 or not jnp.issubdtype(y.dtype, jnp.floating):
            raise OperatorError(
                f"{name}: label field {self.label_field!r} must hold one-hot (float) vectors, "
                f"batch shape (B, classes), got shape {tuple(y.shape)} and dtype {y.dtype}. Put "
                f"fx.OneHot(num_classes, field={self.label_field!r}) before {name}."
            )
        if x.ndim != 4:
            raise OperatorError(
                f"{name}: field {self.field!r} must be a batch of HWC images (rank 4), got "
                f"shape {tuple(x.shape)}."
            )
        if not (jnp.issubdtype(x.dtype, jnp.integer) or jnp.issubdtype(x.dtype, jnp.floating)):
            raise OperatorError(
                f"{name}: field {self.field!r} has dtype {x.dtype}; mixing blends pixel values, "
                "so it needs integer or float images. Convert the field (e.g. masks to uint8)."
            )
        return x, y

    def _draws(self, ctx: RecordContext) -> tuple[jax.Array, jax.Array]:
        """Per record: two spare U[0, 1) draws and lambda ~ Beta(alpha, alpha)."""
        u = self.record_uniforms(self.stream_key[...], ctx, 4 * GAMMA_TRIES + 4)
        lam = jax.vmap(lambda u: sample_beta(u[:-2], self.alpha))(u)
        return u[:, -2:], lam

    def transform(self, batch: Record, ctx: RecordContext) -> dict[str, Any]:
        """Mixes each record with its neighbour in the batch (see the class docstring)."""
        x, y = self._inputs(batch)
        partner = jnp.roll(jnp.arange(x.shape[0]), 1)
        mix = ctx.valid & ctx.valid[partner]
        out = dict(batch)
        out[self.field], out[self.label_field] = self._mix(x, y, partner, mix, ctx)
        return out

    @abc.abstractmethod
    def _mix(
        self, x: jax.Array, y: jax.Array, partner: jax.Array, mix: jax.Array, ctx: RecordContext
    ) -> tuple[jax.Array, jax.Array]:
        """The mixed images and labels of the batch (draws from :meth:`_draws`).

        Record ``i`` is mixed with record ``partner[i]`` where ``mix[i]`` (both are valid)
        and kept as it is elsewhere.
        """


class MixUp(_Mix):
    """MixUp (Zhang et al., 2018): ``lam x_i + (1 - lam) x_{i-1}``, labels alike.

    ``lam ~ Beta(alpha, alpha)`` per record. A batch operator (not vmapped); the image
    keeps its dtype (uint8 rounded); labels must be one-hot floats (``OneHot`` first).
    Identity in eval mode. Fixed-lam version: ``feedax.functional.mixup``.

    Args:
      alpha: the Beta concentration (torchvision's default 1.0; 0.2-0.4 is common).
      rngs: the RNG streams; the operator draws its key from ``stream``.
      stream: the name of the stream in ``rngs`` (default ``"augment"``).
      field: the image field.
      label_field: the one-hot label field.

    Example:
      >>> import jax.numpy as jnp, feedax as fx
      >>> from flax import nnx
      >>> ops = [fx.OneHot(3), fx.MixUp(0.4, rngs=nnx.Rngs(augment=0))]
      >>> batch = {"image": jnp.ones((4, 2, 2, 3)), "label": jnp.arange(4) % 3}
      >>> out = fx.apply_operators(ops, batch, indices=jnp.arange(4))
      >>> out["label"].sum(axis=1).round(5).tolist()
      [1.0, 1.0, 1.0, 1.0]
    """

    def _mix(
        self, x: jax.Array, y: jax.Array, partner: jax.Array, mix: jax.Array, ctx: RecordContext
    ) -> tuple[jax.Array, jax.Array]:
        """``lam x_i + (1 - lam) x_{i-1}``, labels alike."""
        _, lam = self._draws(ctx)
        lam = jnp.where(mix, lam, 1.0)
        image = mixup(x, x[partner], lam[:, None, None, None])
        return image, mixup(y, y[partner], lam[:, None].astype(y.dtype))


class CutMix(_Mix):
    """CutMix (Yun et al., 2019): paste a box of the neighbour ``x_{i-1}`` into ``x_i``.

    ``lam ~ Beta(alpha, alpha)`` per record; the box (torchvision's rule: half-sides
    ``0.5 sqrt(1 - lam)`` times height and width, centred at a uniform pixel, clipped)
    and the label weight ``1 - box area / image area`` follow. The image keeps its dtype;
    labels must be one-hot floats (``OneHot`` first). Identity in eval mode.

    Args:
      alpha: the Beta concentration (1.0, torchvision's default, is usual).
      rngs: the RNG streams; the operator draws its key from ``stream``.
      stream: the name of the stream in ``rngs`` (default ``"augment"``).
      field: the image field.
      label_field: the one-hot label field.

    Example:
      >>> import jax.numpy as jnp, feedax as fx
      >>> from flax import nnx
      >>> ops = [fx.OneHot(3), fx.CutMix(1.0, rngs=nnx.Rngs(augment=0))]
      >>> batch = {"image": jnp.ones((4, 8, 8, 3), jnp.uint8), "label": jnp.arange(4) % 3}
      >>> fx.apply_operators(ops, batch, indices=jnp.arange(4))["image"].dtype
      dtype('uint8')
    """

    def _mix(
        self, x: jax.Array, y: jax.Array, partner: jax.Array, mix: jax.Array, ctx: RecordContext
    ) -> tuple[jax.Array, jax.Array]:
        """Pastes a box of each record's neighbour into it; labels by the box's area."""
        u, lam = self._draws(ctx)
        height, width = x.shape[1], x.shape[2]

        def box(u: jax.Array, lam: jax.Array) -> tuple[jax.Array, jax.Array]:
            return cutmix_box((height, width), lam, below(u[0], height), below(u[1], width))

        mask, lam = jax.vmap(box)(u, lam)
        mask = mask & mix[:, None, None]
        lam = jnp.where(mix, lam, 1.0)
        image = jnp.where(mask[..., None], x[partner], x)
        own, other = lam[:, None].astype(y.dtype), (1 - lam[:, None]).astype(y.dtype)
        return image, own * y + other * y[partner]
