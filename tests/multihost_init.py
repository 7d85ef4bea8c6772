"""Imported first by a multi-process worker: two CPU devices, then join jax.distributed.

argv: coordinator_port process_id num_processes out_json steps save_step
"""

import os
import sys

port, pid, nproc, OUT, steps, save_step = sys.argv[1:7]
STEPS, SAVE_STEP = int(steps), int(save_step)
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"

import jax  # noqa: E402

jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=int(nproc), process_id=int(pid))
