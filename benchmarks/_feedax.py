"""feedax variants: the library under test.

Each function builds a :class:`feedax.Pipeline` for the workload and returns its endless
iterator (batches are dicts of ``jax.Array`` on the default device).
"""

from __future__ import annotations

import atexit
import shutil
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from benchmarks._config import (
    CifarConfig,
    JpegConfig,
    JpegFolderConfig,
    TextConfig,
    TokensConfig,
)
from benchmarks._data import TEXT_FILE, TOKENIZER_FILE, Bundle, jpeg_bytes


def w1(data: Bundle, cfg: CifarConfig) -> Iterator[dict[str, Any]]:
    """W1: ``ArraySource(on_device=True)`` + RandomCrop + RandomFlip + Normalize.

    The 150 MB of images live on the device, so each batch is one jitted call: the
    order, the gather and the three operators, with nothing read or transferred per batch.
    """
    return _cifar_pipeline(data, cfg, on_device=True)


def w1_host(data: Bundle, cfg: CifarConfig) -> Iterator[dict[str, Any]]:
    """W1 from host memory: ``ArraySource`` (the default), the same three operators.

    Each batch is gathered on the host in the keyed order and moved to the device, as
    the reference does.
    """
    return _cifar_pipeline(data, cfg, on_device=False)


def _cifar_pipeline(data: Bundle, cfg: CifarConfig, on_device: bool) -> Iterator[dict[str, Any]]:
    from flax import nnx

    import feedax as fx

    if cfg.crop != cfg.image_size:
        raise NotImplementedError("feedax W1 variant assumes crop == image_size")
    rngs = nnx.Rngs(augment=cfg.seed)
    flip_kw: dict[str, Any] = {} if cfg.flip_p == 0.5 else {"p": cfg.flip_p}
    images = {"image": data["images"], "label": data["labels"]}
    src = fx.ArraySource(images, on_device=on_device)
    ops = [
        fx.RandomCrop(cfg.crop, padding=cfg.padding, rngs=rngs),
        fx.RandomFlip(**flip_kw, rngs=rngs),
        fx.Normalize(cfg.mean, cfg.std),
    ]
    pipe = fx.Pipeline(
        src, ops, batch_size=cfg.batch_size, shuffle=cfg.shuffle, seed=cfg.seed, drop_remainder=True
    )
    return iter(pipe)


def _jpeg_pipeline(
    src: Any, cfg: JpegConfig, field: str, on_device: bool
) -> Iterator[dict[str, Any]]:
    """W2's pipeline over ``src`` (images in ``field``), from public feedax pieces.

    ``on_device``: ``fx.DecodeImage`` in host threads, then ``fx.RandomResizedCrop`` +
    ``fx.RandomFlip`` + ``fx.Normalize`` on the device (the images are all 256 x 256, so
    decoding gives them their shape). Otherwise ``fx.DecodeRandomResizedCrop`` decodes and
    crops in host threads, and the device flips and normalises.
    """
    from flax import nnx

    import feedax as fx

    rngs = nnx.Rngs(augment=cfg.seed, host=cfg.seed)
    size = cfg.image_size
    if on_device:
        decode: Any = fx.DecodeImage(size, field=field)
        ops: list[Any] = [
            fx.RandomResizedCrop(cfg.out_size, scale=cfg.scale, ratio=cfg.ratio, rngs=rngs)
        ]
    else:
        decode = fx.DecodeRandomResizedCrop(
            cfg.out_size, scale=cfg.scale, ratio=cfg.ratio, field=field
        )
        ops = []
    ops += [fx.RandomFlip(p=cfg.flip_p, rngs=rngs), fx.Normalize(cfg.mean, cfg.std)]
    host = fx.HostMap(decode, rngs=rngs, stream="host")  # default workers, as the docs show
    pipe = fx.Pipeline(
        src,
        ops,
        batch_size=cfg.batch_size,
        shuffle=cfg.shuffle,
        seed=cfg.seed,
        drop_remainder=True,
        host=host,
    )
    return iter(pipe)


def _jpeg_source(data: Bundle) -> Any:
    import feedax as fx

    jpegs = np.empty(len(data), dtype=object)
    for i in range(len(data)):
        jpegs[i] = jpeg_bytes(data, i)
    return fx.ArraySource({"jpeg": jpegs, "label": data["labels"]})


def w2(data: Bundle, cfg: JpegConfig) -> Iterator[dict[str, Any]]:
    """W2: ``DecodeImage`` on the host; ``RandomResizedCrop``, flip, normalise on device."""
    return _jpeg_pipeline(_jpeg_source(data), cfg, "jpeg", on_device=True)


def w2_host(data: Bundle, cfg: JpegConfig) -> Iterator[dict[str, Any]]:
    """W2: ``DecodeRandomResizedCrop`` on the host; flip and normalise on the device."""
    return _jpeg_pipeline(_jpeg_source(data), cfg, "jpeg", on_device=False)


def w2folder(data: Bundle, cfg: JpegFolderConfig) -> Iterator[dict[str, Any]]:
    """W2-folder: ``ImageFolderSource`` paths read and decoded by ``DecodeImage``, as W2."""
    import feedax as fx

    return _jpeg_pipeline(fx.ImageFolderSource(data.path), cfg, "path", on_device=True)


def w2folder_host(data: Bundle, cfg: JpegFolderConfig) -> Iterator[dict[str, Any]]:
    """W2-folder with ``DecodeRandomResizedCrop`` reading and cropping each file."""
    import feedax as fx

    return _jpeg_pipeline(fx.ImageFolderSource(data.path), cfg, "path", on_device=False)


def w3(data: Bundle, cfg: TokensConfig) -> Iterator[dict[str, Any]]:
    """W3: ``TokenSource`` (the flat tokens + offsets) packed by ``Pack`` (best fit).

    The rows hold whole sequences (none is longer than a row), with ``segment_ids`` and
    ``positions``; ``Pack``'s default best-fit packs a window of 2,048 sequences at once,
    so its rows are fuller than first fit over ``batch_size`` bins.
    """
    return iter(_tokens_pipeline(data, cfg))


def _tokens_pipeline(data: Bundle, cfg: TokensConfig) -> Any:
    import feedax as fx

    source = fx.TokenSource(data["tokens"], data["offsets"])
    return _packing(source, cfg, fx.Pack(cfg.row_len, targets=False))


def restore_w3(data: Bundle, cfg: TokensConfig, after: int = 100) -> float:
    """Seconds to resume W3 mid-epoch, from the state saved after ``after`` batches.

    Timed: ``nnx.update`` of a freshly built pipeline and its first batch ready on the device.
    """
    import jax
    from flax import nnx

    source = _tokens_pipeline(data, cfg)
    stream = iter(source)
    for _ in range(after):
        next(stream)
    saved = nnx.clone(nnx.state(source))
    fresh = _tokens_pipeline(data, cfg)
    start = time.perf_counter()
    nnx.update(fresh, saved)
    jax.block_until_ready(next(iter(fresh)))
    return time.perf_counter() - start


def w4(data: Bundle, cfg: TextConfig) -> Iterator[dict[str, Any]]:
    """W4: ``fx.tokenize`` of a ``JsonlSource`` (once, batched) then ``Pack``, as the docs say.

    The tokens go to a fresh temporary folder, so every run tokenizes the whole corpus (a
    second run over the same folder would reuse it).
    """
    import tempfile

    import feedax as fx

    tokenizer = _tokenizer(data)
    folder = tempfile.mkdtemp(prefix="feedax-bench-w4-")
    atexit.register(shutil.rmtree, folder, True)
    source = fx.JsonlSource(data.path / TEXT_FILE)
    tokens = fx.tokenize(source, tokenizer, folder, progress=False)
    return iter(_text_pipeline(tokens, cfg, "tokens"))


def w4_host(data: Bundle, cfg: TextConfig) -> Iterator[dict[str, Any]]:
    """W4 with the tokenizer as a host stage (``HostMap(fx.TokenizeText(...))``, threads).

    The stage runs on each record a batch packs, after the lengths of every record were
    indexed once (the corpus is tokenized twice per run).
    """
    return _tokenizing_stage(data, cfg, "thread")


def w4_ray(data: Bundle, cfg: TextConfig) -> Iterator[dict[str, Any]]:
    """W4 with the same host stage run as Ray tasks (``HostMap(backend="ray")``).

    On a local Ray cluster of this machine, started inside the timed region
    (``ray.init``), as a program that starts its own cluster does.
    """
    return _tokenizing_stage(data, cfg, "ray")


def _tokenizing_stage(data: Bundle, cfg: TextConfig, backend: Any) -> Iterator[dict[str, Any]]:
    """W4: ``fx.TokenizeText`` as a ``HostMap`` stage feeding ``Pack(field="ids")``."""
    import feedax as fx

    tokenize = fx.TokenizeText(str(data.path / TOKENIZER_FILE), out_field="ids")
    stage = fx.HostMap(tokenize, backend=backend)  # default workers, as the docs show
    source = fx.JsonlSource(data.path / TEXT_FILE)
    return iter(_text_pipeline(source, cfg, "ids", host=stage))


def _tokenizer(data: Bundle) -> Any:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(data.path / TOKENIZER_FILE))


def _text_pipeline(source: Any, cfg: TextConfig, field: str, host: Any = None) -> Any:
    import feedax as fx

    pack = fx.Pack(cfg.row_len, field=field, targets=False, long="truncate")
    return _packing(source, cfg, pack, host)


def _packing(source: Any, cfg: TokensConfig | TextConfig, pack: Any, host: Any = None) -> Any:
    """A shuffled packing pipeline of W3 / W4."""
    import feedax as fx

    return fx.Pipeline(
        source,
        batch_size=cfg.batch_size,
        shuffle=cfg.shuffle,
        seed=cfg.seed,
        drop_remainder=True,
        host=host,
        pack=pack,
    )
