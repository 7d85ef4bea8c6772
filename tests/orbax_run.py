"""A small training run checkpointed with Orbax's CheckpointManager (used by test_orbax.py).

argv: directory mode slow
  mode "run": train 12 steps from scratch, saving model, optimizer and pipeline every 2.
  mode "resume": restore the latest save, print its step, then train to step 12.
  slow "1": sleep between steps, so that a kill lands between two saves.
Prints one line per step: "<loss>/<record ids>".
"""

import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax import nnx

import feedax as fx

STEPS, EVERY = 12, 2


def build():
    rng = np.random.default_rng(0)
    source = fx.ArraySource({"x": rng.normal(size=(40, 4)).astype(np.float32), "id": np.arange(40)})
    pipe = fx.Pipeline(source, batch_size=8, shuffle=True, seed=3)
    model = nnx.Linear(4, 1, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.sgd(0.1), wrt=nnx.Param)
    return pipe, model, optimizer


@nnx.jit
def train_step(model, optimizer, x):
    def loss_fn(model):
        return jnp.mean((model(x)[:, 0] - x.sum(axis=1)) ** 2)

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss


def items(pipe, model, optimizer, restore=False):
    if restore:
        model_state = jax.tree.map(ocp.utils.to_shape_dtype_struct, nnx.state(model))
        opt_state = jax.tree.map(ocp.utils.to_shape_dtype_struct, nnx.state(optimizer))
        return ocp.args.Composite(
            model=ocp.args.StandardRestore(model_state),
            optimizer=ocp.args.StandardRestore(opt_state),
            data=fx.checkpoint.Restore(pipe),
        )
    return ocp.args.Composite(
        model=ocp.args.StandardSave(nnx.state(model)),
        optimizer=ocp.args.StandardSave(nnx.state(optimizer)),
        data=fx.checkpoint.Save(pipe),
    )


def main(directory, mode, slow):
    pipe, model, optimizer = build()
    options = ocp.CheckpointManagerOptions(save_interval_steps=EVERY, max_to_keep=2)
    with ocp.CheckpointManager(directory, options=options) as manager:
        start = 0
        if mode == "resume":
            start = manager.latest_step()
            restored = manager.restore(start, args=items(pipe, model, optimizer, restore=True))
            nnx.update(model, restored.model)
            nnx.update(optimizer, restored.optimizer)
            print(start, flush=True)
        it = iter(pipe)
        for step in range(start + 1, STEPS + 1):
            batch = next(it)
            loss = train_step(model, optimizer, batch["x"])
            ids = ",".join(str(i) for i in np.asarray(batch["id"]))
            print(f"{float(loss):.6f}/{ids}", flush=True)
            manager.save(step, args=items(pipe, model, optimizer))
            if slow:
                time.sleep(0.3)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3] == "1")
