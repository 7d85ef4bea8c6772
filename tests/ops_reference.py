"""Shared inputs and reference helpers of the operator tests (test_ops_*.py)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

import feedax as fx


@pytest.fixture(autouse=True, scope="module")
def quick_compiles():
    """Compiles with most XLA optimisations off while an operator test module runs.

    The operator tests compile a few hundred small programs and run each on tiny inputs,
    so XLA's optimisation passes cost far more than they save (about a third of the
    suite's time). Results agree with optimised code within the tests' tolerances. Import
    this fixture into a test module to use it; the setting is restored afterwards.
    """
    before = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", before)


@functools.cache
def china(size: int = 64) -> np.ndarray:
    """scikit-learn's china.jpg, resized to size x size (uint8 RGB): a real photograph."""
    from sklearn.datasets import load_sample_image

    image = load_sample_image("china.jpg")
    return np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))


@functools.cache
def flower(size: int = 64) -> np.ndarray:
    """scikit-learn's flower.jpg, resized (uint8 RGB)."""
    from sklearn.datasets import load_sample_image

    image = load_sample_image("flower.jpg")
    return np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))


def pil_float(x: np.ndarray, fn) -> np.ndarray:
    """Applies ``fn`` to each channel of float HWC ``x`` as a 32-bit float PIL image."""
    return np.stack(
        [
            np.asarray(fn(Image.fromarray(x[..., c].astype(np.float32), mode="F")))
            for c in range(x.shape[2])
        ],
        axis=-1,
    )


def level_diff(a, b) -> np.ndarray:
    """|a - b| of two uint8-like arrays, as int."""
    return np.abs(np.asarray(a, np.int64) - np.asarray(b, np.int64))


def ctx(index: int, epoch: int = 0) -> fx.RecordContext:
    return fx.RecordContext(jnp.int32(epoch), jnp.int32(index), jnp.bool_(True))


def jit(fn, *args, **static):
    """``fn(*args, **static)`` compiled as one program (eager JAX dispatches op by op)."""
    return _jitted(fn, tuple(sorted(static.items())))(*args)


@functools.cache
def _jitted(fn, static):
    return jax.jit(functools.partial(fn, **dict(static)))


def one(op, x):
    """``op`` applied to one image ``x`` as a pipeline does (jitted)."""
    return fx.apply_operators(op, {"image": jnp.asarray(x)[None]}, indices=[0])["image"][0]


def draws(op, shape, n, epoch=0):
    """``op.draw(shape, ctx)`` for records 0..n-1, vectorised (one compile)."""

    def one(i):
        return op.draw(shape, fx.RecordContext(jnp.int32(epoch), i, jnp.bool_(True)))

    return jax.jit(jax.vmap(one))(jnp.arange(n, dtype=jnp.int32))


def run(ops, batch, epoch=0, indices=None):
    n = len(next(iter(batch.values())))
    indices = np.arange(n) if indices is None else indices
    return fx.apply_operators(ops, batch, indices=indices, epoch=epoch)
