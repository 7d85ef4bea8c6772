"""The three pipelines of the elastic multi-process tests, and how a process records rows.

Batches of 12 rows: 12 divides among 1, 2, 3 and 4 processes of one device each.
"""

import numpy as np
from flax import nnx
from test_mix import sources
from test_pack import corpus

import feedax as fx

BATCH = 12
KINDS = ("array", "mix", "pack", "stream")
COUNTS = [5 + (7 * f) % 5 for f in range(24)]  # records of each file of the stream
OPENED: list[int] = []  # the stream's files this process opened


def open_shard(file: int, start: int):
    OPENED.append(file)
    for i in range(start, COUNTS[file]):
        yield {"x": np.int32(file * 100 + i)}


def stream() -> fx.ShardedStream:
    """24 files read forward in 12 lanes: each of 4, 3, 2 or 1 processes owns whole lanes."""
    return fx.ShardedStream(range(24), open_shard, counts=COUNTS, lanes=12, batch_size=BATCH)


def build(kind: str, sharding=None) -> fx.Pipeline:
    """A random-access pipeline, a Mix, or packed sequences (all shuffled, with draws)."""
    if kind == "array":
        n = 100
        source = fx.ArraySource(
            {
                "id": np.arange(n, dtype=np.int32),
                "image": np.arange(n * 16, dtype=np.float32).reshape(n, 4, 4, 1),
            }
        )
        ops = [fx.RandomFlip(rngs=nnx.Rngs(augment=3))]
        return fx.Pipeline(source, ops, batch_size=BATCH, shuffle=True, seed=1, sharding=sharding)
    if kind == "stream":
        return fx.Pipeline(stream(), batch_size=BATCH, sharding=sharding)
    if kind == "mix":
        mix = fx.Mix(sources(), weights=[5, 3, 2])
        return fx.Pipeline(mix, batch_size=BATCH, shuffle=True, seed=2, sharding=sharding)
    return fx.Pipeline(
        corpus(),
        batch_size=BATCH,
        shuffle=True,
        seed=3,
        drop_remainder=False,
        sharding=sharding,
        pack=fx.Pack(64, window=64),
    )


def rows_of(batch: dict) -> dict[int, dict[str, list]]:
    """Global row -> field -> values, for the rows this process holds."""
    rows: dict[int, dict[str, list]] = {}
    for field, value in batch.items():
        for shard in value.addressable_shards:
            start = shard.index[0].start or 0
            for k, row in enumerate(np.asarray(shard.data)):
                rows.setdefault(start + k, {})[field] = np.asarray(row).tolist()
    return rows
