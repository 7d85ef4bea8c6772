"""One process of a multi-process feedax run (used by test_multiprocess.py)."""

# ruff: noqa: I001  (multihost_init must run before anything imports jax)
from multihost_init import OUT, SAVE_STEP, STEPS

import json
from pathlib import Path

import jax
import orbax.checkpoint as ocp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from flax import nnx
from helpers import make_pipeline

import feedax as fx

mesh = jax.make_mesh((jax.device_count(),), ("data",))
pipe = make_pipeline(60, batch_size=8, sharding=NamedSharding(mesh, P("data")))
records = []
saved = None
manager = ocp.CheckpointManager(Path(OUT).parent / "orbax")  # shared by the processes
it = iter(pipe)
for step in range(STEPS):
    batch = next(it)
    rows = {}
    for shard in batch["id"].addressable_shards:
        start = shard.index[0].start or 0
        image = next(s for s in batch["image"].addressable_shards if s.index[0] == shard.index[0])
        for k, (i, img) in enumerate(
            zip(np.asarray(shard.data), np.asarray(image.data), strict=True)
        ):
            rows[start + k] = [int(i), img.astype(float).round(4).ravel().tolist()]
    records.append(rows)
    if step + 1 == SAVE_STEP:
        state = nnx.state(pipe)
        saved = {
            "cursor": np.asarray(state["cursor"][...]).tolist(),
            "mean": np.asarray(pipe.operators[2].mean[...]).tolist(),
        }
        manager.save(step + 1, args=ocp.args.Composite(data=fx.checkpoint.Save(pipe)))
        manager.wait_until_finished()
manager.close()
with open(OUT, "w") as f:
    json.dump({"records": records, "saved": saved, "devices": jax.device_count(), "out": OUT}, f)
jax.distributed.shutdown()
