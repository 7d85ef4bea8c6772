"""feedax.testing catches the mistakes it is for: each broken part below fails its check."""

import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import feedax as fx
from feedax import testing

IMAGES = np.random.default_rng(0).integers(0, 256, (8, 6, 6, 3), np.uint8)


class SameDrawForAll(fx.RandomOperator):
    """Broken: one key for every record (ignores the record's index and epoch)."""

    def apply(self, x, ctx):
        flip = jax.random.uniform(jax.random.key(0)) < 0.5
        return jnp.where(flip, x[:, ::-1], x)


class EpochBlind(fx.RandomOperator):
    """Broken: draws by record index only, the same in every epoch."""

    def apply(self, x, ctx):
        key = jax.random.fold_in(self.stream_key[...], ctx.index)
        return jnp.where(jax.random.uniform(key) < 0.5, x[:, ::-1], x)


class Meddler(fx.Operator):
    """Broken: also changes a field that is not its own."""

    def apply(self, x, ctx):
        return 255 - x

    def transform(self, record, ctx):
        return {**super().transform(record, ctx), "label": record["label"] + 1}


class RandomInEval(fx.RandomOperator):
    """Broken: still random in eval mode."""

    def apply(self, x, ctx):
        return jnp.where(self.record_uniforms(ctx, 1)[0] < 0.5, x[:, ::-1], x)

    def eval_transform(self, record, ctx):
        return self.transform(record, ctx)


def rngs():
    return nnx.Rngs(augment=0)


@pytest.mark.parametrize(
    "make, batch, match",
    [
        (lambda: SameDrawForAll(rngs=rngs()), {"image": IMAGES}, "identical draws"),
        (lambda: EpochBlind(rngs=rngs()), {"image": IMAGES}, "epoch 1"),
        (Meddler, {"image": IMAGES, "label": np.arange(8)}, "not its own"),
        (lambda: RandomInEval(rngs=rngs()), {"image": IMAGES}, "eval is random"),
        (lambda: fx.RandomFlip(rngs=rngs()), {"image": IMAGES[:2]}, "at least 4"),
    ],
)
def test_broken_operators_fail(make, batch, match):
    with pytest.raises(AssertionError, match=match):
        testing.check_operator(make, batch, one_record=False)


def test_good_operators_pass():
    testing.check_operator(lambda: fx.RandomResizedCrop(4, rngs=rngs()), {"image": IMAGES})
    floats = {"image": IMAGES.astype(np.float32) / 255}
    testing.check_operator(lambda: fx.Brightness(0.4, learnable=True, rngs=rngs()), floats)


def test_broken_batch_operator_fails():
    class Swap(fx.BatchOperator):
        """Broken: mixes in eval mode too (the base class's eval is the transform)."""

        def transform(self, batch, ctx):
            return {**batch, "image": batch["image"][::-1]}

    batch = {"image": IMAGES, "label": np.eye(8, dtype=np.float32)}
    with pytest.raises(AssertionError, match="epoch 1"):
        testing.check_batch_operator(Swap, batch)


class Rows:
    """Holds the data outside NNX's state (as the docs say a source must)."""

    def __init__(self, x):
        self.x = x


class Table(fx.Source):
    """A small source to break in different ways."""

    def __init__(self, n=24, *, name="Table"):
        self.name = name
        self._rows = Rows(np.arange(n, dtype=np.float32) * 10)

    def __len__(self):
        return len(self._rows.x)

    @property
    def element_spec(self):
        return {"x": jax.ShapeDtypeStruct((), np.float32)}

    def read(self, indices):
        indices = np.asarray(indices, np.int64)
        self._check_indices(indices)
        return {"x": self._rows.x[indices]}


class Sorted(Table):
    """Broken: returns the records in index order, not in the order asked."""

    def read(self, indices):
        return super().read(np.sort(np.asarray(indices)))


class Racy(Table):
    """Broken: a shared scratch buffer, so concurrent reads see each other's values."""

    def __init__(self, n=24):
        super().__init__(n, name="Racy")
        self._scratch = Rows(None)

    def read(self, indices):
        self._scratch.x = super().read(indices)["x"]
        time.sleep(0.002)
        return {"x": np.array(self._scratch.x)}


class Unchecked(Table):
    """Broken: a negative index wraps around instead of raising."""

    def read(self, indices):
        return {"x": self._rows.x[np.asarray(indices, np.int64) % len(self._rows.x)]}


@pytest.mark.parametrize(
    "source, match",
    [
        (Sorted(), r"row \d"),
        (Racy(), "concurrent"),
        (Unchecked(), "no IndexError"),
    ],
)
def test_broken_sources_fail(source, match):
    with pytest.raises(AssertionError, match=match):
        testing.check_source(source)


def test_a_good_custom_source_passes():
    testing.check_source(Table())


def test_a_pipeline_that_does_not_resume_fails():
    seeds = iter(range(100))

    def make():  # broken: a new seed each time, so a restored state is another stream
        src = fx.ArraySource({"x": np.arange(12)})
        return fx.Pipeline(src, [], batch_size=4, shuffle=True, seed=next(seeds))

    with pytest.raises(fx.StateMismatchError):
        testing.assert_resumes_exactly(make, steps=3)

    ops_rngs = iter(range(100))

    def reseeded():  # broken: operators keyed differently in each build
        src = fx.ArraySource({"image": IMAGES})
        op = fx.RandomFlip(rngs=nnx.Rngs(augment=next(ops_rngs)))
        return fx.Pipeline(src, [op], batch_size=4, shuffle=True)

    with pytest.raises(AssertionError, match="differs"):
        testing.assert_resumes_exactly(reseeded, steps=3)
