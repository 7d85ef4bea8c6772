"""The hand-written ``jax.jit`` reference: the bar feedax must meet.

What a careful JAX user writes by hand without a data library: a NumPy permutation per
epoch, a NumPy gather (or a thread-pool decode) of the batch in the main thread,
``jax.device_put``, and one jitted, vmapped function for the per-record math. JAX dispatch
is asynchronous, so the next batch is gathered while the device computes the current one
(one batch in flight).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from benchmarks import _augment
from benchmarks._config import (
    CifarConfig,
    JpegConfig,
    JpegFolderConfig,
    TextConfig,
    TokensConfig,
)
from benchmarks._data import (
    TEXT_FILE,
    TOKENIZER_FILE,
    Bundle,
    JpegBytes,
    JpegFiles,
    JpegRecords,
    sequence,
)

Batch = dict[str, Any]


def _orders(n: int, shuffle: bool, seed: int) -> Iterator[np.ndarray]:
    """Yields the visiting order of each epoch."""
    epoch = 0
    while True:
        yield np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)
        epoch += 1


def _index_batches(n: int, batch_size: int, shuffle: bool, seed: int) -> Iterator[np.ndarray]:
    """Yields index batches forever, dropping each epoch's remainder."""
    if n < batch_size:
        raise ValueError(f"dataset of {n} records is smaller than one batch ({batch_size})")
    for order in _orders(n, shuffle, seed):
        for start in range(0, n - batch_size + 1, batch_size):
            yield order[start : start + batch_size]


def _one_ahead(
    make: Callable[[], Batch], on_close: Callable[[], None] | None = None
) -> Iterator[Batch]:
    """Keeps one dispatched batch in flight: yields batch i after dispatching i + 1.

    ``on_close`` runs when the iterator is closed or garbage-collected.
    """
    try:
        pending = make()
        while True:
            nxt = make()
            yield pending
            pending = nxt
    finally:
        if on_close is not None:
            on_close()


def w1(data: Bundle, cfg: CifarConfig) -> Iterator[Batch]:
    """W1: NumPy gather of uint8 images, jitted crop+flip+normalise."""
    import jax

    images, labels = data["images"], data["labels"]
    fn = _augment.jax_cifar_batch_fn(cfg)
    index_batches = _index_batches(len(labels), cfg.batch_size, cfg.shuffle, cfg.seed)
    base = jax.random.key(cfg.seed)
    step = 0

    def make() -> Batch:
        nonlocal step
        idx = next(index_batches)
        x, y = jax.device_put((images[idx], labels[idx]))
        out = {"image": fn(x, jax.random.fold_in(base, step)), "label": y}
        step += 1
        return out

    return _one_ahead(make)


def w1_loop(data: Bundle, cfg: CifarConfig) -> Iterator[Batch]:
    """W1 as a user writes it in a few lines: the check that the reference is not slow.

    A NumPy gather of the batch, ``jax.device_put``, one ``jax.jit`` of ``vmap`` over
    pad + ``dynamic_slice`` + flip (``jnp.where``) + normalise, each record's key
    ``fold_in(key, index)``. The ``reference`` must not be slower than this.
    """
    import jax
    import jax.numpy as jnp

    images, labels = data["images"], data["labels"]
    p, s = cfg.padding, cfg.crop
    mean = jnp.asarray(cfg.mean, jnp.float32)
    std = jnp.asarray(cfg.std, jnp.float32)
    base = jax.random.key(cfg.seed)

    def one(img: jax.Array, index: jax.Array, key: jax.Array) -> jax.Array:
        k_off, k_flip = jax.random.split(jax.random.fold_in(key, index))
        dy, dx = jax.random.randint(k_off, (2,), 0, 2 * p + 1)
        padded = jnp.pad(img, ((p, p), (p, p), (0, 0)))
        crop = jax.lax.dynamic_slice(padded, (dy, dx, 0), (s, s, img.shape[-1]))
        crop = jnp.where(jax.random.uniform(k_flip) < cfg.flip_p, crop[:, ::-1], crop)
        return (crop.astype(jnp.float32) - mean) / std

    fn = jax.jit(jax.vmap(one, in_axes=(0, 0, None)))
    index_batches = _index_batches(len(labels), cfg.batch_size, cfg.shuffle, cfg.seed)
    epoch_key = base

    def make() -> Batch:
        idx = next(index_batches)
        x, y, i = jax.device_put((images[idx], labels[idx], idx))
        return {"image": fn(x, i, epoch_key), "label": y}

    return _one_ahead(make)


def _jpeg(jpegs: JpegRecords, cfg: JpegConfig) -> Iterator[Batch]:
    """Thread-pool PIL decode of ``jpegs`` into a uint8 batch, jitted RRC+flip+normalise."""
    import jax

    labels = jpegs.labels
    fn = _augment.jax_jpeg_batch_fn(cfg)
    index_batches = _index_batches(len(labels), cfg.batch_size, cfg.shuffle, cfg.seed)
    pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1)
    s = cfg.image_size
    base = jax.random.key(cfg.seed)
    step = 0

    def decode_into(buf: np.ndarray, i: int, index: int) -> None:
        img = _augment.decode_jpeg(jpegs(int(index)))
        if img.size != (s, s):
            raise ValueError(f"record {index}: decoded size {img.size}, expected {(s, s)}")
        buf[i] = np.asarray(img)

    def make() -> Batch:
        nonlocal step
        idx = next(index_batches)
        buf = np.empty((len(idx), s, s, 3), np.uint8)
        list(pool.map(decode_into, [buf] * len(idx), range(len(idx)), idx))
        x, y = jax.device_put((buf, labels[idx]))
        out = {"image": fn(x, jax.random.fold_in(base, step)), "label": y}
        step += 1
        return out

    return _one_ahead(make, on_close=pool.shutdown)


def w2(data: Bundle, cfg: JpegConfig) -> Iterator[Batch]:
    """W2: thread-pool PIL decode into a uint8 batch, jitted random-resized-crop+flip+norm."""
    return _jpeg(JpegBytes(data), cfg)


def w2folder(data: Bundle, cfg: JpegFolderConfig) -> Iterator[Batch]:
    """W2-folder: as W2, each thread opening and reading its record's file first."""
    return _jpeg(JpegFiles(data.path), cfg)


def w3(data: Bundle, cfg: TokensConfig) -> Iterator[Batch]:
    """W3: first-fit packing in NumPy in the main thread, ``jax.device_put`` of each batch."""
    import jax

    n = len(data["offsets"]) - 1
    packer = _augment.pack_config(cfg)

    def batches() -> Iterator[Batch]:
        for order in _orders(n, cfg.shuffle, cfg.seed):
            for packed in packer.pack(sequence(data, int(i)) for i in order):
                yield jax.device_put(packed)

    return batches()


def w4(data: Bundle, cfg: TextConfig) -> Iterator[Batch]:
    """W4: JSONL parsed, ``encode_batch`` of 1,024 texts at a time, first fit in NumPy.

    The tokenizer's batched encoding runs in Rust threads; each sequence is cut to a row,
    packed first fit as in W3 and each batch moved with ``jax.device_put``.
    """
    import json

    import jax
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(data.path / TOKENIZER_FILE))
    with open(data.path / TEXT_FILE) as f:
        lines = f.read().splitlines()
    packer = _augment.FirstFitPacker(cfg.batch_size, cfg.row_len)

    def sequences(order: np.ndarray) -> Iterator[np.ndarray]:
        for lo in range(0, len(order), 1024):
            texts = [json.loads(lines[i])["text"] for i in order[lo : lo + 1024]]
            for encoding in tokenizer.encode_batch(texts):
                yield np.asarray(encoding.ids[: cfg.row_len], np.int32)

    def batches() -> Iterator[Batch]:
        for order in _orders(len(lines), cfg.shuffle, cfg.seed):
            for packed in packer.pack(sequences(order)):
                yield jax.device_put(packed)

    return batches()
