"""PyTorch DataLoader peer, as its users write it for a JAX training loop.

A map-style ``Dataset`` applies the per-record math (:mod:`benchmarks._augment`, NumPy /
PIL) in ``__getitem__``; the ``DataLoader`` shuffles, batches with the default collate and
runs ``cfg.workers`` worker processes (0 = in the main process; persistent workers
otherwise). Each batch is converted to NumPy and moved with ``jax.device_put``. W3 uses an
``IterableDataset`` that packs in Python, each worker packing a disjoint share.

Each process draws its augmentation randomness from its own generator seeded by
``torch.initial_seed()`` (distinct per worker process), avoiding the classic
duplicated-NumPy-seed bug.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.utils.data as tud

from benchmarks import _augment
from benchmarks._config import CifarConfig, JpegConfig, JpegFolderConfig, TokensConfig
from benchmarks._data import Bundle, JpegRecords, jpeg_records, sequence


class _MapDataset(tud.Dataset):
    """Map-style dataset doing ``kind``'s per-record work.

    W2 and W2-folder fetch their JPEGs through :func:`benchmarks._data.jpeg_records`
    (bytes held in memory, or each record's file opened and read).
    """

    def __init__(self, data: Bundle, cfg: Any, kind: str) -> None:
        self.data = data
        self.cfg = cfg
        self.kind = kind
        self.jpegs: JpegRecords | None = None if kind == "w1" else jpeg_records(data, cfg)
        self._rng: np.random.Generator | None = None

    def __len__(self) -> int:
        return len(self.data if self.jpegs is None else self.jpegs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if self._rng is None:  # first use in this process
            self._rng = np.random.default_rng(torch.initial_seed() % 2**63)
        if self.jpegs is None:
            label = self.data["labels"][index]
            image = _augment.cifar_random_record(self.data["images"][index], self._rng, self.cfg)
        else:
            label = self.jpegs.labels[index]
            image = _augment.jpeg_random_record(self.jpegs(index), self._rng, self.cfg)
        return {"image": image, "label": label}


class _PackedTokens(tud.IterableDataset):
    """Iterable dataset of packed batches of ``cfg.batch_size`` rows.

    Each worker packs its own share (a stride) of the epoch's order.
    """

    def __init__(self, data: Bundle, cfg: TokensConfig) -> None:
        self.data = data
        self.cfg = cfg
        self._epoch = 0

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        info = tud.get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        n = len(self.data["offsets"]) - 1
        if self.cfg.shuffle:
            order = np.random.default_rng([self.cfg.seed, self._epoch]).permutation(n)
        else:
            order = np.arange(n)
        self._epoch += 1
        packer = _augment.pack_config(self.cfg)
        yield from packer.pack(sequence(self.data, int(i)) for i in order[wid::nw])


def _loader(dataset: tud.Dataset, cfg: Any, batched: bool) -> Iterator[dict[str, Any]]:
    kwargs: dict[str, Any] = {"num_workers": cfg.workers}
    if cfg.workers > 0:
        kwargs.update(persistent_workers=True, prefetch_factor=2)
    if batched:
        loader = tud.DataLoader(dataset, batch_size=None, **kwargs)
    else:
        gen = torch.Generator()
        gen.manual_seed(cfg.seed)
        loader = tud.DataLoader(
            dataset,
            batch_size=cfg.batch_size,
            shuffle=cfg.shuffle,
            drop_last=True,
            generator=gen,
            **kwargs,
        )
    # Fork the workers now, before JAX starts its backend threads in this process.
    return _to_jax(loader, iter(loader))


def _to_jax(loader: tud.DataLoader, it: Any) -> Iterator[dict[str, Any]]:
    import jax

    while True:
        for batch in it:
            yield {k: jax.device_put(v.numpy()) for k, v in batch.items()}
        it = iter(loader)


def w1(data: Bundle, cfg: CifarConfig) -> Iterator[dict[str, Any]]:
    """W1 with the PyTorch DataLoader."""
    return _loader(_MapDataset(data, cfg, "w1"), cfg, batched=False)


def w2(data: Bundle, cfg: JpegConfig) -> Iterator[dict[str, Any]]:
    """W2 with the PyTorch DataLoader (PIL decode in the workers)."""
    return _loader(_MapDataset(data, cfg, "w2"), cfg, batched=False)


def w2folder(data: Bundle, cfg: JpegFolderConfig) -> Iterator[dict[str, Any]]:
    """W2-folder with the PyTorch DataLoader (file read + PIL decode in the workers)."""
    return _loader(_MapDataset(data, cfg, "w2folder"), cfg, batched=False)


def w3(data: Bundle, cfg: TokensConfig) -> Iterator[dict[str, Any]]:
    """W3 with the PyTorch DataLoader (first-fit packing in Python in the workers)."""
    return _loader(_PackedTokens(data, cfg), cfg, batched=True)
