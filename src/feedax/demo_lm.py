"""``feedax demo --task lm``: train a small language model on Python's own source code.

The corpus ships with Python (the standard library's ``.py`` files, one document each).
The demo trains a byte-level BPE tokenizer on them on the spot (the Hugging Face
``tokenizers`` library), tokenizes the corpus once into a ``TokenSource``, packs it into
rows with segment ids and positions (``fx.Pack``: best fit, documents longer than a row
split), trains a small NNX transformer whose attention is masked by segment, checkpoints
model + optimiser + pipeline mid-epoch with Orbax, restores them into fresh objects and
checks that the resumed run sees exactly the rows and losses of the uninterrupted one.
It prints the packing fill and tokens/s. Needs ``pip install 'feedax[demo]'``.

Example:
  >>> from feedax import demo_lm
  >>> demo_lm.run(steps=20, out="/tmp/feedax-lm").resumed_exactly  # doctest: +SKIP
  True
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import time
from pathlib import Path

import jax
import numpy as np
from tqdm import tqdm

import feedax as fx
from feedax._demo.lm_model import build, train_step

DEFAULT_STEPS = 300
DEFAULT_BATCH_SIZE = 16
DEFAULT_LENGTH = 256
DEFAULT_VOCAB = 2048
DEFAULT_OUT = "feedax-demo-lm-out"
DEFAULT_RESUME_STEPS = 10
MAX_FILE_BYTES = 60_000  # the smaller modules: a corpus of a few MB, tokenized in seconds


@dataclasses.dataclass(frozen=True)
class LMDemoResult:
    """What :func:`run` measured.

    Attributes:
      first_loss: the loss of the first step.
      last_loss: the mean loss of the last ten steps.
      resumed_exactly: the restored run saw the same rows and losses as the original.
      fill: real tokens / row positions over the rows trained on.
      tokens_per_s: real tokens per second of training (pipeline + step), after compiling.
      checkpoint: the Orbax checkpoint directory.
    """

    first_loss: float
    last_loss: float
    resumed_exactly: bool
    fill: float
    tokens_per_s: float
    checkpoint: Path


def corpus_files(limit: int | None = None) -> list[str]:
    """The standard library's smaller ``.py`` files, sorted (the same on every run)."""
    stdlib = Path(os.__file__).parent
    files = sorted(str(p) for p in stdlib.glob("*.py") if p.stat().st_size <= MAX_FILE_BYTES)
    return files[:limit]


def train_tokenizer(files: list[str], vocab: int) -> object:
    """A byte-level BPE tokenizer trained on ``files`` (``tokenizers``), deterministically."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab, special_tokens=["<pad>", "<eos>"], show_progress=False
    )
    tokenizer.train(files, trainer)
    return tokenizer


def build_pipeline(
    tokens: fx.TokenSource, *, batch_size: int, length: int, seed: int
) -> fx.Pipeline:
    """The packed, shuffled training pipeline over the tokenized corpus."""
    return fx.Pipeline(
        tokens,
        batch_size=batch_size,
        shuffle=True,
        seed=seed,
        pack=fx.Pack(length, window=256),
    )


def _host(batch: dict[str, jax.Array]) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in batch.items()}


def _resume(
    checkpoint: Path,
    tokens: fx.TokenSource,
    expected: list[tuple[dict[str, np.ndarray], float]],
    *,
    batch_size: int,
    length: int,
    vocab: int,
    seed: int,
) -> bool:
    """Restores fresh objects from ``checkpoint`` and replays ``expected`` (rows, loss)."""
    pipe = build_pipeline(tokens, batch_size=batch_size, length=length, seed=seed)
    model, optimizer = build(vocab, length, seed)
    fx.checkpoint.restore(checkpoint, pipeline=pipe, model=model, optimizer=optimizer)
    same_rows = same_losses = True
    for (batch, loss), got in zip(expected, itertools.islice(pipe, len(expected)), strict=True):
        got_loss = float(train_step(model, optimizer, got))
        same_rows &= all(np.array_equal(v, np.asarray(got[k])) for k, v in batch.items())
        same_losses &= got_loss == loss
    print(f"  same rows: {same_rows}   same losses: {same_losses}")
    return same_rows and same_losses


def run(
    *,
    steps: int = DEFAULT_STEPS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    length: int = DEFAULT_LENGTH,
    out: str | Path = DEFAULT_OUT,
    seed: int = 0,
    resume_steps: int = DEFAULT_RESUME_STEPS,
    files: int | None = None,
) -> LMDemoResult:
    """Runs the demo and prints what it does; see the module docstring.

    Args:
      steps: training steps.
      batch_size: packed rows per step.
      length: tokens per row.
      out: directory for the tokenized corpus and the checkpoint.
      seed: seeds the order and the model.
      resume_steps: steps replayed after restoring the mid-run checkpoint.
      files: use only the first this many corpus files (None: all of them).
    """
    if steps < 2 or not 1 <= resume_steps < steps:
        raise ValueError(
            f"need steps >= 2 and 1 <= resume_steps < steps, got {steps}, {resume_steps}."
        )
    out = Path(out).resolve()  # Orbax wants absolute paths
    out.mkdir(parents=True, exist_ok=True)
    paths = corpus_files(files)
    texts = fx.TextSource(paths, unit="file", name="python-stdlib")
    tokenizer = train_tokenizer(paths, DEFAULT_VOCAB)
    tokens = fx.tokenize(texts, tokenizer, out / "tokens", eos_id=1)
    vocab = tokenizer.get_vocab_size()  # type: ignore[attr-defined]
    total_tokens = int(tokens.lengths(np.arange(len(tokens))).sum())
    pipe = build_pipeline(tokens, batch_size=batch_size, length=length, seed=seed)
    print(
        f"feedax demo lm: {len(tokens)} Python files, {total_tokens:,} tokens (BPE, vocab "
        f"{vocab}), rows of {length}, batch {batch_size}, {pipe.steps_per_epoch} steps/epoch, "
        f"{steps} steps, on {jax.devices()[0].platform}"
    )
    model, optimizer = build(vocab, length, seed)
    checkpoint, save_step = out / "checkpoint", steps - resume_steps
    expected: list[tuple[dict[str, np.ndarray], float]] = []
    losses: list[float] = []
    real = slots = 0
    start = time.perf_counter()
    with tqdm(total=steps, desc="training", unit="step") as bar:
        for step, batch in enumerate(itertools.islice(pipe, steps), start=1):
            loss = train_step(model, optimizer, batch)
            losses.append(float(loss))
            used = int(np.count_nonzero(np.asarray(batch["segment_ids"])))
            real, slots = real + used, slots + batch["tokens"].size
            if step == 1:  # it compiled: time training from here
                start, trained = time.perf_counter(), 0
            else:
                trained += used
            if step > save_step:
                expected.append((_host(batch), losses[-1]))
            if step == save_step:
                pause = time.perf_counter()
                fx.checkpoint.save(
                    checkpoint, overwrite=True, pipeline=pipe, model=model, optimizer=optimizer
                )
                epoch, in_epoch = pipe.position[0], int(np.asarray(pipe.cursor[...])[1])
                bar.write(
                    f"checkpoint at step {step} (epoch {epoch + 1}, step {in_epoch} of "
                    f"{pipe.steps_per_epoch}): model + optimizer + pipeline -> {checkpoint}"
                )
                start += time.perf_counter() - pause
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
            bar.update()
    tokens_per_s = trained / (time.perf_counter() - start)
    print(f"resume: fresh model, optimizer and pipeline restored, replaying {resume_steps} steps")
    resumed = _resume(
        checkpoint,
        tokens,
        expected,
        batch_size=batch_size,
        length=length,
        vocab=vocab,
        seed=seed,
    )
    result = LMDemoResult(
        losses[0], float(np.mean(losses[-10:])), resumed, real / slots, tokens_per_s, checkpoint
    )
    print(
        f"loss {result.first_loss:.3f} -> {result.last_loss:.3f}; packing fill "
        f"{result.fill:.3f}; training {result.tokens_per_s:,.0f} tokens/s"
    )
    return result
