"""Grain's other settings: best fit with 256 bins (W3), and every pipeline at its defaults.

``grain-bestfit``: ``grain.experimental.BestFitPackIterDataset`` with 256 packing bins
(the fill budget feedax's ``Pack`` is compared at) and ``num_threads=0`` (Grain's best
setting for in-memory data here). ``grain-defaults``: the pipelines of
:mod:`benchmarks._grain` (W1, W2, W2-folder, and W3 and W4's first fit) with Grain's
default ``ReadOptions`` (16 read threads). Other workloads show as "n/a".
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grain

from benchmarks._config import CifarConfig, JpegConfig, JpegFolderConfig, TextConfig, TokensConfig
from benchmarks._data import Bundle
from benchmarks._grain import (
    _finish,
    _map_source,
    _Records,
    _rename_packed,
    cifar,
    first_fit,
    jpeg,
    restore,
    text_first_fit,
)

BEST_FIT_BINS = 256


def best_fit(data: Bundle, cfg: TokensConfig) -> Iterator[dict[str, Any]]:
    """W3 with Grain's best-fit packer over 256 bins, then batch."""
    ds = _map_source(_Records(data, "w3"), cfg)
    ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=0))
    ds = grain.experimental.BestFitPackIterDataset(
        ds,
        length_struct={"tokens": cfg.row_len},
        num_packing_bins=BEST_FIT_BINS,
        seed=cfg.seed,
        shuffle_bins=False,
    )
    ds = ds.map(_rename_packed).batch(cfg.batch_size, drop_remainder=True)
    return _finish(ds, cfg.workers)


def cifar_defaults(data: Bundle, cfg: CifarConfig) -> Iterator[dict[str, Any]]:
    """W1 with Grain's default read options."""
    return cifar(data, cfg, grain.ReadOptions())


def jpeg_defaults(data: Bundle, cfg: JpegConfig) -> Iterator[dict[str, Any]]:
    """W2 with Grain's default read options."""
    return jpeg(data, cfg, grain.ReadOptions())


def jpeg_folder_defaults(data: Bundle, cfg: JpegFolderConfig) -> Iterator[dict[str, Any]]:
    """W2-folder with Grain's default read options."""
    return jpeg(data, cfg, grain.ReadOptions())


def defaults(data: Bundle, cfg: TokensConfig) -> Iterator[dict[str, Any]]:
    """W3 with Grain's first-fit packer and its default read options."""
    return first_fit(data, cfg, grain.ReadOptions())


def text_defaults(data: Bundle, cfg: TextConfig) -> Iterator[dict[str, Any]]:
    """W4 with Grain's first-fit packer and its default read options."""
    return text_first_fit(data, cfg, grain.ReadOptions())


def restore_best_fit(data: Bundle, cfg: TokensConfig) -> float:
    """Seconds to resume Grain's best-fit W3 mid-epoch (see ``_grain.restore``)."""
    return restore(best_fit, data, cfg)
