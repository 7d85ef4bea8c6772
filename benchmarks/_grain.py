"""Grain peer: ``grain.MapDataset`` pipelines, as the Grain documentation builds them.

``cfg.workers == 0``: the pipeline runs in this process (Grain's ``ReadOptions`` threads).
``cfg.workers > 0``: ``mp_prefetch`` with that many worker processes. Batches are moved to
the default device with ``grain.experimental.device_put`` (a CPU-side and a device-side
prefetch buffer), Grain's own recommendation for JAX.

The per-record math is :mod:`benchmarks._augment` (NumPy / PIL), run through
``random_map`` so each record gets a generator seeded from the pipeline seed and its index.
All callables are module-level classes so they pickle into Grain's spawned workers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grain
import jax
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
    JpegRecords,
    jpeg_records,
    sequence,
)

# Threads reading/transforming records in each process. Grain recommends 0 for data held
# in memory (GIL contention); JPEG decoding (and file reading) releases the GIL, so W2 and
# W2-folder use threads.
_READ_THREADS = {"w1": 0, "w2": 2, "w2folder": 2, "w3": 0, "w4": 0}


class _Records:
    """Random-access source over a W1 or W3 bundle, yielding records lazily."""

    def __init__(self, data: Bundle, kind: str) -> None:
        self.data = data
        self.kind = kind

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> Any:
        index = int(index)
        if self.kind == "w1":
            return {"image": self.data["images"][index], "label": self.data["labels"][index]}
        return {"tokens": sequence(self.data, index)}


class _JpegSource:
    """Random-access source of ``{"jpeg", "label"}`` records: W2 bytes or W2-folder files."""

    def __init__(self, jpegs: JpegRecords) -> None:
        self.jpegs = jpegs

    def __len__(self) -> int:
        return len(self.jpegs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = int(index)
        return {"jpeg": self.jpegs(index), "label": self.jpegs.labels[index]}


class _CifarAugment:
    def __init__(self, cfg: CifarConfig) -> None:
        self.cfg = cfg

    def __call__(self, rec: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        return {
            "image": _augment.cifar_random_record(rec["image"], rng, self.cfg),
            "label": rec["label"],
        }


class _JpegAugment:
    def __init__(self, cfg: JpegConfig) -> None:
        self.cfg = cfg

    def __call__(self, rec: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        return {
            "image": _augment.jpeg_random_record(rec["jpeg"], rng, self.cfg),
            "label": rec["label"],
        }


def _rename_packed(rec: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {
        "tokens": rec["tokens"],
        "segment_ids": rec["tokens_segment_ids"],
        "positions": rec["tokens_positions"],
    }


def _finish(ds: Any, workers: int) -> Iterator[dict[str, Any]]:
    """Adds worker processes (if any) and device transfer, returns the iterator."""
    if workers > 0:
        from absl import flags

        if not flags.FLAGS.is_parsed():  # Grain's multiprocessing reads absl flags
            flags.FLAGS.mark_as_parsed()
        ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))
    ds = grain.experimental.device_put(ds, jax.devices()[0])
    return iter(ds)


def _map_source(source: Any, cfg: Any) -> Any:
    ds = grain.MapDataset.source(source)
    if cfg.shuffle:
        ds = ds.shuffle(seed=cfg.seed)
    return ds.repeat()


def w1(data: Bundle, cfg: CifarConfig) -> Iterator[dict[str, Any]]:
    """W1 with Grain: shuffle, repeat, per-record ``random_map``, batch."""
    return cifar(data, cfg, grain.ReadOptions(num_threads=_READ_THREADS["w1"]))


def cifar(data: Bundle, cfg: CifarConfig, options: Any) -> Iterator[dict[str, Any]]:
    """W1's pipeline, reading with ``options`` (``grain.ReadOptions``)."""
    ds = _map_source(_Records(data, "w1"), cfg).random_map(_CifarAugment(cfg), seed=cfg.seed)
    ds = ds.to_iter_dataset(options)
    return _finish(ds.batch(cfg.batch_size, drop_remainder=True), cfg.workers)


def jpeg(data: Bundle, cfg: JpegConfig, options: Any) -> Iterator[dict[str, Any]]:
    """W2's pipeline over the bundle's JPEG records (in-memory bytes or files)."""
    ds = _map_source(_JpegSource(jpeg_records(data, cfg)), cfg)
    ds = ds.random_map(_JpegAugment(cfg), seed=cfg.seed)
    ds = ds.to_iter_dataset(options)
    return _finish(ds.batch(cfg.batch_size, drop_remainder=True), cfg.workers)


def _jpeg(data: Bundle, cfg: JpegConfig, kind: str) -> Iterator[dict[str, Any]]:
    return jpeg(data, cfg, grain.ReadOptions(num_threads=_READ_THREADS[kind]))


def w2(data: Bundle, cfg: JpegConfig) -> Iterator[dict[str, Any]]:
    """W2 with Grain: PIL decode + random-resized-crop + flip + normalise per record."""
    return _jpeg(data, cfg, "w2")


def w2folder(data: Bundle, cfg: JpegFolderConfig) -> Iterator[dict[str, Any]]:
    """W2-folder with Grain: as W2, the source opening and reading each record's file."""
    return _jpeg(data, cfg, "w2folder")


def w3(data: Bundle, cfg: TokensConfig) -> Iterator[dict[str, Any]]:
    """W3 with Grain: ``grain.experimental.FirstFitPackIterDataset``, then batch."""
    return first_fit(data, cfg, grain.ReadOptions(num_threads=_READ_THREADS["w3"]))


def first_fit(data: Bundle, cfg: TokensConfig, options: Any) -> Iterator[dict[str, Any]]:
    """W3's first-fit pipeline, reading with ``options`` (``grain.ReadOptions``)."""
    return _pack_first_fit(_map_source(_Records(data, "w3"), cfg), cfg, options)


def _pack_first_fit(ds: Any, cfg: TokensConfig | TextConfig, options: Any) -> Any:
    """Records of ``{"tokens"}`` packed first fit into ``batch_size`` bins, batched."""
    ds = grain.experimental.FirstFitPackIterDataset(
        ds.to_iter_dataset(options),
        length_struct={"tokens": cfg.row_len},
        num_packing_bins=cfg.batch_size,
        seed=cfg.seed,
        shuffle_bins=False,
    )
    ds = ds.map(_rename_packed).batch(cfg.batch_size, drop_remainder=True)
    return _finish(ds, cfg.workers)


def restore(build: Any, data: Bundle, cfg: TokensConfig, after: int = 100) -> float:
    """Seconds to resume a Grain pipeline mid-epoch, from its state after ``after`` batches.

    Timed: ``set_state`` on a freshly built iterator and its first batch ready on the device.
    """
    import time

    it = build(data, cfg)
    for _ in range(after):
        next(it)
    state = it.get_state()
    fresh = build(data, cfg)
    start = time.perf_counter()
    fresh.set_state(state)
    jax.block_until_ready(next(fresh))
    return time.perf_counter() - start


def restore_w3(data: Bundle, cfg: TokensConfig) -> float:
    """Seconds to resume Grain's first-fit W3 mid-epoch."""
    return restore(w3, data, cfg)


class _Lines:
    """Random-access source of W4's JSONL lines (read on first use: it pickles as a path)."""

    def __init__(self, data: Bundle) -> None:
        self.path = data.path / TEXT_FILE
        self._lines: list[str] | None = None

    def _all(self) -> list[str]:
        if self._lines is None:
            with open(self.path) as f:
                self._lines = f.read().splitlines()
        return self._lines

    def __len__(self) -> int:
        return len(self._all())

    def __getitem__(self, index: int) -> str:
        return self._all()[int(index)]

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "_lines": None}


class _Tokenize:
    """Parses a JSONL line and encodes its text with W4's tokenizer, cut to a row."""

    def __init__(self, data: Bundle, row_len: int) -> None:
        self.path = str(data.path / TOKENIZER_FILE)
        self.row_len = row_len
        self._tokenizer: Any = None

    def __call__(self, line: str) -> dict[str, np.ndarray]:
        import json

        if self._tokenizer is None:
            from tokenizers import Tokenizer

            self._tokenizer = Tokenizer.from_file(self.path)
        ids = self._tokenizer.encode(json.loads(line)["text"]).ids[: self.row_len]
        return {"tokens": np.asarray(ids, np.int32)}

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "row_len": self.row_len, "_tokenizer": None}


def w4(data: Bundle, cfg: TextConfig) -> Iterator[dict[str, Any]]:
    """W4 with Grain: JSONL lines, ``map`` to tokens per record, first-fit packing, batch."""
    return text_first_fit(data, cfg, grain.ReadOptions(num_threads=_READ_THREADS["w4"]))


def text_first_fit(data: Bundle, cfg: TextConfig, options: Any) -> Iterator[dict[str, Any]]:
    """W4's pipeline, reading with ``options`` (``grain.ReadOptions``)."""
    ds = _map_source(_Lines(data), cfg).map(_Tokenize(data, cfg.row_len))
    return _pack_first_fit(ds, cfg, options)
