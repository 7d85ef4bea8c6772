"""Synthetic benchmark data: generation, on-disk cache and a picklable lazy handle.

Data are generated once by the parent process into a cache directory (one folder of
``.npy`` files per workload and size) and loaded by each worker process. A :class:`Bundle`
pickles as its path only, so peers that ship the dataset to spawned worker processes
(Grain) do not copy hundreds of megabytes through a pipe.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from feedax.bench._config import CifarConfig, JpegConfig, TokensConfig, WorkloadConfig

_FORMAT_VERSION = 1


class Bundle:
    """A folder of named ``.npy`` arrays, loaded lazily into memory.

    Args:
        path: Folder written by :func:`ensure_data`.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._arrays: dict[str, np.ndarray] = {}
        self._len: int | None = None
        if not (self.path / "DONE").exists():
            raise FileNotFoundError(
                f"benchmark data folder {self.path} is missing or incomplete; "
                "generate it with feedax.bench._data.ensure_data"
            )

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._arrays:
            file = self.path / f"{name}.npy"
            if not file.exists():
                raise KeyError(f"{self.path} has no array {name!r}")
            self._arrays[name] = np.load(file)
        return self._arrays[name]

    def load_all(self) -> None:
        """Loads every array of the folder now (to keep disk reads out of timings)."""
        for file in sorted(self.path.glob("*.npy")):
            self[file.stem]

    def __len__(self) -> int:
        if self._len is None:
            if (self.path / "labels.npy").exists():
                self._len = len(self["labels"])
            else:
                self._len = len(self["offsets"]) - 1
        return self._len

    def __getstate__(self) -> dict[str, Any]:
        return {"path": str(self.path)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path = Path(state["path"])
        self._arrays = {}
        self._len = None

    def __repr__(self) -> str:
        return f"Bundle({str(self.path)!r})"


def jpeg_bytes(data: Bundle, index: int) -> bytes:
    """Returns the encoded JPEG of record ``index`` of a W2 bundle."""
    off = data["offsets"]
    return data["jpegs"][off[index] : off[index + 1]].tobytes()


def sequence(data: Bundle, index: int) -> np.ndarray:
    """Returns the int32 token sequence of record ``index`` of a W3 bundle (a view)."""
    off = data["offsets"]
    return data["tokens"][off[index] : off[index + 1]]


def data_key(cfg: WorkloadConfig) -> str:
    """Returns the cache folder name of the data ``cfg`` needs."""
    if isinstance(cfg, CifarConfig):
        return f"w1-v{_FORMAT_VERSION}-n{cfg.n}-s{cfg.image_size}-d{cfg.data_seed}"
    if isinstance(cfg, JpegConfig):
        return f"w2-v{_FORMAT_VERSION}-n{cfg.n}-s{cfg.image_size}-q{cfg.quality}-d{cfg.data_seed}"
    if isinstance(cfg, TokensConfig):
        return (
            f"w3-v{_FORMAT_VERSION}-n{cfg.n}-l{cfg.min_len}_{cfg.max_len}-v{cfg.vocab}"
            f"-d{cfg.data_seed}"
        )
    raise TypeError(f"not a workload config: {type(cfg).__name__}")


def ensure_data(cfg: WorkloadConfig, cache_dir: str | os.PathLike[str]) -> Bundle:
    """Generates the data for ``cfg`` under ``cache_dir`` unless already there.

    Writing goes to a temporary folder renamed at the end, so an interrupted run never
    leaves a half-written cache entry.

    Returns:
        A handle on the data.
    """
    root = Path(cache_dir)
    target = root / data_key(cfg)
    if (target / "DONE").exists():
        return Bundle(target)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    try:
        arrays = generate(cfg)
        for name, arr in arrays.items():
            np.save(tmp / f"{name}.npy", arr)
        (tmp / "DONE").write_text("ok\n")
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return Bundle(target)


def generate(cfg: WorkloadConfig) -> dict[str, np.ndarray]:
    """Returns the synthetic arrays of the workload ``cfg`` (deterministic in its seed)."""
    if isinstance(cfg, CifarConfig):
        return _make_cifar(cfg)
    if isinstance(cfg, JpegConfig):
        return _make_jpeg(cfg)
    if isinstance(cfg, TokensConfig):
        return _make_tokens(cfg)
    raise TypeError(f"not a workload config: {type(cfg).__name__}")


def _make_cifar(cfg: CifarConfig) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(cfg.data_seed)
    s = cfg.image_size
    images = rng.integers(0, 256, size=(cfg.n, s, s, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=(cfg.n,), dtype=np.int32)
    return {"images": images, "labels": labels}


def smooth_image(rng: np.random.Generator, size: int) -> np.ndarray:
    """Returns a photo-like uint8 image: smooth noise at several scales plus grain."""
    from PIL import Image

    acc = np.zeros((size, size, 3), np.float32)
    for cells, amp in ((4, 0.55), (16, 0.3), (64, 0.15)):
        small = rng.random((cells, cells, 3), dtype=np.float32)
        chans = [
            np.asarray(
                Image.fromarray(small[..., c], mode="F").resize(
                    (size, size), Image.Resampling.BICUBIC
                )
            )
            for c in range(3)
        ]
        acc += amp * np.stack(chans, axis=-1)
    acc = acc * 255.0 + rng.normal(0.0, 3.0, size=acc.shape).astype(np.float32)
    return np.clip(acc, 0, 255).astype(np.uint8)


def _encode_one(args: tuple[int, int, int, int]) -> bytes:
    from PIL import Image

    seed, index, size, quality = args
    rng = np.random.default_rng([seed, index])
    buf = io.BytesIO()
    Image.fromarray(smooth_image(rng, size)).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _make_jpeg(cfg: JpegConfig) -> dict[str, np.ndarray]:
    jobs = [(cfg.data_seed, i, cfg.image_size, cfg.quality) for i in range(cfg.n)]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        encoded = list(pool.map(_encode_one, jobs, chunksize=16))
    lengths = np.fromiter((len(b) for b in encoded), dtype=np.int64, count=cfg.n)
    offsets = np.zeros(cfg.n + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    jpegs = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    labels = np.random.default_rng(cfg.data_seed).integers(0, 1000, cfg.n, dtype=np.int32)
    return {"jpegs": jpegs, "offsets": offsets, "labels": labels}


def _make_tokens(cfg: TokensConfig) -> dict[str, np.ndarray]:
    if cfg.max_len > cfg.row_len:
        raise ValueError(f"max_len={cfg.max_len} exceeds row_len={cfg.row_len}")
    rng = np.random.default_rng(cfg.data_seed)
    lengths = rng.integers(cfg.min_len, cfg.max_len + 1, size=cfg.n, dtype=np.int64)
    offsets = np.zeros(cfg.n + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    tokens = rng.integers(1, cfg.vocab, size=int(offsets[-1]), dtype=np.int32)
    return {"tokens": tokens, "offsets": offsets}
