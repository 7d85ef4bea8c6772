"""One process of an elastic run (test_elastic.py): three pipelines, saved or restored.

Extra argv: ``save`` (run from the start, save after SAVE_STEP steps) or ``resume``
(restore the step SAVE_STEP checkpoint, then run STEPS - SAVE_STEP steps), then the
checkpoint folder shared by the processes.
"""

# ruff: noqa: I001  (multihost_init must run before anything imports jax)
from multihost_init import EXTRA, OUT, SAVE_STEP, STEPS

import json

import jax
import orbax.checkpoint as ocp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import feedax as fx
from elastic import KINDS, OPENED, build, rows_of

mode, folder = EXTRA
mesh = jax.make_mesh((jax.device_count(),), ("data",))
pipes = {kind: build(kind, NamedSharding(mesh, P("data"))) for kind in KINDS}
OPENED.clear()  # the stream read its first record when it was built
manager = ocp.CheckpointManager(folder)
steps = STEPS
if mode == "resume":
    args = {kind: fx.checkpoint.Restore(pipe) for kind, pipe in pipes.items()}
    manager.restore(SAVE_STEP, args=ocp.args.Composite(**args))
    steps = STEPS - SAVE_STEP
records: dict[str, list] = {kind: [] for kind in KINDS}
streams = {kind: iter(pipe) for kind, pipe in pipes.items()}
for step in range(steps):
    for kind in KINDS:
        records[kind].append(rows_of(next(streams[kind])))
    if mode == "save" and step + 1 == SAVE_STEP:
        args = {kind: fx.checkpoint.Save(pipe) for kind, pipe in pipes.items()}
        manager.save(SAVE_STEP, args=ocp.args.Composite(**args))
        manager.wait_until_finished()
manager.close()
with open(OUT, "w") as f:
    opened = sorted(set(OPENED))
    json.dump({"records": records, "processes": jax.process_count(), "opened": opened}, f)
jax.distributed.shutdown()
