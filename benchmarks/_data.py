"""Synthetic benchmark data: generation, on-disk cache and a picklable lazy handle.

Data are generated once by the parent process into a cache directory (one folder of
``.npy`` files per workload and size) and loaded by each worker process. A :class:`Bundle`
pickles as its path only, so peers that ship the dataset to spawned worker processes
(Grain) do not copy hundreds of megabytes through a pipe.

The W2-folder workload's folder is an image folder instead: ``class_XX/NNNNN.jpg`` files
(the W2 JPEGs, byte for byte) beside a ``labels.npy`` that records the labels its folder
names give. W2 and W2-folder variants reach their JPEGs through one interface,
:class:`JpegRecords` (:func:`jpeg_records`): bytes held in memory or files read per call.
"""

from __future__ import annotations

import dataclasses
import io
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from benchmarks._config import (
    CifarConfig,
    JpegConfig,
    JpegFolderConfig,
    TextConfig,
    TokensConfig,
    WorkloadConfig,
)

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
                "generate it with benchmarks._data.ensure_data"
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


class JpegRecords(Protocol):
    """The JPEG records of a W2 or W2-folder bundle: index -> encoded bytes, and labels."""

    @property
    def labels(self) -> np.ndarray:
        """int32 label of each record."""
        ...

    def __len__(self) -> int: ...

    def __call__(self, index: int) -> bytes:
        """Returns the encoded JPEG of record ``index``."""
        ...


class JpegBytes:
    """W2: the JPEG bytes held in a bundle's memory (a slice per record).

    Args:
        data: A W2 bundle.
    """

    def __init__(self, data: Bundle) -> None:
        self.data = data

    @property
    def labels(self) -> np.ndarray:
        """The bundle's int32 labels."""
        return self.data["labels"]

    def __len__(self) -> int:
        return len(self.data)

    def __call__(self, index: int) -> bytes:
        """Returns the bytes of record ``index`` (a copy out of the bundle's buffer)."""
        return jpeg_bytes(self.data, index)


class JpegFiles:
    """W2-folder: JPEG files listed from an image folder, each opened and read per call.

    The folder is listed once, as ``torchvision.datasets.ImageFolder`` and
    :class:`feedax.ImageFolderSource` do: classes are the sorted sub-folder names (label
    ``k`` is the ``k``-th), records the sorted ``.jpg`` files of each class in turn. Pickles
    as the list of paths and labels (no open file).

    Args:
        root: The image folder (a W2-folder bundle's path).
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.paths, self._labels = list_image_folder(root)

    @property
    def labels(self) -> np.ndarray:
        """int32 label of each file: the index of its class folder."""
        return self._labels

    def __len__(self) -> int:
        return len(self.paths)

    def __call__(self, index: int) -> bytes:
        """Opens and reads the file of record ``index``."""
        with open(self.paths[index], "rb") as f:
            return f.read()


def list_image_folder(root: str | os.PathLike[str]) -> tuple[list[str], np.ndarray]:
    """Lists ``root/<class>/*.jpg``: classes sorted by name, files sorted in each class.

    Returns:
        ``(paths, labels)``: the file paths and the int32 class index of each.

    Raises:
        FileNotFoundError: If ``root`` holds no ``.jpg`` file in a class folder.
    """
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir())
    paths: list[str] = []
    labels: list[int] = []
    for label, cls in enumerate(classes):
        folder = os.path.join(root, cls)
        files = sorted(f for f in os.listdir(folder) if f.lower().endswith(".jpg"))
        paths += [os.path.join(folder, f) for f in files]
        labels += [label] * len(files)
    if not paths:
        raise FileNotFoundError(f"no .jpg files under {os.fspath(root)}/<class>/")
    return paths, np.asarray(labels, np.int32)


def jpeg_records(data: Bundle, cfg: JpegConfig) -> JpegRecords:
    """Returns the JPEG records of ``data``: files for W2-folder, in-memory bytes for W2."""
    return JpegFiles(data.path) if isinstance(cfg, JpegFolderConfig) else JpegBytes(data)


def sequence(data: Bundle, index: int) -> np.ndarray:
    """Returns the int32 token sequence of record ``index`` of a W3 bundle (a view)."""
    off = data["offsets"]
    return data["tokens"][off[index] : off[index + 1]]


def data_key(cfg: WorkloadConfig) -> str:
    """Returns the cache folder name of the data ``cfg`` needs."""
    if isinstance(cfg, CifarConfig):
        return f"w1-v{_FORMAT_VERSION}-n{cfg.n}-s{cfg.image_size}-d{cfg.data_seed}"
    if isinstance(cfg, JpegFolderConfig):
        return (
            f"w2folder-v{_FORMAT_VERSION}-n{cfg.n}-s{cfg.image_size}-q{cfg.quality}"
            f"-d{cfg.data_seed}-c{cfg.classes}"
        )
    if isinstance(cfg, JpegConfig):
        return f"w2-v{_FORMAT_VERSION}-n{cfg.n}-s{cfg.image_size}-q{cfg.quality}-d{cfg.data_seed}"
    if isinstance(cfg, TokensConfig):
        return (
            f"w3-v{_FORMAT_VERSION}-n{cfg.n}-l{cfg.min_len}_{cfg.max_len}-v{cfg.vocab}"
            f"-d{cfg.data_seed}"
        )
    if isinstance(cfg, TextConfig):
        return (
            f"w4-v{_FORMAT_VERSION}-n{cfg.n}-w{cfg.min_words}_{cfg.max_words}-{cfg.words}"
            f"-v{cfg.vocab}-d{cfg.data_seed}"
        )
    raise TypeError(f"not a workload config: {type(cfg).__name__}")


def ensure_data(cfg: WorkloadConfig, cache_dir: str | os.PathLike[str]) -> Bundle:
    """Generates the data for ``cfg`` under ``cache_dir`` unless already there.

    Writing goes to a temporary folder renamed at the end, so an interrupted run never
    leaves a half-written cache entry. The W2-folder image folder is written from the W2
    data of the same size and seeds (generated first, or reused from the cache).

    Returns:
        A handle on the data.
    """
    root = Path(cache_dir)
    target = root / data_key(cfg)
    if (target / "DONE").exists():
        return Bundle(target)
    root.mkdir(parents=True, exist_ok=True)
    w2 = ensure_data(_w2_config(cfg), root) if isinstance(cfg, JpegFolderConfig) else None
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    try:
        if isinstance(cfg, JpegFolderConfig) and w2 is not None:
            _write_image_folder(w2, cfg, tmp)
        elif isinstance(cfg, TextConfig):
            _write_text(cfg, tmp)
        else:
            for name, arr in generate(cfg).items():
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
    """Returns the synthetic arrays of the workload ``cfg`` (deterministic in its seed).

    Raises:
        TypeError: For a W2-folder config (its data are files: see :func:`ensure_data`).
    """
    if isinstance(cfg, JpegFolderConfig):
        raise TypeError("W2-folder data are files written by ensure_data, not arrays")
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


def _w2_config(cfg: JpegFolderConfig) -> JpegConfig:
    """The W2 config whose JPEGs the W2-folder ``cfg`` writes as files."""
    names = [f.name for f in dataclasses.fields(JpegConfig)]
    return JpegConfig(**{name: getattr(cfg, name) for name in names})


def _write_image_folder(w2: Bundle, cfg: JpegFolderConfig, out: Path) -> None:
    """Writes the W2 JPEGs as ``out/class_XX/NNNNN.jpg`` and their labels as ``labels.npy``.

    Record ``i`` goes to class ``i * classes // n``: consecutive records share a class, so
    the sorted listing (classes, then files) is the index order.

    Raises:
        ValueError: If ``classes`` is not in ``1..n``.
    """
    if not 1 <= cfg.classes <= cfg.n:
        raise ValueError(f"classes={cfg.classes} must be in 1..n={cfg.n}")
    labels = (np.arange(cfg.n, dtype=np.int64) * cfg.classes // cfg.n).astype(np.int32)
    cls_w, rec_w = max(2, len(str(cfg.classes - 1))), max(5, len(str(cfg.n - 1)))
    for k in range(cfg.classes):
        (out / f"class_{k:0{cls_w}d}").mkdir()
    for i, label in enumerate(labels):
        path = out / f"class_{label:0{cls_w}d}" / f"{i:0{rec_w}d}.jpg"
        path.write_bytes(jpeg_bytes(w2, i))
    np.save(out / "labels.npy", labels)


def _make_tokens(cfg: TokensConfig) -> dict[str, np.ndarray]:
    if cfg.max_len > cfg.row_len:
        raise ValueError(f"max_len={cfg.max_len} exceeds row_len={cfg.row_len}")
    rng = np.random.default_rng(cfg.data_seed)
    lengths = rng.integers(cfg.min_len, cfg.max_len + 1, size=cfg.n, dtype=np.int64)
    offsets = np.zeros(cfg.n + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    tokens = rng.integers(1, cfg.vocab, size=int(offsets[-1]), dtype=np.int32)
    return {"tokens": tokens, "offsets": offsets}


TEXT_FILE = "text.jsonl"
TOKENIZER_FILE = "tokenizer.json"


def _write_text(cfg: TextConfig, out: Path) -> None:
    """W4's JSONL documents and the BPE tokenizer trained on them (see ``TextConfig``)."""
    import json

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    rng = np.random.default_rng(cfg.data_seed)
    letters = np.array(list("etaoinshrdlcumwfgypbvkjxqz"))
    sizes = rng.integers(2, 10, cfg.words)
    words = np.array(["".join(rng.choice(letters, k)) for k in sizes])
    ranks = np.arange(1, cfg.words + 1, dtype=np.float64)
    p = (1 / ranks) / (1 / ranks).sum()  # Zipf's law, as in natural text
    docs = []
    for count in rng.integers(cfg.min_words, cfg.max_words + 1, cfg.n):
        docs.append(" ".join(words[rng.choice(cfg.words, count, p=p)]))
    with open(out / TEXT_FILE, "w") as f:
        f.writelines(json.dumps({"text": d}) + "\n" for d in docs)
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=cfg.vocab, show_progress=False)
    tokenizer.train_from_iterator(docs[:2000], trainer)
    tokenizer.save(str(out / TOKENIZER_FILE))
    np.save(out / "offsets.npy", np.arange(cfg.n + 1))  # records: one per document
