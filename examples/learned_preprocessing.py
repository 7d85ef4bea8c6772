"""Learned preprocessing: recover an unknown colour distortion through a feedax pipeline.

A camera (say) distorts colours in a fixed but unknown way. We have pairs of clean and
distorted photographs and learn the distortion's parameters by gradient descent through
the pipeline's own operators: learnable ``fx.Hue``, ``fx.Brightness``, ``fx.Contrast`` and
``fx.Saturation`` (their factor ranges are ``nnx.Param``s, the factor is drawn by
reparameterisation ``center + spread * u``), differentiated with ``nnx.value_and_grad`` of
``pipe(batch, indices=..., epoch=...)``. The centres converge to the true factors and the
spreads to zero (the distortion is not random).

Run: python examples/learned_preprocessing.py [--steps 300] [--size 32] [--batch-size 32]
Needs the demo extra (scikit-learn ships the two photographs, optax optimises).
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from PIL import Image
from sklearn.datasets import load_sample_image

import feedax as fx
from feedax import functional as F

TRUE = {"hue": 0.05, "brightness": 1.25, "contrast": 0.7, "saturation": 1.6}
"""The unknown distortion, applied in this order: what the example recovers."""


def photographs(n: int, size: int, seed: int) -> np.ndarray:
    """``n`` random ``size`` x ``size`` crops of scikit-learn's two photographs, float [0, 1]."""
    rng = np.random.default_rng(seed)
    scenes = [
        np.asarray(Image.fromarray(load_sample_image(name)).resize((160, 107)), np.float32) / 255
        for name in ("china.jpg", "flower.jpg")
    ]
    crops = []
    for i in range(n):
        scene = scenes[i % 2]
        y, x = rng.integers(0, scene.shape[0] - size), rng.integers(0, scene.shape[1] - size)
        crops.append(scene[y : y + size, x : x + size])
    return np.stack(crops)


def distort(x: np.ndarray) -> np.ndarray:
    """The 'unknown' fixed distortion, with feedax's functional ops at fixed factors."""

    def one(image: jax.Array) -> jax.Array:
        image = F.adjust_hue(image, TRUE["hue"])
        image = F.adjust_brightness(image, TRUE["brightness"])
        image = F.adjust_contrast(image, TRUE["contrast"])
        return F.adjust_saturation(image, TRUE["saturation"])

    return np.asarray(jax.jit(jax.vmap(one))(jnp.asarray(x)))


def learned(pipe: fx.Pipeline) -> dict[str, tuple[float, float]]:
    """(centre, |spread|) of each learnable operator of ``pipe``."""
    return {
        type(op).__name__.lower(): (float(op.center[...]), abs(float(op.spread[...])))
        for op in pipe.operators
    }


def run(
    steps: int = 300,
    size: int = 32,
    batch_size: int = 32,
    records: int = 256,
    lr: float = 0.03,
    seed: int = 0,
    log_every: int = 25,
) -> dict[str, tuple[float, float]]:
    """Fits the pipeline's colour operators to the distorted photographs; returns them."""
    clean = photographs(records, size, seed)
    observed = distort(clean)
    rngs = nnx.Rngs(augment=seed)
    # Start at "no distortion": each range is the single neutral factor.
    ops = [
        fx.Hue((0.0, 0.0), learnable=True, rngs=rngs),
        fx.Brightness((1.0, 1.0), learnable=True, rngs=rngs),
        fx.Contrast((1.0, 1.0), learnable=True, rngs=rngs),
        fx.Saturation((1.0, 1.0), learnable=True, rngs=rngs),
    ]
    source = fx.ArraySource({"image": clean, "target": observed})
    pipe = fx.Pipeline(source, ops, batch_size=batch_size, shuffle=True, seed=seed)
    optimizer = nnx.Optimizer(pipe, optax.adam(lr), wrt=nnx.Param)

    @nnx.jit
    def train_step(pipe, optimizer, images, targets, indices, epoch):
        def loss_fn(pipe):
            out = pipe({"image": images}, indices=indices, epoch=epoch)
            return jnp.mean(jnp.square(out["image"] - targets))

        loss, grads = nnx.value_and_grad(loss_fn)(pipe)  # w.r.t. the nnx.Params
        optimizer.update(pipe, grads)
        return loss

    order = np.random.default_rng(seed)
    print(f"{'step':>5} {'loss':>10}  " + "  ".join(f"{k:>10}" for k in learned(pipe)))
    for step in range(steps + 1):
        indices = order.choice(records, batch_size, replace=False)
        loss = train_step(
            pipe,
            optimizer,
            jnp.asarray(clean[indices]),
            jnp.asarray(observed[indices]),
            jnp.asarray(indices),
            step,
        )
        if step % log_every == 0 or step == steps:
            values = "  ".join(f"{c:10.4f}" for c, _ in learned(pipe).values())
            print(f"{step:5d} {float(loss):10.6f}  {values}")
    result = learned(pipe)
    print(
        "\nrecovered (true): "
        + ", ".join(
            f"{name} {centre:.3f} ({TRUE[name]}) spread {spread:.3f}"
            for name, (centre, spread) in result.items()
        )
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    run(steps=args.steps, size=args.size, batch_size=args.batch_size, seed=args.seed)


if __name__ == "__main__":
    main()
