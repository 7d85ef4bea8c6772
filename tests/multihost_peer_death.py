"""One of two jax.distributed processes whose peer is SIGKILLed (used by test_multiprocess.py).

argv: port process_id
Process 1 kills itself after 3 steps. Process 0 prints "step k" for each batch its
pipeline yields and runs one global reduction (a collective) per step, as a training
step's gradient all-reduce does.
"""

import os
import signal
import sys

port, pid = sys.argv[1], int(sys.argv[2])
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"

import jax  # noqa: E402

jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(
    f"127.0.0.1:{port}", num_processes=2, process_id=pid, heartbeat_timeout_seconds=5
)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

import feedax as fx  # noqa: E402

mesh = jax.make_mesh((jax.device_count(),), ("data",))
pipe = fx.Pipeline(
    fx.ArraySource({"x": np.arange(4000, dtype=np.float32)}),
    batch_size=8,
    sharding=NamedSharding(mesh, P("data")),
)
total = jax.jit(jnp.sum)
for step, batch in enumerate(pipe.epoch()):
    if pid == 1 and step == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    print(f"step {step}", flush=True)
    float(total(batch["x"]))  # needs the peer's rows: a collective
