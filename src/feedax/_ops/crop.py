"""RandomCrop: a random window, optionally from a zero-padded image."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from feedax._context import RecordContext
from feedax._errors import OperatorError
from feedax._operator import RandomOperator


def _pair(value: int | tuple[int, int], what: str, owner: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) for v in pair):
        raise OperatorError(f"{owner}: {what} must be an int or a pair of ints, got {value!r}.")
    return pair[0], pair[1]


class RandomCrop(RandomOperator):
    """Crops a random ``size`` window from an HWC image padded by ``padding`` zeros.

    The offset is drawn uniformly per record; dtype and channels are kept. In eval mode
    the operator is the identity (so eval images keep their full size).

    Args:
      size: output (height, width), or one int for a square.
      padding: zeros added on each side of height and width before cropping.
      rngs: the RNG streams; the operator draws its key from ``stream``.
      stream: the name of the stream in ``rngs`` (default ``"augment"``).
      field: the record field to crop.

    Example:
      >>> import jax.numpy as jnp, feedax as fx
      >>> from flax import nnx
      >>> crop = fx.RandomCrop(32, padding=4, rngs=nnx.Rngs(augment=0))
      >>> ctx = fx.RecordContext(jnp.int32(0), jnp.int32(7), jnp.bool_(True))
      >>> crop({"image": jnp.zeros((32, 32, 3), jnp.uint8)}, ctx)["image"].shape
      (32, 32, 3)
    """

    def __init__(
        self,
        size: int | tuple[int, int],
        *,
        padding: int = 0,
        rngs: nnx.Rngs,
        stream: str = "augment",
        field: str = "image",
    ):
        super().__init__(rngs=rngs, stream=stream, field=field)
        self.size = _pair(size, "size", "RandomCrop")
        if min(self.size) < 1:
            raise OperatorError(f"RandomCrop: size must be positive, got {size!r}.")
        if not isinstance(padding, int) or padding < 0:
            raise OperatorError(f"RandomCrop: padding must be an int >= 0, got {padding!r}.")
        self.padding = padding

    def apply(self, x: jax.Array, ctx: RecordContext) -> jax.Array:
        """Crops one HWC image."""
        p = self.padding
        height, width = x.shape[0] + 2 * p, x.shape[1] + 2 * p
        h, w = self.size
        if h > height or w > width:
            raise OperatorError(
                f"RandomCrop: crop size {self.size} is larger than the padded image "
                f"({height}, {width}) of field {self.field!r} (shape {tuple(x.shape)}, "
                f"padding {p}). Use a smaller size or more padding."
            )
        if p:
            x = jnp.pad(x, ((p, p), (p, p), (0, 0)))
        key_y, key_x = jax.random.split(self.record_key(ctx))
        top = jax.random.randint(key_y, (), 0, height - h + 1)
        left = jax.random.randint(key_x, (), 0, width - w + 1)
        return jax.lax.dynamic_slice(x, (top, left, 0), (h, w, x.shape[2]))
