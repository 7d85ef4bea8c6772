"""``python -m benchmarks``: feedax beside a hand-written ``jax.jit`` reference and peers.

Workloads (synthetic data generated on first use, no download):

- ``w1`` cifar: 50,000 uint8 32x32x3 images in memory; shuffle, random crop from 4-pixel
  zero padding, random horizontal flip, float32 normalise; batch 256.
- ``w2`` jpeg: 5,000 JPEG-encoded 256x256 images as bytes; decode, random-resized-crop to
  224, flip, normalise; batch 64.
- ``w2folder`` jpeg files: the same 5,000 JPEGs as files in an image folder
  (``class_XX/NNNNN.jpg``, 10 classes, labels from the folder names), each read from disk
  per record; then W2's math; batch 64.
- ``w3`` tokens: 200,000 token sequences of 16..1024 tokens; first-fit packing into rows of
  2048 with segment ids and positions; batch 16 rows.

Every (workload, variant) run is a fresh process; rounds are interleaved. The result is a
table of median records/s (min, max) with the ratio to the reference, ``bench.json`` and
``bench.png``.

Example::

    import benchmarks
    report = benchmarks.run(("w1",), rounds=3)
    # or: python -m benchmarks -w w1 -r 3
"""

from benchmarks._cli import build_parser, main
from benchmarks._config import (
    WORKLOADS,
    CifarConfig,
    JpegConfig,
    JpegFolderConfig,
    TokensConfig,
)
from benchmarks._harness import run
from benchmarks._variants import VARIANTS

__all__ = [
    "VARIANTS",
    "WORKLOADS",
    "CifarConfig",
    "JpegConfig",
    "JpegFolderConfig",
    "TokensConfig",
    "build_parser",
    "main",
    "run",
]
