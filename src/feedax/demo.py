"""``feedax demo``: train a small CNN on scikit-learn's digits, fed by a feedax pipeline.

The demo shows the whole contract on a data set that ships with scikit-learn (no
download): augmentation on the device (``RandomCrop``, ``RunningNormalize``), a test
pipeline that shares the training statistics in eval mode, the pipeline's throughput,
a mid-epoch Orbax checkpoint of model + optimiser + pipeline that resumes exactly,
and a PNG of the same records augmented in two epochs. Needs ``pip install 'feedax[demo]'``.

Example:
  >>> from feedax import demo
  >>> result = demo.run(epochs=1, batch_size=256, out="/tmp/feedax-demo")  # doctest: +SKIP
  >>> result.resumed_exactly  # doctest: +SKIP
  True
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from pathlib import Path
from typing import cast

import jax
import numpy as np
from tqdm import tqdm

import feedax as fx
from feedax._demo.data import (
    Batch,
    build_pipelines,
    evaluate,
    load_data,
    pipeline_throughput,
)
from feedax._demo.grid import write_grid
from feedax._demo.model import build_model, train_step

DEFAULT_EPOCHS = 50
DEFAULT_BATCH_SIZE = 64
DEFAULT_OUT = "feedax-demo-out"
DEFAULT_RESUME_STEPS = 10


class DemoArgumentError(ValueError):
    """An argument of :func:`run` that cannot work (reported before any training)."""


@dataclasses.dataclass(frozen=True)
class DemoResult:
    """What :func:`run` measured and wrote.

    Attributes:
      accuracy: test accuracy after the last epoch, in [0, 1].
      resumed_exactly: the restored run saw the same batches and losses as the original.
      pipeline_records_per_s: throughput of the training pipeline alone.
      train_records_per_s: throughput of training (pipeline + train step), after compiling.
      grid: the PNG of augmented samples.
      checkpoint: the Orbax checkpoint directory.
    """

    accuracy: float
    resumed_exactly: bool
    pipeline_records_per_s: float
    train_records_per_s: float
    grid: Path
    checkpoint: Path


def _host(batch: dict[str, jax.Array]) -> Batch:
    return {k: np.asarray(v) for k, v in batch.items()}


def _resume(
    checkpoint: Path,
    data: tuple[Batch, Batch],
    expected: list[tuple[Batch, float]],
    *,
    batch_size: int,
    seed: int,
) -> bool:
    """Restores fresh objects from ``checkpoint`` and replays ``expected`` (batch, loss)."""
    train_pipe, _ = build_pipelines(*data, batch_size=batch_size, seed=seed)
    model, optimizer = build_model(seed, jax.local_devices()[0])
    fx.checkpoint.restore(checkpoint, pipeline=train_pipe, model=model, optimizer=optimizer)
    same_batches = same_losses = True
    stream = itertools.islice(train_pipe, len(expected))
    for (batch, loss), got in zip(expected, stream, strict=True):
        got_loss = float(train_step(model, optimizer, got))
        same_batches &= all(np.array_equal(v, np.asarray(got[k])) for k, v in batch.items())
        same_losses &= got_loss == loss
    print(f"  same batches: {same_batches}   same losses: {same_losses}")
    return same_batches and same_losses


def run(
    *,
    epochs: int = DEFAULT_EPOCHS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    out: str | Path = DEFAULT_OUT,
    seed: int = 0,
    resume_steps: int = DEFAULT_RESUME_STEPS,
) -> DemoResult:
    """Runs the demo and prints what it does; see the module docstring.

    Args:
      epochs: training epochs.
      batch_size: records per training (and test) batch.
      out: directory for the PNG grid and the checkpoint.
      seed: seeds the split, the order, the augmentation and the model.
      resume_steps: steps replayed after restoring the mid-epoch checkpoint.

    Raises:
      DemoArgumentError: an argument out of range, before anything runs.
    """
    data = load_data(seed)
    train_size = len(data[0]["label"])
    if epochs < 1 or resume_steps < 1 or not 1 <= batch_size <= train_size:
        raise DemoArgumentError(
            f"epochs ({epochs}) and resume_steps ({resume_steps}) must be >= 1 and batch_size "
            f"({batch_size}) in 1..{train_size} (the training set)."
        )
    steps_per_epoch = train_size // batch_size
    total = epochs * steps_per_epoch
    if resume_steps >= total:
        raise DemoArgumentError(
            f"resume_steps ({resume_steps}) must be smaller than the {total} training steps "
            f"({epochs} epochs x {steps_per_epoch}); lower it or train longer."
        )
    out = Path(out).resolve()  # Orbax wants absolute paths
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / "checkpoint"
    # Mid-epoch (the middle of the last one) unless the replayed steps need an earlier start.
    save_step = min((epochs - 1) * steps_per_epoch + steps_per_epoch // 2, total - resume_steps)

    train_pipe, test_pipe = build_pipelines(*data, batch_size=batch_size, seed=seed)
    model, optimizer = build_model(seed, jax.local_devices()[0])
    test_size = len(cast(fx.Source, test_pipe.source))
    print(
        f"feedax demo: digits 8x8x1, {train_size} train / {test_size} test records, "
        f"batch {batch_size}, {steps_per_epoch} steps/epoch, {epochs} epochs, "
        f"on {jax.devices()[0].platform}"
    )
    grid = write_grid(train_pipe, out / "augmented.png")

    expected: list[tuple[Batch, float]] = []
    step, train_seconds, accuracy = 0, 0.0, 0.0
    with tqdm(total=total, desc="training", unit="step") as bar:
        for epoch in range(epochs):
            start = time.perf_counter()
            for batch in train_pipe.epoch():
                loss = train_step(model, optimizer, batch)
                step += 1
                if step == 1:  # it compiled: time training from its end
                    jax.block_until_ready(loss)
                    start = time.perf_counter()
                if save_step < step <= save_step + resume_steps:
                    expected.append((_host(batch), float(loss)))
                if step == save_step:
                    pause = time.perf_counter()
                    fx.checkpoint.save(
                        checkpoint,
                        overwrite=True,
                        pipeline=train_pipe,
                        model=model,
                        optimizer=optimizer,
                    )
                    e, position = train_pipe.position
                    bar.write(
                        f"checkpoint at step {step} (epoch {e + 1}, {position}/{train_size} "
                        f"records in): model + optimizer + pipeline -> {checkpoint}"
                    )
                    start += time.perf_counter() - pause  # not training time
                # Reading the loss waits for the step; doing it rarely keeps dispatch async.
                if step % 10 == 0:
                    bar.set_postfix(loss=f"{float(loss):.4f}")
                bar.update()
            jax.block_until_ready(loss)
            train_seconds += time.perf_counter() - start
            accuracy = evaluate(model, test_pipe, train_pipe)
            bar.write(
                f"epoch {epoch + 1:>3}/{epochs}  loss {float(loss):.4f}  test acc {accuracy:.4f}"
            )

    print(f"resume: fresh model, optimizer and pipeline restored, replaying {resume_steps} steps")
    resumed_exactly = _resume(checkpoint, data, expected, batch_size=batch_size, seed=seed)

    pipeline_rps = pipeline_throughput(build_pipelines(*data, batch_size=batch_size, seed=seed)[0])
    train_rps = (total - 1) * batch_size / train_seconds
    print(
        f"throughput: pipeline alone {pipeline_rps:,.0f} records/s, "
        f"training (pipeline + step) {train_rps:,.0f} records/s"
    )
    print(f"final test accuracy: {accuracy:.4f}")
    print(f"wrote {grid} (rows: original, epoch 0, epoch 1)")
    print(f"wrote {checkpoint}")
    return DemoResult(accuracy, resumed_exactly, pipeline_rps, train_rps, grid, checkpoint)
