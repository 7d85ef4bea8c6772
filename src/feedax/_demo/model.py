"""The demo's model: a small NNX CNN for 8x8 digits, its optimiser and jitted steps."""

from __future__ import annotations

import jax
import optax
from flax import nnx

LEARNING_RATE = 1e-3

# One transformation for every optimiser: a new optax.adam(...) is a different static in
# the optimiser's graph and would make nnx.jit compile the train step again.
_ADAM = optax.adam(LEARNING_RATE)


class DigitsCNN(nnx.Module):
    """A small CNN for 8x8x1 images and 10 classes.

    Args:
      rngs: the ``params`` stream initialises the weights, ``dropout`` drives dropout.

    Example:
      >>> import jax.numpy as jnp
      >>> model = DigitsCNN(rngs=nnx.Rngs(params=0, dropout=1))
      >>> model(jnp.zeros((2, 8, 8, 1))).shape
      (2, 10)
    """

    def __init__(self, *, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(1, 32, (3, 3), rngs=rngs)
        self.conv2 = nnx.Conv(32, 64, (3, 3), rngs=rngs)
        self.dropout = nnx.Dropout(0.3, rngs=rngs)
        self.hidden = nnx.Linear(4 * 4 * 64, 128, rngs=rngs)
        self.head = nnx.Linear(128, 10, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Returns the logits of a batch of HWC images."""
        x = nnx.relu(self.conv1(x))
        x = nnx.relu(self.conv2(x))
        x = nnx.avg_pool(x, (2, 2), strides=(2, 2))
        x = self.dropout(x.reshape(x.shape[0], -1))
        return self.head(nnx.relu(self.hidden(x)))


@nnx.jit(static_argnums=0)
def _init(seed: int) -> tuple[DigitsCNN, nnx.Optimizer]:
    model = DigitsCNN(rngs=nnx.Rngs(params=seed, dropout=seed + 1))
    return model, nnx.Optimizer(model, _ADAM, wrt=nnx.Param)


def build_model(seed: int, device: jax.Device) -> tuple[DigitsCNN, nnx.Optimizer]:
    """The model and its Adam optimiser, initialised from ``seed`` and placed on ``device``.

    Initialising inside one jit compiles one program rather than one per eager op
    (seconds on a small CPU). Placing the state on the batches' device commits it there;
    left uncommitted, the train step would compile again after its first call, whose
    outputs are committed.

    Example:
      >>> model, optimizer = build_model(0, jax.local_devices()[0])
    """
    model, optimizer = _init(seed)
    for module in (model, optimizer):
        nnx.update(module, jax.device_put(nnx.state(module), device))
    return model, optimizer


@nnx.jit
def train_step(
    model: DigitsCNN, optimizer: nnx.Optimizer, batch: dict[str, jax.Array]
) -> jax.Array:
    """One Adam step on a batch; returns the mean cross-entropy before the step."""

    def loss_fn(model: DigitsCNN) -> jax.Array:
        logits = model(batch["image"])
        return optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss


@nnx.jit
def count_correct(model: DigitsCNN, batch: dict[str, jax.Array]) -> jax.Array:
    """The number of real (``valid``) records of a padded batch classified correctly."""
    hits = (model(batch["image"]).argmax(-1) == batch["label"]) & batch["valid"]
    return hits.sum()
