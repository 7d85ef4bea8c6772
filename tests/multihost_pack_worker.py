"""One process of a multi-process packing run (used by test_pack_multiprocess.py)."""

# ruff: noqa: I001  (multihost_init must run before anything imports jax)
from multihost_init import OUT, SAVE_STEP, STEPS

import json

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from test_pack import pipeline

mesh = jax.make_mesh((jax.device_count(),), ("data",))
pipe = pipeline(sharding=NamedSharding(mesh, P("data")))
records, saved = [], None
it = iter(pipe)
for step in range(STEPS):
    batch = next(it)
    rows = {}
    for field in ("tokens", "segment_ids", "positions"):
        for shard in batch[field].addressable_shards:
            start = shard.index[0].start or 0
            for k, row in enumerate(np.asarray(shard.data)):
                rows.setdefault(start + k, {})[field] = row.tolist()
    records.append(rows)
    if step + 1 == SAVE_STEP:
        saved = np.asarray(pipe.cursor[...]).tolist()
with open(OUT, "w") as f:
    json.dump({"records": records, "saved": saved, "devices": jax.device_count()}, f)
jax.distributed.shutdown()
