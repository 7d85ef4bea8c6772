"""One process of a multi-process feedax run (used by test_multiprocess.py).

argv: coordinator_port process_id num_processes out_json steps save_step
"""

import json
import os
import sys

port, pid, nproc, out, steps, save_step = sys.argv[1:7]
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"

import jax  # noqa: E402

jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=int(nproc), process_id=int(pid))

import numpy as np  # noqa: E402
from jax.sharding import NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from flax import nnx  # noqa: E402
from helpers import make_pipeline  # noqa: E402

mesh = jax.make_mesh((jax.device_count(),), ("data",))
pipe = make_pipeline(60, batch_size=8, sharding=NamedSharding(mesh, P("data")))
records = []
saved = None
it = iter(pipe)
for step in range(int(steps)):
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
    if step + 1 == int(save_step):
        state = nnx.state(pipe)
        saved = {
            "cursor": np.asarray(state["cursor"][...]).tolist(),
            "mean": np.asarray(pipe.operators[2].mean[...]).tolist(),
        }
with open(out, "w") as f:
    json.dump({"records": records, "saved": saved, "devices": jax.device_count()}, f)
jax.distributed.shutdown()
