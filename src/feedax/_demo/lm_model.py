"""The language-model demo's model: a small causal NNX transformer over packed rows."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx


class Block(nnx.Module):
    """Pre-norm transformer block: masked self-attention, then an MLP."""

    def __init__(self, width: int, heads: int, *, rngs: nnx.Rngs):
        self.norm1 = nnx.LayerNorm(width, rngs=rngs)
        self.attention = nnx.MultiHeadAttention(
            num_heads=heads, in_features=width, decode=False, rngs=rngs
        )
        self.norm2 = nnx.LayerNorm(width, rngs=rngs)
        self.up = nnx.Linear(width, 4 * width, rngs=rngs)
        self.down = nnx.Linear(4 * width, width, rngs=rngs)

    def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
        x = x + self.attention(self.norm1(x), mask=mask)
        return x + self.down(jax.nn.gelu(self.up(self.norm2(x))))


class TinyLM(nnx.Module):
    """Token + position embeddings, causal blocks, a tied output projection.

    Attention is masked by segment: a token sees the earlier tokens of its own segment
    only, so the sequences packed into one row never attend to each other.

    Example:
      >>> model = TinyLM(vocab=50, length=8, rngs=nnx.Rngs(0))
      >>> ids = jnp.ones((2, 8), jnp.int32)
      >>> model(ids, ids, jnp.broadcast_to(jnp.arange(8), (2, 8))).shape
      (2, 8, 50)
    """

    def __init__(
        self,
        vocab: int,
        length: int,
        *,
        width: int = 128,
        heads: int = 4,
        layers: int = 2,
        rngs: nnx.Rngs,
    ):
        self.embed = nnx.Embed(vocab, width, rngs=rngs)
        self.position = nnx.Embed(length, width, rngs=rngs)
        self.blocks = nnx.List([Block(width, heads, rngs=rngs) for _ in range(layers)])
        self.norm = nnx.LayerNorm(width, rngs=rngs)

    def __call__(
        self, tokens: jax.Array, segment_ids: jax.Array, positions: jax.Array
    ) -> jax.Array:
        """Next-token logits ``(batch, length, vocab)``."""
        x = self.embed(tokens) + self.position(positions)
        same = segment_ids[:, :, None] == segment_ids[:, None, :]
        causal = jnp.tril(jnp.ones((tokens.shape[1],) * 2, bool))
        mask = (same & causal & (segment_ids[:, :, None] > 0))[:, None]
        for block in self.blocks:
            x = block(x, mask)
        return self.embed.attend(self.norm(x))


def loss_fn(model: TinyLM, batch: dict[str, Any]) -> jax.Array:
    """Mean next-token cross-entropy over the real targets (``loss_mask``)."""
    logits = model(batch["tokens"], batch["segment_ids"], batch["positions"])
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"])
    mask = batch["loss_mask"]
    return jnp.sum(losses * mask) / jnp.maximum(jnp.sum(mask), 1)


@nnx.jit
def train_step(model: TinyLM, optimizer: nnx.Optimizer, batch: dict[str, Any]) -> jax.Array:
    """One AdamW step on a packed batch; returns the loss before it."""
    loss, grads = nnx.value_and_grad(loss_fn)(model, batch)
    optimizer.update(model, grads)
    return loss


def build(vocab: int, length: int, seed: int) -> tuple[TinyLM, nnx.Optimizer]:
    """The model and its AdamW optimiser, from ``seed``."""
    model = TinyLM(vocab, length, rngs=nnx.Rngs(seed))
    optimizer = nnx.Optimizer(model, optax.adamw(3e-3, weight_decay=0.01), wrt=nnx.Param)
    return model, optimizer
