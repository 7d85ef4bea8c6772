"""Normalisation: fixed (Normalize) and from running statistics (RunningNormalize)."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from feedax._context import BATCH_AXIS, RecordContext
from feedax._errors import OperatorError
from feedax._operator import Operator, to_float
from feedax._ops._common import full_scale


def _per_channel(value: float | Sequence[float], what: str) -> tuple[float, ...]:
    try:
        values = np.asarray(value, np.float64).ravel()  # a number, a sequence, an array
    except (TypeError, ValueError):
        values = np.zeros(0)
    if not values.size or isinstance(value, bool | str):
        raise OperatorError(
            f"Normalize: {what} must be a number or a sequence of numbers (one per channel), "
            f"got {value!r}."
        )
    if not np.isfinite(values).all():
        raise OperatorError(
            f"Normalize: {what} must be finite, got {value!r}; NaN or inf would turn every "
            "pixel into NaN. Give the statistics of your data."
        )
    return tuple(float(v) for v in values)


class Normalize(Operator):
    """Returns ``(x - mean) / std`` per channel, as float32 (float64 stays float64).

    ``mean`` and ``std`` are in the units of the input: 0..255 for uint8 images.

    Args:
      mean: one value, or one per channel (last axis).
      std: one value, or one per channel; all positive.
      field: the record field to normalise.

    Example:
      >>> import jax.numpy as jnp, feedax as fx
      >>> norm = fx.Normalize(mean=(127.5,), std=(127.5,))
      >>> ctx = fx.RecordContext(jnp.int32(0), jnp.int32(0), jnp.bool_(True))
      >>> norm({"image": jnp.full((1, 1, 1), 255, jnp.uint8)}, ctx)["image"].item()
      1.0
    """

    def __init__(
        self,
        mean: float | Sequence[float],
        std: float | Sequence[float],
        *,
        field: str = "image",
    ):
        super().__init__(field=field)
        self.mean = _per_channel(mean, "mean")
        self.std = _per_channel(std, "std")
        if min(self.std) <= 0:
            raise OperatorError(f"{type(self).__name__}: std must be positive, got {self.std}.")
        if len(self.mean) != len(self.std) and 1 not in (len(self.mean), len(self.std)):
            raise OperatorError(
                f"{type(self).__name__}: mean has {len(self.mean)} values and std "
                f"{len(self.std)}; give one value or one per channel for each."
            )

    def apply(self, x: jax.Array, ctx: RecordContext) -> jax.Array:
        """Normalises one HWC image."""
        channels = max(len(self.mean), len(self.std))
        if channels > 1 and x.shape[-1] != channels:
            raise OperatorError(
                f"{type(self).__name__}: {channels} per-channel values given but field "
                f"{self.field!r} has {x.shape[-1]} channels (shape {tuple(x.shape)}). Give one "
                "value per channel."
            )
        if jnp.issubdtype(x.dtype, jnp.integer) and max(self.std) < 1 and max(self.mean) <= 1:
            top = full_scale(x.dtype)
            raise OperatorError(
                f"{type(self).__name__}: field {self.field!r} is {x.dtype} (levels up to "
                f"{top:.0f}), but mean {self.mean} and std {self.std} look like unit-scale "
                "statistics (torchvision's are for images in [0, 1]); the output would reach "
                f"about {top / min(self.std):.0f}. Give them in levels (mean * {top:.0f}, "
                f"std * {top:.0f}) or put fx.ToFloat() before Normalize."
            )
        x = to_float(x)
        return (x - jnp.asarray(self.mean, x.dtype)) / jnp.asarray(self.std, x.dtype)


class RunningNormalize(Operator):
    """Normalises per channel with running mean/variance learned from the batches seen.

    In train mode every batch updates the statistics (``nnx.BatchStat``) from its valid
    records; the weight of a batch is ``max(1 / batches_seen, 1 - momentum)``, so the
    estimate is the exact average over the first batches and then an exponential moving
    average. The record is then normalised with the updated statistics. In eval mode the
    statistics are frozen. Padding rows (``ctx.valid`` False) do not count.

    The update averages over the batch with a collective on the axis named
    ``feedax.BATCH_AXIS``: the pipeline and :func:`feedax.apply_operators` provide it.

    Args:
      channels: number of channels (the last axis of the field).
      momentum: decay of the moving average once past ``1 / (1 - momentum)`` batches.
      epsilon: added to the variance before the square root.
      field: the record field to normalise.

    Example:
      >>> import jax.numpy as jnp, feedax as fx
      >>> norm = fx.RunningNormalize(3)
      >>> out = fx.apply_operators(norm, {"image": jnp.ones((4, 2, 2, 3))}, indices=jnp.arange(4))
      >>> norm.mean[...].tolist()
      [1.0, 1.0, 1.0]
    """

    def __init__(
        self,
        channels: int,
        *,
        momentum: float = 0.99,
        epsilon: float = 1e-5,
        field: str = "image",
    ):
        super().__init__(field=field)
        if not isinstance(channels, int) or channels < 1:
            raise OperatorError(
                f"{type(self).__name__}: channels must be an int >= 1, got {channels!r}."
            )
        if not 0.0 <= momentum < 1.0:
            raise OperatorError(
                f"{type(self).__name__}: momentum must lie in [0, 1), got {momentum!r}."
            )
        if epsilon <= 0:
            raise OperatorError(
                f"{type(self).__name__}: epsilon must be positive, got {epsilon!r}."
            )
        self.channels = channels
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.use_running_average = False
        self.mean = nnx.BatchStat(jnp.zeros((channels,), jnp.float32))
        self.var = nnx.BatchStat(jnp.ones((channels,), jnp.float32))
        self.count = nnx.BatchStat(jnp.zeros((), jnp.int32))

    def apply(self, x: jax.Array, ctx: RecordContext) -> jax.Array:
        """Updates the statistics (train mode) and normalises one record."""
        if x.shape[-1] != self.channels:
            raise OperatorError(
                f"{type(self).__name__}: built for {self.channels} channels but field "
                f"{self.field!r} has {x.shape[-1]} (shape {tuple(x.shape)}). Pass "
                f"channels={x.shape[-1]}."
            )
        x = to_float(x).astype(jnp.float32)
        if not self.use_running_average:
            self._update(x, ctx.valid)
        return (x - self.mean[...]) * jax.lax.rsqrt(self.var[...] + self.epsilon)

    def _update(self, x: jax.Array, valid: jax.Array) -> None:
        axes = tuple(range(x.ndim - 1))
        weight = valid.astype(jnp.float32)
        total = jax.lax.psum(weight, BATCH_AXIS)
        scale = weight / jnp.maximum(total, 1.0)
        batch_mean = jax.lax.psum(scale * jnp.mean(x, axis=axes), BATCH_AXIS)
        batch_sq = jax.lax.psum(scale * jnp.mean(jnp.square(x), axis=axes), BATCH_AXIS)
        seen = total > 0
        count = self.count[...] + seen.astype(jnp.int32)
        rate = jnp.maximum(1.0 / jnp.maximum(count, 1), 1.0 - self.momentum)
        mean, var = self.mean[...], self.var[...]
        # Average first and second moments, so the variance of several equally weighted
        # batches is exact, not an average of per-batch variances.
        new_mean = mean + rate * (batch_mean - mean)
        sq = var + jnp.square(mean)
        new_sq = sq + rate * (batch_sq - sq)
        new_var = jnp.maximum(new_sq - jnp.square(new_mean), 0.0)
        self.mean[...] = jnp.where(seen, new_mean, mean)
        self.var[...] = jnp.where(seen, new_var, var)
        self.count[...] = count
