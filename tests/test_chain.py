"""A flip folded into the resize before it gives the output of running both in turn."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import feedax as fx
from feedax._chain import _folded

Warp = Callable[[nnx.Rngs, tuple[str, ...]], Any]

WARPS: dict[str, Warp] = {
    "rrc-bilinear": lambda r, f: fx.RandomResizedCrop(12, fields=f, rngs=r),
    "rrc-bicubic": lambda r, f: fx.RandomResizedCrop((10, 14), method="bicubic", fields=f, rngs=r),
    "rrc-nearest": lambda r, f: fx.RandomResizedCrop(9, method="nearest", fields=f, rngs=r),
    "resize": lambda r, f: fx.Resize((11, 13), fields=f),
    "resize-up": lambda r, f: fx.Resize((40, 36), method="lanczos3", fields=f),
    "crop-constant": lambda r, f: fx.RandomCrop(16, padding=4, fill=0.5, fields=f, rngs=r),
    "crop-reflect": lambda r, f: fx.RandomCrop(
        (18, 20), padding=3, padding_mode="reflect", fields=f, rngs=r
    ),
}


def _batch(dtype: Any) -> dict[str, jax.Array]:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (6, 20, 24, 3))
    mask = rng.integers(0, 5, (6, 20, 24))
    return {"image": jnp.asarray(image, dtype), "mask": jnp.asarray(mask, jnp.int32)}


def _one_by_one(ops: list[Any], batch: dict[str, jax.Array], indices: jax.Array) -> Any:
    for op in ops:  # separate calls: nothing to fold across
        batch = fx.apply_operators(op, batch, indices=indices)
    return batch


@pytest.mark.parametrize("warp", sorted(WARPS))
@pytest.mark.parametrize("direction", ["horizontal", "vertical"])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_folded_flip_equals_the_two_in_turn(warp: str, direction: str, mode: str) -> None:
    fields = ("mask",)
    indices = jnp.arange(6) * 7
    outs = []
    for fold in (True, False):
        rngs = nnx.Rngs(augment=3)
        ops = [WARPS[warp](rngs, fields), fx.RandomFlip(direction, fields=fields, rngs=rngs)]
        pipeline_ops = nnx.List(ops)
        getattr(pipeline_ops, mode)()
        batch = _batch(jnp.uint8)
        run = fx.apply_operators if fold else _one_by_one
        outs.append(run(list(pipeline_ops), batch, indices=indices))
    folded, plain = outs
    for field in ("image", "mask"):
        np.testing.assert_array_equal(np.asarray(folded[field]), np.asarray(plain[field]))
    if mode == "train":  # some records flipped, some not: the draw was folded, not dropped
        assert not np.array_equal(
            np.asarray(folded["image"][:, :, ::-1]), np.asarray(folded["image"])
        )


def test_fold_applies_only_to_a_mirror_of_the_same_fields() -> None:
    rngs = nnx.Rngs(augment=0)
    ctx = fx.RecordContext(jnp.int32(0), jnp.int32(1), jnp.bool_(True))
    record = {"image": jnp.zeros((8, 8, 3)), "mask": jnp.zeros((8, 8), jnp.int32)}
    crop = fx.RandomResizedCrop(4, rngs=rngs)
    assert _folded(crop, fx.RandomFlip(rngs=rngs), record, ctx) is not None
    # the flip moves a field the crop does not: run them in turn
    assert _folded(crop, fx.RandomFlip(fields=("mask",), rngs=rngs), record, ctx) is None
    # not a mirror, or not a warp that can mirror
    assert _folded(crop, fx.RandomRotation(10, rngs=rngs), record, ctx) is None
    assert _folded(fx.CenterCrop(4), fx.RandomFlip(rngs=rngs), record, ctx) is None
    assert _folded(fx.RandomCrop(4, rngs=rngs), fx.RandomFlip(rngs=rngs), record, ctx) is None
    flip = fx.RandomFlip(rngs=rngs)
    flip.eval()  # the identity in eval: nothing to fold
    assert _folded(crop, flip, record, ctx) is None


def test_a_folded_flip_still_rejects_what_it_rejects() -> None:
    rngs = nnx.Rngs(augment=0)
    ops = [fx.Resize((4, 4)), fx.RandomFlip(rngs=rngs)]
    batch = {"image": jnp.zeros((2, 8, 8, 3), jnp.bool_)}
    with pytest.raises(fx.OperatorError):
        fx.apply_operators(ops, batch, indices=jnp.arange(2))
