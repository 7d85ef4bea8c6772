"""Output batches the consumer let go of lend their memory to later ones, and only those."""

from __future__ import annotations

import gc
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import feedax as fx
from feedax._recycle import MIN_BYTES, Recycler, recyclable

N, BATCH, SIDE = 192, 8, 128  # a float32 batch of 8 x 128 x 128 x 3 is 1.5 MiB


def _pipeline(sharding: Any = None) -> fx.Pipeline:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (N, SIDE, SIDE, 3), dtype=np.uint8)
    rngs = nnx.Rngs(augment=0)
    operators: list[Any] = [fx.RandomFlip(rngs=rngs), fx.Normalize((128.0,) * 3, (64.0,) * 3)]
    src = fx.ArraySource({"image": images, "label": np.arange(N)})
    return fx.Pipeline(
        src, operators, batch_size=BATCH, seed=1, drop_remainder=True, sharding=sharding
    )


def _expected() -> list[np.ndarray]:
    """Every batch of one epoch, each kept (so nothing can be recycled)."""
    batches = list(_pipeline().epoch())
    return [np.asarray(b["image"]) for b in batches]


def test_a_dropped_batch_lends_its_buffer_and_values_are_unchanged() -> None:
    expected = _expected()
    pointers, seen = [], []
    for batch in _pipeline().epoch():  # the loop variable is the only reference
        pointers.append(batch["image"].unsafe_buffer_pointer())
        seen.append(np.array(batch["image"]))  # a copy: it does not hold the batch
        del batch
        gc.collect()
    for got, want in zip(seen, expected, strict=True):
        np.testing.assert_array_equal(got, want)
    # A few buffers serve the whole epoch: the later batches reuse earlier memory.
    assert len(set(pointers)) < len(pointers) // 2


@pytest.mark.parametrize("hold", ["list", "numpy-view", "dlpack", "dict"])
def test_what_the_consumer_holds_is_never_written(hold: str) -> None:
    expected = _expected()
    held: list[Any] = []
    for i, batch in enumerate(_pipeline().epoch()):
        if i % 2 == 0:  # hold every other batch, drop the rest
            image = batch["image"]
            if hold == "list":
                held.append(image)
            elif hold == "numpy-view":
                held.append(np.asarray(image))  # refers to the array
            elif hold == "dlpack":
                held.append(np.from_dlpack(image))  # an external reference, not the array
            else:
                held.append(batch)
        del batch
        gc.collect()
    for got, want in zip(held, expected[::2], strict=True):
        value = got["image"] if isinstance(got, dict) else got
        np.testing.assert_array_equal(np.asarray(value), want)


def test_a_batch_the_consumer_donates_is_skipped() -> None:
    expected = _expected()
    step = jax.jit(lambda x: x + 1.0, donate_argnums=0)
    got = [np.asarray(step(batch["image"])) for batch in _pipeline().epoch()]
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_array_equal(g, e + 1.0)


def test_recycler_hands_out_only_free_arrays() -> None:
    (device,) = jax.devices("cpu")[:1]
    aval = jax.ShapeDtypeStruct((MIN_BYTES // 4,), jnp.float32)
    small = jax.ShapeDtypeStruct((4,), jnp.float32)
    recycler = Recycler([aval, small], device)
    assert recycler.avals[1] is None  # too small to be worth it
    first = recycler.spares()
    assert first[1] is None and first[0] is not None
    out = jnp.ones(aval.shape, aval.dtype)
    pointer = out.unsafe_buffer_pointer()
    recycler.keep([out, jnp.ones(4)])
    assert recycler.spares()[0].unsafe_buffer_pointer() != pointer  # still held here
    recycler.keep([jnp.ones(aval.shape, aval.dtype), jnp.ones(4)])
    del out
    assert recycler.spares()[0].unsafe_buffer_pointer() == pointer  # let go of: lent


def test_only_single_cpu_device_steps_recycle() -> None:
    assert recyclable([jnp.zeros(3)]) == (jax.default_backend() == "cpu")
    assert not recyclable([np.zeros(3)])


def test_relabelled_batches_are_not_recycled() -> None:
    # A user sharding re-labels the step's outputs: the arrays handed over share buffers
    # with them, so nothing may be recycled.
    explicit = (jax.sharding.AxisType.Explicit,)
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",), axis_types=explicit)
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    expected = _expected()
    held = []
    for i, batch in enumerate(_pipeline(sharding).epoch()):
        if i % 2 == 0:
            held.append(batch["image"])
        del batch
        gc.collect()
    for got, want in zip(held, expected[::2], strict=True):
        np.testing.assert_array_equal(np.asarray(got), want)


def _slow(x: Any, xp: Any) -> Any:
    y = x
    for _ in range(30):
        y = xp.sin(y) + x
    return y


def test_a_reader_still_running_when_its_batch_is_recycled_reads_it_whole() -> None:
    # The consumer's computation is dispatched, not awaited, and the batch dropped at
    # once: its buffer may be lent to a later batch while that computation still reads.
    expected = _expected()
    slow = jax.jit(lambda x: _slow(x, jnp))
    pending = [slow(batch["image"]) for batch in _pipeline().epoch()]
    for got, want in zip(pending, expected, strict=True):
        np.testing.assert_allclose(np.asarray(got), _slow(want, np), rtol=1e-4, atol=1e-4)
