"""The demo's data: scikit-learn's digits, the train and test pipelines, evaluation."""

from __future__ import annotations

import time
from typing import cast

import jax
import numpy as np
from flax import nnx
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import feedax as fx
from feedax._demo.model import DigitsCNN, count_correct

TEST_FRACTION = 0.2

Batch = dict[str, np.ndarray]


def load_data(seed: int) -> tuple[Batch, Batch]:
    """Digits as uint8 HWC ``(8, 8, 1)`` images 0..255 and int32 labels: (train, test).

    Example:
      >>> train, test = load_data(0)
      >>> train["image"].shape, train["image"].dtype, len(test["label"])
      ((1437, 8, 8, 1), dtype('uint8'), 360)
    """
    digits = load_digits()
    # The digits are greys 0..16; scale them to the uint8 range real images come in.
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)[..., None]
    labels = digits.target.astype(np.int32)
    train, test = train_test_split(
        np.arange(len(labels)), test_size=TEST_FRACTION, random_state=seed, stratify=labels
    )
    return (
        {"image": images[train], "label": labels[train]},
        {"image": images[test], "label": labels[test]},
    )


def build_pipelines(
    train: Batch, test: Batch, *, batch_size: int, seed: int
) -> tuple[fx.Pipeline, fx.Pipeline]:
    """The augmented, shuffled train pipeline and the padded test pipeline.

    A pipeline owns its operators (it sets their mode), so the test pipeline gets copies;
    :func:`evaluate` copies the running statistics the train pipeline learned into them.

    Example:
      >>> train_pipe, test_pipe = build_pipelines(*load_data(0), batch_size=64, seed=0)
      >>> train_pipe.operators[1] is test_pipe.operators[1]
      False
    """
    operators = [fx.RandomCrop(8, padding=1, rngs=nnx.Rngs(augment=seed)), fx.RunningNormalize(1)]
    train_pipe = fx.Pipeline(
        fx.ArraySource(train, name="digits-train"),
        operators,
        batch_size=batch_size,
        shuffle=True,
        seed=seed,
        drop_remainder=True,
    )
    test_pipe = fx.Pipeline(
        fx.ArraySource(test, name="digits-test"),
        [nnx.clone(op) for op in operators],
        batch_size=batch_size,
        drop_remainder=False,
    )
    return train_pipe, test_pipe


def evaluate(model: DigitsCNN, test_pipe: fx.Pipeline, train_pipe: fx.Pipeline) -> float:
    """Exact test accuracy: one epoch of the test pipeline in eval mode, padding masked.

    Example:
      >>> accuracy = evaluate(model, test_pipe, train_pipe)  # doctest: +SKIP
    """
    # Normalise the test set with the statistics learned on the training set.
    nnx.update(test_pipe.operators, nnx.state(train_pipe.operators, nnx.BatchStat))
    model.eval()
    test_pipe.eval()
    try:
        correct = sum(count_correct(model, batch) for batch in test_pipe.epoch())
    finally:
        model.train()
    return int(correct) / len(cast(fx.Source, test_pipe.source))


def pipeline_throughput(pipe: fx.Pipeline) -> float:
    """Records/s of ``pipe`` alone over one epoch, after a warm-up epoch (compilation).

    Example:
      >>> pipe, _ = build_pipelines(*load_data(0), batch_size=64, seed=0)
      >>> pipeline_throughput(pipe) > 0
      True
    """
    for batch in pipe.epoch():
        jax.block_until_ready(batch)
    start = time.perf_counter()
    batches = list(pipe.epoch())
    jax.block_until_ready(batches)
    return len(batches) * pipe.batch_size / (time.perf_counter() - start)
