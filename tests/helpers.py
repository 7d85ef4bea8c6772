"""Small pipelines shared by the tests (no environment side effects)."""

import numpy as np
from flax import nnx

import feedax as fx


def make_images(n: int, size: int = 8, channels: int = 3, seed: int = 0) -> np.ndarray:
    """Random uint8 HWC images."""
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, channels), np.uint8)


def make_pipeline(
    n: int = 50,
    *,
    batch_size: int = 8,
    shuffle: bool = True,
    seed: int = 0,
    drop_remainder: bool = True,
    augment: bool = True,
    on_device: bool = False,
    **kwargs,
) -> fx.Pipeline:
    """A small pipeline whose records carry their own index in the field 'id'."""
    rngs = nnx.Rngs(augment=42)
    ops = (
        [fx.RandomCrop(8, padding=2, rngs=rngs), fx.RandomFlip(rngs=rngs), fx.RunningNormalize(3)]
        if augment
        else []
    )
    source = fx.ArraySource(
        {"image": make_images(n), "id": np.arange(n, dtype=np.int32)}, on_device=on_device
    )
    return fx.Pipeline(
        source,
        ops,
        batch_size=batch_size,
        shuffle=shuffle,
        seed=seed,
        drop_remainder=drop_remainder,
        **kwargs,
    )


def host(batch: dict) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in batch.items()}
