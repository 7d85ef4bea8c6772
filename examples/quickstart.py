"""The README's quick start as a script: python examples/quickstart.py."""

import jax.numpy as jnp
import numpy as np
from flax import nnx

import feedax as fx

images = np.random.default_rng(0).integers(0, 256, (1000, 32, 32, 3), np.uint8)
labels = np.arange(1000) % 10

rngs = nnx.Rngs(augment=1)
source = fx.ArraySource({"image": images, "label": labels})
pipe = fx.Pipeline(
    source,
    [
        fx.RandomCrop(32, padding=4, rngs=rngs),
        fx.RandomFlip(rngs=rngs),
        fx.Normalize(mean=(125.3, 123.0, 113.9), std=(63.0, 62.1, 66.7)),
    ],
    batch_size=256,
    shuffle=True,
    seed=0,
    drop_remainder=True,
)

first = None
for step, batch in enumerate(pipe.epoch()):
    if step == 1:
        state = nnx.clone(nnx.state(pipe))  # taken after batch 1: resumes at batch 2
    if step == 2:
        first = np.asarray(batch["image"])
print("epoch 0:", pipe.steps_per_epoch, "batches of", batch["image"].shape, batch["image"].dtype)

nnx.update(pipe, state)
again = np.asarray(next(pipe.epoch())["image"])
print("resumed batch 2 identical:", np.array_equal(first, again))

pipe.eval()
plain = next(pipe.epoch())["image"]
print("eval mode: flips and crops off, mean", float(jnp.mean(plain)))
