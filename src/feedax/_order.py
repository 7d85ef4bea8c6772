"""The visiting order: a keyed bijection of ``[0, N)`` per (seed, epoch).

The order is a Feistel network over the smallest even-bit power-of-two domain that
holds ``N``, restricted to ``[0, N)`` by cycle walking. It needs O(1) memory: the
index at any position is computed directly, for a whole batch of positions at once,
and no permutation array of size ``N`` is ever built.
"""

from __future__ import annotations

import numpy as np

_MASK64 = (1 << 64) - 1
_ROUNDS = 6


def _mix64(z: np.ndarray) -> np.ndarray:
    """The SplitMix64 finaliser: a fast, well-spread 64-bit hash (wrapping arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _mix_int(z: int) -> int:
    """`_mix64` for one Python integer, used to derive the round keys."""
    z &= _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


class EpochOrder:
    """The visiting order of one epoch: position -> record index, a bijection of ``[0, n)``.

    Args:
      n: number of records, at least 1.
      seed: the shuffle seed.
      epoch: the epoch number; every epoch has its own permutation.
      shuffle: if False the order is the identity.

    Example:
      >>> order = EpochOrder(10, seed=0, epoch=0)
      >>> sorted(order(np.arange(10)).tolist()) == list(range(10))
      True
    """

    def __init__(self, n: int, *, seed: int, epoch: int, shuffle: bool = True):
        if n < 1:
            raise ValueError(f"EpochOrder needs at least one record, got n={n}.")
        self.n = n
        self.epoch = epoch
        self.shuffle = shuffle
        # An even number of bits so both Feistel halves have the same width; the domain is
        # then at most 4n, so cycle walking needs fewer than 4 passes on average.
        bits = max(2, (n - 1).bit_length())
        bits += bits % 2
        self._half = bits // 2
        self._mask = np.uint64((1 << self._half) - 1)
        base = _mix_int(_mix_int(seed + 0x9E3779B97F4A7C15) ^ _mix_int(epoch + 0x632BE59BD9B4E019))
        keys = []
        for _ in range(_ROUNDS):
            base = _mix_int(base + 0x9E3779B97F4A7C15)
            keys.append(base)
        self._keys = np.array(keys, dtype=np.uint64)

    def _feistel(self, x: np.ndarray) -> np.ndarray:
        half = np.uint64(self._half)
        left = x >> half
        right = x & self._mask
        for key in self._keys:
            left, right = right, left ^ (_mix64(right ^ key) & self._mask)
        return (left << half) | right

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
        with np.errstate(over="ignore"):
            out = self._feistel(positions.astype(np.uint64))
            outside = out >= np.uint64(self.n)
            # Cycle walking: re-encrypt values that fell outside [0, n) until they land in it.
            # Each walk follows its own cycle of the bijection, so the restriction is a bijection.
            while outside.any():
                out[outside] = self._feistel(out[outside])
                outside = out >= np.uint64(self.n)
        return out.astype(np.int64)
