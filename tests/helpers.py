"""Small pipelines and checks shared by the tests (no environment side effects)."""

from collections.abc import Callable, Sequence

import numpy as np
from flax import nnx

import feedax as fx


def make_images(n: int, size: int = 8, channels: int = 3, seed: int = 0) -> np.ndarray:
    """Random uint8 HWC images."""
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, channels), np.uint8)


def make_pipeline(
    n: int = 50,
    *,
    batch_size: int = 8,
    shuffle: bool = True,
    seed: int = 0,
    drop_remainder: bool = True,
    augment: bool = True,
    on_device: bool = False,
    **kwargs,
) -> fx.Pipeline:
    """A small pipeline whose records carry their own index in the field 'id'."""
    rngs = nnx.Rngs(augment=42)
    ops = (
        [fx.RandomCrop(8, padding=2, rngs=rngs), fx.RandomFlip(rngs=rngs), fx.RunningNormalize(3)]
        if augment
        else []
    )
    source = fx.ArraySource(
        {"image": make_images(n), "id": np.arange(n, dtype=np.int32)}, on_device=on_device
    )
    return fx.Pipeline(
        source,
        ops,
        batch_size=batch_size,
        shuffle=shuffle,
        seed=seed,
        drop_remainder=drop_remainder,
        **kwargs,
    )


def host(batch: dict) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in batch.items()}


def first_batches(pipe: fx.Pipeline, k: int) -> list[dict[str, np.ndarray]]:
    """The first ``k`` batches of ``iter(pipe)`` (from its cursor), as NumPy arrays."""
    it = iter(pipe)
    return [host(next(it)) for _ in range(k)]


def check_resume_at_steps(make: Callable[[], fx.Pipeline], steps: range) -> None:
    """A fresh pipeline given the state after each of ``steps`` batches continues exactly."""
    reference = first_batches(make(), steps.stop + 1)
    for k in steps:
        partial = make()
        first_batches(partial, k)
        fresh = make()
        nnx.update(fresh, nnx.clone(nnx.state(partial)))
        for expected, got in zip(reference[k : k + 2], first_batches(fresh, 2), strict=True):
            for field in expected:
                np.testing.assert_array_equal(expected[field], got[field])


def check_skip_and_resume(
    pipeline: Callable[[], fx.Pipeline],
    *,
    n: int,
    bad: Sequence[int],
    batch_size: int,
    delivered: Sequence[int] | None = None,
) -> None:
    """One epoch: full batches, every good record once, exactly ``bad`` skipped; resumes.

    ``pipeline()`` builds a fresh, identical Pipeline over ``n`` records with
    ``drop_remainder=False`` and ``on_error="skip"``; its batches carry a field ``"id"``.
    ``delivered`` is the sorted ``"id"``s the good records carry (default: their indices).
    The stream resumed from a checkpoint at several steps, across two epoch boundaries,
    must equal the uninterrupted one.
    """
    pipe = pipeline()
    batches = [host(b) for b in pipe.epoch()]
    good = sorted(set(range(n)) - set(bad))
    assert len(batches) == -(-len(good) // batch_size)
    assert all(b["valid"].all() for b in batches[:-1])  # only the last one is padded
    assert batches[-1]["valid"].sum() == len(good) - batch_size * (len(batches) - 1)
    ids = np.concatenate([b["id"][b["valid"]] for b in batches]).tolist()
    assert sorted(ids) == (good if delivered is None else list(delivered))  # each one once
    assert sorted(pipe.skipped_indices) == sorted(bad)
    steps = 2 * len(batches) + 1  # crosses two epoch boundaries

    reference = first_batches(pipeline(), steps)
    for k in (1, len(batches) - 1, len(batches), len(batches) + 2):
        partial = pipeline()
        first_batches(partial, k)
        saved = nnx.clone(nnx.state(partial))
        fresh = pipeline()
        nnx.update(fresh, saved)
        assert sorted(fresh.skipped_indices) == sorted(partial.skipped_indices)
        for expected, got in zip(reference[k:], first_batches(fresh, steps - k), strict=True):
            assert expected.keys() == got.keys()
            for field in expected:
                np.testing.assert_array_equal(expected[field], got[field])
