"""The workload math, written once in NumPy (per record, for peers) and JAX (per batch).

Peers (Grain, PyTorch DataLoader) run the NumPy/PIL functions per record in their workers,
as their users do. The hand-written reference runs the JAX functions, vmapped and jitted.
Both follow the same definitions (see :mod:`benchmarks._config`), so every variant does
the same work.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from benchmarks._config import CifarConfig, JpegConfig, TokensConfig

# ---------------------------------------------------------------- W1 (cifar), NumPy


def cifar_record(image: np.ndarray, dy: int, dx: int, flip: bool, cfg: CifarConfig) -> np.ndarray:
    """Crops, flips and normalises one HWC uint8 image.

    Args:
        image: uint8 ``(H, W, C)``.
        dy: Crop row offset into the zero-padded image, in ``[0, 2 * padding]``.
        dx: Crop column offset into the zero-padded image, in ``[0, 2 * padding]``.
        flip: Whether to flip horizontally.
        cfg: The workload config.

    Returns:
        float32 ``(crop, crop, C)``.
    """
    h, w, c = image.shape
    p, s = cfg.padding, cfg.crop
    out = np.zeros((s, s, c), np.float32)
    # Window [dy - p, dy - p + s) of the unpadded image, clipped to it.
    y0, x0 = dy - p, dx - p
    sy0, sx0 = max(y0, 0), max(x0, 0)
    sy1, sx1 = min(y0 + s, h), min(x0 + s, w)
    if sy1 > sy0 and sx1 > sx0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image[sy0:sy1, sx0:sx1]
    if flip:
        out = out[:, ::-1]
    return (out - np.asarray(cfg.mean, np.float32)) / np.asarray(cfg.std, np.float32)


def cifar_random_record(
    image: np.ndarray, rng: np.random.Generator, cfg: CifarConfig
) -> np.ndarray:
    """:func:`cifar_record` with offsets and flip drawn from ``rng``."""
    dy, dx = rng.integers(0, 2 * cfg.padding + 1, size=2)
    flip = bool(rng.random() < cfg.flip_p)
    return cifar_record(image, int(dy), int(dx), flip, cfg)


# ---------------------------------------------------------------- W2 (jpeg), NumPy/PIL


def rrc_box(u: Any, height: float, width: float, cfg: JpegConfig, xp: Any = np) -> tuple:
    """Random-resized-crop box from four uniforms in [0, 1).

    Works with NumPy or ``jax.numpy`` (``xp``), scalars or arrays.

    Returns:
        ``(x0, y0, w, h)`` of the crop, in pixels (floats).
    """
    lo, hi = cfg.scale
    frac = lo + u[0] * (hi - lo)
    log_r = math.log(cfg.ratio[0]) + u[1] * (math.log(cfg.ratio[1]) - math.log(cfg.ratio[0]))
    r = xp.exp(log_r)
    area = frac * height * width
    w = xp.minimum(xp.sqrt(area * r), width)
    h = xp.minimum(xp.sqrt(area / r), height)
    return u[2] * (width - w), u[3] * (height - h), w, h


def decode_jpeg(data: bytes) -> Any:
    """Decodes JPEG bytes to an RGB ``PIL.Image``."""
    from PIL import Image

    img = Image.open(io.BytesIO(data))
    return img.convert("RGB") if img.mode != "RGB" else img


def jpeg_random_record(data: bytes, rng: np.random.Generator, cfg: JpegConfig) -> np.ndarray:
    """Decodes, random-resized-crops, flips and normalises one JPEG with PIL.

    Returns:
        float32 ``(out_size, out_size, 3)``.
    """
    from PIL import Image

    img = decode_jpeg(data)
    x0, y0, w, h = rrc_box(rng.random(4), img.height, img.width, cfg)
    s = cfg.out_size
    img = img.resize((s, s), Image.Resampling.BILINEAR, box=(x0, y0, x0 + w, y0 + h))
    if rng.random() < cfg.flip_p:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    x = np.asarray(img, np.float32)
    return (x - np.asarray(cfg.mean, np.float32)) / np.asarray(cfg.std, np.float32)


# ---------------------------------------------------------------- W3 (tokens), NumPy


class FirstFitPacker:
    """First-fit packing of sequences into ``bins`` rows of ``row_len`` tokens.

    Same semantics as Grain's ``FirstFitPackIterDataset`` with ``shuffle_bins=False``:
    a sequence goes into the first bin with room; when it fits in none, the current bins
    are emitted and packing restarts with that sequence.

    Args:
        bins: Rows per emitted batch.
        row_len: Tokens per row.
    """

    def __init__(self, bins: int, row_len: int) -> None:
        self.bins = bins
        self.row_len = row_len
        self._reset()

    def _reset(self) -> None:
        self._tokens = np.zeros((self.bins, self.row_len), np.int32)
        self._segs = np.zeros((self.bins, self.row_len), np.int32)
        self._pos = np.zeros((self.bins, self.row_len), np.int32)
        self._fill = [0] * self.bins
        self._count = [0] * self.bins

    def _try_add(self, seq: np.ndarray) -> bool:
        n = len(seq)
        for b in range(self.bins):
            start = self._fill[b]
            if start + n <= self.row_len:
                self._tokens[b, start : start + n] = seq
                self._count[b] += 1
                self._segs[b, start : start + n] = self._count[b]
                self._pos[b, start : start + n] = np.arange(n, dtype=np.int32)
                self._fill[b] = start + n
                return True
        return False

    def _emit(self) -> dict[str, np.ndarray]:
        rows = sum(1 for c in self._count if c)
        out = {
            "tokens": self._tokens[:rows],
            "segment_ids": self._segs[:rows],
            "positions": self._pos[:rows],
        }
        self._reset()
        return out

    def pack(self, sequences: Iterable[np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
        """Yields full batches (``bins`` rows); a final partial batch is dropped.

        Raises:
            ValueError: If a sequence is longer than ``row_len``.
        """
        for seq in sequences:
            if len(seq) > self.row_len:
                raise ValueError(
                    f"sequence of length {len(seq)} exceeds row_len "
                    f"{self.row_len}; truncate it first"
                )
            if not self._try_add(seq):
                batch = self._emit()
                self._try_add(seq)
                if len(batch["tokens"]) == self.bins:
                    yield batch
        self._reset()


def pack_config(cfg: TokensConfig) -> FirstFitPacker:
    """Returns a packer for ``cfg``."""
    return FirstFitPacker(cfg.batch_size, cfg.row_len)


# ---------------------------------------------------------------- JAX (reference)


def jax_cifar_batch_fn(cfg: CifarConfig) -> Any:
    """Returns ``f(images_u8 (B,H,W,C), key) -> float32 (B,crop,crop,C)``, jitted.

    Offsets and flips are drawn per record from ``key`` inside the function; the per-record
    math is vmapped.
    """
    import jax
    import jax.numpy as jnp

    p, s = cfg.padding, cfg.crop
    mean = jnp.asarray(cfg.mean, jnp.float32)
    std = jnp.asarray(cfg.std, jnp.float32)

    def one(img: jax.Array, dy: jax.Array, dx: jax.Array, flip: jax.Array) -> jax.Array:
        padded = jnp.pad(img, ((p, p), (p, p), (0, 0)))
        rows = jax.lax.dynamic_slice(padded, (dy, 0, 0), (s, padded.shape[1], img.shape[-1]))
        # Crop columns and flip in one gather (output column j reads dx + j, or dx + s-1-j):
        # faster on CPU than slicing and then selecting between the image and its mirror.
        cols = dx + jnp.where(flip, jnp.arange(s)[::-1], jnp.arange(s))
        return (rows[:, cols].astype(jnp.float32) - mean) / std

    @jax.jit
    def batch(images: jax.Array, key: jax.Array) -> jax.Array:
        k_off, k_flip = jax.random.split(key)
        n = images.shape[0]
        off = jax.random.randint(k_off, (n, 2), 0, 2 * p + 1)
        flip = jax.random.uniform(k_flip, (n,)) < cfg.flip_p
        return jax.vmap(one)(images, off[:, 0], off[:, 1], flip)

    return batch


def _resize_weights(
    start: Any, length: Any, in_size: int, out_size: int, taps: int, flip: Any = False
) -> tuple[Any, Any]:
    """Sparse bilinear (triangle) resampling weights of one axis, PIL's definition.

    Output pixel ``i`` is centred on ``c = start + (i + 0.5) * length / out_size``; with
    ``ss = max(length / out_size, 1)`` (antialiasing when shrinking), input pixel ``k``
    contributes ``max(0, 1 - |k + 0.5 - c| / ss)``, over ``0 <= k < in_size``, normalised.
    Where ``flip``, output pixel ``i`` takes the taps of ``out_size - 1 - i``.

    Returns:
        ``(index, weight)``, both ``(out_size, taps)``.
    """
    import jax.numpy as jnp

    scale = length / out_size
    ss = jnp.maximum(scale, 1.0)
    # Reversed positions rather than reversed tables: XLA would compute both tables in
    # the resampling loop, for every output value, to select between them.
    ascending = jnp.arange(out_size, dtype=jnp.float32)
    position = jnp.where(flip, out_size - 1 - ascending, ascending)
    centre = start + (position + 0.5) * scale
    first = jnp.floor(centre - ss + 0.5)
    k = first[:, None] + jnp.arange(taps, dtype=jnp.float32)[None, :]
    w = jnp.maximum(0.0, 1.0 - jnp.abs(k + 0.5 - centre[:, None]) / ss)
    w = jnp.where((k >= 0) & (k < in_size), w, 0.0)
    w = w / jnp.sum(w, axis=1, keepdims=True)
    return jnp.clip(k, 0, in_size - 1).astype(jnp.int32), w


def jax_jpeg_batch_fn(cfg: JpegConfig) -> Any:
    """Returns ``f(images_u8 (B,H,W,3), key) -> float32 (B,out,out,3)``, jitted.

    Random-resized crop as two sparse separable passes (``taps`` input rows, then columns,
    per output pixel with triangle weights, antialiased when shrinking: PIL's bilinear
    resize with a box), then flip and normalise; vmapped over the batch.
    """
    import jax
    import jax.numpy as jnp

    s = cfg.out_size
    size = cfg.image_size
    taps = math.ceil(2 * max(1.0, size / s)) + 1
    mean = jnp.asarray(cfg.mean, jnp.float32)
    std = jnp.asarray(cfg.std, jnp.float32)

    def one(img: jax.Array, u: jax.Array, flip: jax.Array) -> jax.Array:
        height, width = img.shape[0], img.shape[1]
        x0, y0, w, h = rrc_box(u, height, width, cfg, xp=jnp)
        iy, wy = _resize_weights(y0, h, height, s, taps)
        # The flip is folded into the column taps (output column p reads the taps of
        # s - 1 - p): flipping the output afterwards is several times slower on CPU.
        ix, wx = _resize_weights(x0, w, width, s, taps, flip)
        # A sum over the taps of gathered columns, then rows: on CPU this fuses into one
        # loop, several times faster than einsum or a dense resampling matmul. Rows last:
        # a last gather along the columns leaves XLA's output transposed, and copied back.
        cols = sum(
            wx[None, :, t, None] * img[:, ix[:, t]].astype(jnp.float32) for t in range(taps)
        )  # (H, s, C)
        out = sum(wy[:, t, None, None] * cols[iy[:, t]] for t in range(taps))  # (s, s, C)
        return (out - mean) / std

    @jax.jit
    def batch(images: jax.Array, key: jax.Array) -> jax.Array:
        k_box, k_flip = jax.random.split(key)
        n = images.shape[0]
        u = jax.random.uniform(k_box, (n, 4))
        flip = jax.random.uniform(k_flip, (n,)) < cfg.flip_p
        return jax.vmap(one)(images, u, flip)

    return batch
