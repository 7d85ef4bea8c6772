"""RandomFlip: mirror an image with probability p."""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
from flax import nnx

from feedax._context import RecordContext
from feedax._errors import OperatorError
from feedax._operator import RandomOperator


class RandomFlip(RandomOperator):
    """Mirrors an HWC image with probability ``p``.

    Args:
      direction: ``"horizontal"`` (left-right) or ``"vertical"`` (up-down).
      p: probability of flipping a record.
      rngs: the RNG streams; the operator draws its key from ``stream``.
      stream: the name of the stream in ``rngs`` (default ``"augment"``).
      field: the record field to flip.

    Example:
      >>> import jax.numpy as jnp, feedax as fx
      >>> from flax import nnx
      >>> flip = fx.RandomFlip(p=1.0, rngs=nnx.Rngs(augment=0))
      >>> ctx = fx.RecordContext(jnp.int32(0), jnp.int32(0), jnp.bool_(True))
      >>> flip({"image": jnp.arange(3.0).reshape(1, 3, 1)}, ctx)["image"].ravel().tolist()
      [2.0, 1.0, 0.0]
    """

    def __init__(
        self,
        direction: Literal["horizontal", "vertical"] = "horizontal",
        *,
        p: float = 0.5,
        rngs: nnx.Rngs,
        stream: str = "augment",
        field: str = "image",
    ):
        super().__init__(rngs=rngs, stream=stream, field=field)
        if direction not in ("horizontal", "vertical"):
            raise OperatorError(
                f"RandomFlip: direction must be 'horizontal' or 'vertical', got {direction!r}."
            )
        if not 0.0 <= p <= 1.0:
            raise OperatorError(f"RandomFlip: p must lie in [0, 1], got {p!r}.")
        self.direction = direction
        self.p = float(p)

    def apply(self, x: jax.Array, ctx: RecordContext) -> jax.Array:
        """Flips one HWC image or returns it unchanged."""
        flip = jax.random.bernoulli(self.record_key(ctx), self.p)
        axis = 1 if self.direction == "horizontal" else 0
        return jnp.where(flip, jnp.flip(x, axis=axis), x)
