"""feedax variants: the library under test.

Each function builds a :class:`feedax.Pipeline` for the workload and returns its endless
iterator (batches are dicts of ``jax.Array`` on the default device). Workloads whose feedax
stages do not exist yet raise ``NotImplementedError`` and show as "n/a".
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from feedax.bench._config import CifarConfig, JpegConfig, TokensConfig
from feedax.bench._data import Bundle


def w1(data: Bundle, cfg: CifarConfig) -> Iterator[dict[str, Any]]:
    """W1: ``ArraySource`` + RandomCrop + RandomFlip + Normalize, fused on device."""
    from flax import nnx

    import feedax as fx

    if cfg.crop != cfg.image_size:
        raise NotImplementedError("feedax W1 variant assumes crop == image_size")
    rngs = nnx.Rngs(augment=cfg.seed)
    flip_kw: dict[str, Any] = {} if cfg.flip_p == 0.5 else {"p": cfg.flip_p}
    src = fx.ArraySource({"image": data["images"], "label": data["labels"]})
    ops = [
        fx.RandomCrop(cfg.crop, padding=cfg.padding, rngs=rngs),
        fx.RandomFlip(**flip_kw, rngs=rngs),
        fx.Normalize(cfg.mean, cfg.std),
    ]
    pipe = fx.Pipeline(
        src, ops, batch_size=cfg.batch_size, shuffle=cfg.shuffle, seed=cfg.seed, drop_remainder=True
    )
    return iter(pipe)


def w2(data: Bundle, cfg: JpegConfig) -> Iterator[dict[str, Any]]:
    """W2: needs the feedax host stage (JPEG decode in workers); not built yet."""
    raise NotImplementedError("feedax host stage (JPEG decode) is not built yet")


def w3(data: Bundle, cfg: TokensConfig) -> Iterator[dict[str, Any]]:
    """W3: needs feedax sequence packing; not built yet."""
    raise NotImplementedError("feedax sequence packing is not built yet")
