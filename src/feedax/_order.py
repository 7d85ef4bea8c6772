"""The visiting order: a keyed bijection of ``[0, N)`` per (seed, epoch).

The order is a Feistel network over the smallest even-bit power-of-two domain that
holds ``N``, restricted to ``[0, N)`` by cycle walking. It needs O(1) memory: the
index at any position is computed directly, for a whole batch of positions at once,
and no permutation array of size ``N`` is ever built.

The same integer arithmetic (32-bit words) runs in NumPy on the host and in
``jax.numpy`` inside a jitted function, with bit-identical results, so a pipeline whose
data lives on the device computes its order there.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_MASK64 = (1 << 64) - 1
_ROUNDS = 6
MAX_RECORDS = 1 << 31  # record indices are int32 on the device


def _mix_int(z: int) -> int:
    """The SplitMix64 finaliser on a Python integer: derives the round keys."""
    z &= _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def round_keys(seed: int, epoch: int) -> np.ndarray:
    """The Feistel round keys of ``(seed, epoch)``: ``_ROUNDS`` uint32 words."""
    base = _mix_int(_mix_int(seed + 0x9E3779B97F4A7C15) ^ _mix_int(epoch + 0x632BE59BD9B4E019))
    keys = []
    for _ in range(_ROUNDS):
        base = _mix_int(base + 0x9E3779B97F4A7C15)
        keys.append(base & 0xFFFFFFFF)
    return np.array(keys, dtype=np.uint32)


def half_bits(n: int) -> int:
    """Bits of each Feistel half for ``n`` records (the domain is ``4**half_bits >= n``)."""
    return max(1, ((n - 1).bit_length() + 1) // 2)


# NumPy uint32 scalars: jax.numpy keeps their dtype too, so one set serves both.
_S16, _S13 = np.uint32(16), np.uint32(13)
_M1, _M2 = np.uint32(0x85EBCA6B), np.uint32(0xC2B2AE35)


def _fmix32(z: Any) -> Any:
    """MurmurHash3's 32-bit finaliser: a fast, well-spread hash (wrapping arithmetic)."""
    z = (z ^ (z >> _S16)) * _M1
    z = (z ^ (z >> _S13)) * _M2
    return z ^ (z >> _S16)


def feistel(xp: Any, x: Any, keys: Any, half: int) -> Any:
    """One pass of the keyed Feistel bijection of ``[0, 4**half)`` on uint32 ``x``."""
    shift, mask = np.uint32(half), np.uint32((1 << half) - 1)
    left, right = x >> shift, x & mask
    for r in range(_ROUNDS):
        left, right = right, left ^ (_fmix32(right ^ keys[r]) & mask)
    return (left << shift) | right


def permute(xp: Any, positions: Any, keys: Any, n: int) -> Any:
    """Record indices at ``positions`` (uint32, each in ``[0, n)``), by cycle walking.

    Values that land outside ``[0, n)`` are encrypted again until they fall inside; each
    walk follows its own cycle of the bijection, so the restriction is a bijection. The
    domain is at most ``4n``, so few passes are needed. Works with NumPy (a Python loop)
    and jax.numpy (``lax.while_loop``).
    """
    half = half_bits(n)
    bound = np.uint32(n)
    out = feistel(xp, positions, keys, half)
    if xp is np:
        outside = out >= bound
        while outside.any():
            out[outside] = feistel(np, out[outside], keys, half)
            outside = out >= bound
        return out
    import jax

    def walk(out: Any) -> Any:
        return xp.where(out >= bound, feistel(xp, out, keys, half), out)

    return jax.lax.while_loop(lambda out: (out >= bound).any(), walk, out)


class EpochOrder:
    """The visiting order of one epoch: position -> record index, a bijection of ``[0, n)``.

    Args:
      n: number of records, 1 to 2**31.
      seed: the shuffle seed.
      epoch: the epoch number; every epoch has its own permutation.
      shuffle: if False the order is the identity.

    Example:
      >>> order = EpochOrder(10, seed=0, epoch=0)
      >>> sorted(order(np.arange(10)).tolist()) == list(range(10))
      True
    """

    def __init__(self, n: int, *, seed: int, epoch: int, shuffle: bool = True):
        if not 1 <= n <= MAX_RECORDS:
            raise ValueError(f"EpochOrder needs 1 to 2**31 records, got n={n}.")
        self.n = n
        self.epoch = epoch
        self.shuffle = shuffle
        self.keys = round_keys(seed, epoch)

    def __call__(self, positions: np.ndarray) -> np.ndarray:
        """Returns the record indices (int64) visited at ``positions`` (each in ``[0, n)``)."""
        positions = np.asarray(positions, dtype=np.int64)
        if positions.size and (positions.min() < 0 or positions.max() >= self.n):
            raise IndexError(
                f"Order positions must lie in [0, {self.n}); got values in "
                f"[{positions.min()}, {positions.max()}]."
            )
        if not self.shuffle:
            return positions.copy()
        return permute(np, positions.astype(np.uint32), self.keys, self.n).astype(np.int64)


class ChunkedOrder:
    """An :class:`EpochOrder` computed ``chunk`` consecutive positions at a time, cached.

    A batch asks for a few hundred consecutive positions; the Feistel rounds cost mostly
    NumPy's per-call overhead at that size, so computing the next ``chunk`` positions in
    one call and serving batches from them is about ten times cheaper per batch. Any
    other request (scattered or wider than a chunk) is computed directly.

    Example:
      >>> order = EpochOrder(1000, seed=0, epoch=0)
      >>> chunked = ChunkedOrder(order, chunk=256)
      >>> bool((chunked(np.arange(100, 132)) == order(np.arange(100, 132))).all())
      True
    """

    def __init__(self, order: EpochOrder, chunk: int = 1 << 14):
        self.order = order
        self.chunk = chunk
        self._start = 0
        self._cached = np.zeros(0, np.int64)

    def __call__(self, positions: np.ndarray) -> np.ndarray:
        """The record indices at ``positions``, as ``order(positions)`` gives them."""
        p = np.asarray(positions, dtype=np.int64)
        if p.size == 0 or not self.order.shuffle:
            return self.order(p)
        lo, hi = int(p.min()), int(p.max())
        if hi - lo >= self.chunk or lo < 0 or hi >= self.order.n:
            return self.order(p)  # out-of-range positions raise there
        if lo < self._start or hi >= self._start + len(self._cached):
            end = min(lo + self.chunk, self.order.n)
            self._start, self._cached = lo, self.order(np.arange(lo, end))
        return self._cached[p - self._start]
