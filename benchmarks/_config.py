"""Workload definitions for ``python -m benchmarks``.

A workload is a frozen dataclass holding everything that defines the work: dataset size,
augmentation parameters, batch size, shuffle seed. Every variant (feedax, the hand-written
reference and each peer) receives the same config, so they do the same work. The only field
that differs between variants is ``workers`` (host worker processes), set by the harness.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeAlias

CIFAR_MEAN: tuple[float, float, float] = (125.307, 122.961, 113.8575)
CIFAR_STD: tuple[float, float, float] = (62.9932, 62.0887, 66.7048)
IMAGENET_MEAN: tuple[float, float, float] = (123.675, 116.28, 103.53)
IMAGENET_STD: tuple[float, float, float] = (58.395, 57.12, 57.375)


@dataclasses.dataclass(frozen=True)
class CifarConfig:
    """W1: CIFAR-like images held in memory.

    Per record: random crop of ``crop`` pixels from the image zero-padded by ``padding``,
    horizontal flip with probability ``flip_p``, then float32 ``(x - mean) / std`` with
    ``mean``/``std`` in 0..255 units. Batches of ``batch_size`` with the remainder dropped.

    Attributes:
        n: Number of records.
        image_size: Side of the square uint8 images.
        crop: Output side (equal to ``image_size`` for the standard workload).
        padding: Zero padding added on each side before cropping.
        flip_p: Probability of a horizontal flip.
        mean: Per-channel mean, 0..255 units.
        std: Per-channel standard deviation, 0..255 units.
        batch_size: Records per batch.
        shuffle: Whether the visiting order is shuffled.
        seed: Seed of the order and of the augmentation streams.
        workers: Host worker processes (variant-specific; 0 = in-process).
        data_seed: Seed of the synthetic data.
    """

    n: int = 50_000
    image_size: int = 32
    crop: int = 32
    padding: int = 4
    flip_p: float = 0.5
    mean: tuple[float, ...] = CIFAR_MEAN
    std: tuple[float, ...] = CIFAR_STD
    batch_size: int = 256
    shuffle: bool = True
    seed: int = 0
    workers: int = 0
    data_seed: int = 1234


@dataclasses.dataclass(frozen=True)
class JpegConfig:
    """W2: JPEG-encoded images held as bytes.

    Per record: decode, random-resized-crop to ``out_size`` (area fraction uniform in
    ``scale``, log aspect ratio uniform in ``ratio``, bilinear with antialiasing), horizontal
    flip with probability ``flip_p``, float32 ``(x - mean) / std``.

    Attributes:
        n: Number of records.
        image_size: Side of the encoded square images.
        out_size: Output side after the random-resized crop.
        scale: Range of the crop area as a fraction of the image area.
        ratio: Range of the crop aspect ratio (width / height).
        flip_p: Probability of a horizontal flip.
        mean: Per-channel mean, 0..255 units.
        std: Per-channel standard deviation, 0..255 units.
        quality: JPEG quality used when generating the data.
        batch_size: Records per batch.
        shuffle: Whether the visiting order is shuffled.
        seed: Seed of the order and of the augmentation streams.
        workers: Host worker processes (variant-specific; 0 = in-process).
        data_seed: Seed of the synthetic data.
    """

    n: int = 5_000
    image_size: int = 256
    out_size: int = 224
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    quality: int = 90
    batch_size: int = 64
    shuffle: bool = True
    seed: int = 0
    workers: int = 0
    data_seed: int = 1234


@dataclasses.dataclass(frozen=True)
class TokensConfig:
    """W3: variable-length token sequences packed into fixed rows.

    Sequences (lengths uniform in ``min_len..max_len``) are visited in (shuffled) order and
    packed first-fit into ``batch_size`` bins of ``row_len`` tokens; when a sequence fits in
    no bin, the bins are emitted as one batch and packing restarts with that sequence
    (Grain's ``FirstFitPackIterDataset`` semantics, bins not shuffled). Each batch holds
    ``tokens``, ``segment_ids`` (1-based, 0 = padding) and ``positions``, all int32 of shape
    ``(batch_size, row_len)``. A final partial batch is dropped.

    Attributes:
        n: Number of sequences.
        min_len: Shortest sequence.
        max_len: Longest sequence (must not exceed ``row_len``).
        row_len: Tokens per packed row.
        vocab: Token ids are drawn from ``1..vocab-1``.
        batch_size: Packed rows per batch (= packing bins).
        shuffle: Whether the visiting order is shuffled.
        seed: Seed of the order.
        workers: Host worker processes (variant-specific; 0 = in-process).
        data_seed: Seed of the synthetic data.
    """

    n: int = 200_000
    min_len: int = 16
    max_len: int = 1024
    row_len: int = 2048
    vocab: int = 32_000
    batch_size: int = 16
    shuffle: bool = True
    seed: int = 0
    workers: int = 0
    data_seed: int = 1234


@dataclasses.dataclass(frozen=True)
class TextConfig:
    """W4: raw text (JSONL) tokenized and packed into fixed rows, end to end.

    ``n`` documents of ``min_words..max_words`` synthetic words (Zipf-distributed over a
    vocabulary of ``words`` made-up words) in one JSONL file (``{"text": ...}`` per line),
    and a byte-level BPE tokenizer of ``vocab`` ids trained on them (Hugging Face
    ``tokenizers``), the same file for every variant. Each variant reads the lines, tokenizes
    every document and packs the tokens into ``batch_size`` rows of ``row_len`` (``tokens``,
    ``segment_ids``, ``positions``; documents longer than a row are cut to it). Timed from
    building the pipeline to its last batch, so tokenizing up front counts like tokenizing
    on the fly.

    Attributes:
        n: Documents.
        min_words: Fewest words of a document.
        max_words: Most words of a document.
        words: Distinct words of the synthetic language.
        vocab: BPE vocabulary size.
        row_len: Tokens per packed row.
        batch_size: Packed rows per batch.
        shuffle: Whether the visiting order is shuffled.
        seed: Seed of the order.
        workers: Host worker processes (variant-specific; 0 = in-process).
        data_seed: Seed of the synthetic text.
    """

    n: int = 20_000
    min_words: int = 20
    max_words: int = 600
    words: int = 5_000
    vocab: int = 4_096
    row_len: int = 1_024
    batch_size: int = 16
    shuffle: bool = True
    seed: int = 0
    workers: int = 0
    data_seed: int = 1234


@dataclasses.dataclass(frozen=True)
class JpegFolderConfig(JpegConfig):
    """W2-folder: the W2 JPEGs as files in an image folder, read from disk per record.

    The same images (byte for byte) and the same per-record math as :class:`JpegConfig`,
    but every variant opens and reads each record's file. The files are laid out as
    ``root/class_XX/NNNNN.jpg``: record ``i`` (of ``n``) is in class ``i * classes // n``,
    so the sorted folder listing visits the records in index order, and the label of a
    record is the index of its class folder in the sorted folder names.

    Attributes:
        classes: Number of class folders.
    """

    classes: int = 10


WorkloadConfig: TypeAlias = CifarConfig | JpegConfig | JpegFolderConfig | TokensConfig | TextConfig


@dataclasses.dataclass(frozen=True)
class Workload:
    """Static description of a workload.

    Attributes:
        name: Short id used on the command line (``w1``...).
        title: Human-readable title.
        unit: What one "record" of the throughput is.
        config_cls: The config dataclass.
        default_batches: Timed batches per run (about one epoch at the standard size).
        default_warmup: Untimed batches after the first one.
        end_to_end: The rate counts every batch from building the pipeline on (one-off
            work such as tokenizing a corpus up front is part of the job).
    """

    name: str
    title: str
    unit: str
    config_cls: type[WorkloadConfig]
    default_batches: int
    default_warmup: int
    end_to_end: bool = False


WORKLOADS: dict[str, Workload] = {
    "w1": Workload("w1", "W1 cifar: crop+flip+normalise, batch 256", "images", CifarConfig, 190, 5),
    "w2": Workload(
        "w2",
        "W2 jpeg: decode+random-resized-crop 224+flip+normalise, batch 64",
        "images",
        JpegConfig,
        75,
        3,
    ),
    "w2folder": Workload(
        "w2folder",
        "W2-folder jpeg files: read+decode+random-resized-crop 224+flip+normalise, batch 64",
        "images",
        JpegFolderConfig,
        75,
        3,
    ),
    "w3": Workload(
        "w3",
        "W3 tokens: packing 200,000 sequences into 16 x 2048 rows",
        "packed rows",
        TokensConfig,
        400,
        5,
    ),
    "w4": Workload(
        "w4",
        "W4 text: JSONL -> BPE tokens -> packed 16 x 1024 rows, end to end",
        "packed rows",
        TextConfig,
        480,  # within the first epoch of every variant (feedax's, the fullest, is ~509)
        0,
        end_to_end=True,
    ),
}


def get_workload(name: str) -> Workload:
    """Returns the workload called ``name``.

    Raises:
        ValueError: If ``name`` is not a known workload.
    """
    try:
        return WORKLOADS[name]
    except KeyError:
        raise ValueError(f"unknown workload {name!r}; choose from {', '.join(WORKLOADS)}") from None


def config_to_dict(cfg: WorkloadConfig) -> dict[str, Any]:
    """Returns a JSON-serialisable dict of ``cfg``."""
    return dataclasses.asdict(cfg)


def config_from_dict(workload: str, values: dict[str, Any]) -> WorkloadConfig:
    """Rebuilds the config of ``workload`` from :func:`config_to_dict` output.

    Raises:
        ValueError: If ``values`` holds a field the config does not have.
    """
    cls = get_workload(workload).config_cls
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(fields)
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {sorted(unknown)}")
    kwargs: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return cls(**kwargs)
