"""What an operator knows about the record it transforms."""

from __future__ import annotations

import dataclasses

import jax
import jax.extend.random as jax_random
import jax.numpy as jnp

BATCH_AXIS = "batch"
"""The name of the vmapped batch axis; operators may use collectives over it."""


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class RecordContext:
    """The identity of one record, passed to operators next to the record.

    Attributes:
      epoch: int32 scalar, the record's epoch (for a mixture, its own source's epoch).
      index: int32 scalar, the record's index in its source (its identity).
      valid: bool scalar, False for padding rows of the last batch of an epoch.
    """

    epoch: jax.Array
    index: jax.Array
    valid: jax.Array

    def key(self, stream_key: jax.Array) -> jax.Array:
        """The record's key for a random operator: a function of (stream, epoch, index) only.

        So a record gets the same draw in a given epoch whatever the batch size, worker
        count, number of hosts or devices, its position in the order, or a restart.
        """
        return jax.random.fold_in(jax.random.fold_in(stream_key, self.epoch), self.index)

    def uniforms(self, stream_key: jax.Array, n: int) -> jax.Array:
        """``n`` independent U[0, 1) draws for this record, from (stream, epoch, index) only.

        Counter-based: draws ``2k`` and ``2k + 1`` are the two words of Threefry-2x32,
        keyed by the stream's key of the epoch (``fold_in(stream_key, epoch)``), applied to
        the counter ``(index, k)``; so draw ``j`` does not depend on ``n``.
        One hash per pair of draws and none per record to derive a key (against three
        for ``jax.random.uniform(self.key(stream_key), (n,))``), so a batch's program
        compiles and runs faster. Built-in operators draw everything a record needs
        with one call (integers by ``floor(u * n)``, coins by ``u < p``). Keys of another
        PRNG implementation than threefry fall back to that ``jax.random.uniform`` call.

        Example:
          >>> import jax, jax.numpy as jnp, feedax as fx
          >>> ctx = fx.RecordContext(jnp.int32(0), jnp.int32(7), jnp.bool_(True))
          >>> u = ctx.uniforms(jax.random.key(0), 3)
          >>> u.shape, bool(((u >= 0) & (u < 1)).all())
          ((3,), True)
        """
        if jax.random.key_impl(stream_key) != "threefry2x32":
            return jax.random.uniform(self.key(stream_key), (n,), jnp.float32)
        epoch_key = jax.random.key_data(jax.random.fold_in(stream_key, self.epoch))
        pairs = -(-n // 2)
        counters = jnp.concatenate(
            [
                jnp.broadcast_to(jnp.asarray(self.index).astype(jnp.uint32), (pairs,)),
                jnp.arange(pairs, dtype=jnp.uint32),
            ]
        )
        # Words (first, second) of pair 0, then of pair 1...: draw j does not depend on n.
        bits = jax_random.threefry_2x32(epoch_key, counters).reshape(2, pairs).T.ravel()[:n]
        # The 23 high bits as the mantissa of a float in [1, 2), as jax.random.uniform does.
        one_two = jax.lax.bitcast_convert_type((bits >> 9) | jnp.uint32(0x3F800000), jnp.float32)
        return one_two - 1.0
