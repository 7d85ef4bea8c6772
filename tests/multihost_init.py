"""Imported first by a multi-process worker: two CPU devices, then join jax.distributed.

argv: coordinator_port process_id num_processes out_json steps save_step [extra...]
``FEEDAX_TEST_DEVICES`` sets the CPU devices of each process (2 unless set).
"""

import os
import sys

port, pid, nproc, OUT, steps, save_step = sys.argv[1:7]
STEPS, SAVE_STEP = int(steps), int(save_step)
DEVICES = int(os.environ.get("FEEDAX_TEST_DEVICES", "2"))
EXTRA = sys.argv[7:]
os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={DEVICES}"

import jax  # noqa: E402

jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=int(nproc), process_id=int(pid))
