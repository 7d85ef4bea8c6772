"""The contract every operator meets. A new operator gets all of it by joining CASES."""

from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import feedax as fx


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[], fx.Operator]
    out_shape: Callable[[tuple[int, ...]], tuple[int, ...]] = lambda shape: shape
    keeps_dtype: bool = True  # else: float32 out


def rngs():
    return nnx.Rngs(augment=3)


CASES = [
    Case("RandomCrop", lambda: fx.RandomCrop(4, padding=2, rngs=rngs()), lambda s: (4, 4, s[2])),
    Case("RandomCrop-same", lambda: fx.RandomCrop(6, padding=1, rngs=rngs())),
    Case("RandomFlip", lambda: fx.RandomFlip(rngs=rngs())),
    Case("RandomFlip-vertical", lambda: fx.RandomFlip("vertical", p=0.7, rngs=rngs())),
    Case(
        "Normalize",
        lambda: fx.Normalize((120.0, 110.0, 100.0), (60.0, 50.0, 40.0)),
        keeps_dtype=False,
    ),
    Case("RunningNormalize", lambda: fx.RunningNormalize(3), keeps_dtype=False),
    Case("BrightnessContrast", lambda: fx.BrightnessContrast(0.1, 1.2), keeps_dtype=False),
]
IDS = [c.name for c in CASES]
SHAPE = (6, 6, 3)


def batch_of(n=8, dtype=np.uint8, fill=None, shape=SHAPE, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, *shape)) if fill is None else np.full((n, *shape), fill)
    return {"image": jnp.asarray(x.astype(dtype)), "label": jnp.arange(n)}


def run(op, batch, epoch=0, indices=None):
    indices = np.arange(len(batch["label"])) if indices is None else indices
    return fx.apply_operators(op, batch, indices=indices, epoch=epoch)


def is_random(op):
    return isinstance(op, fx.RandomOperator)


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_shape_dtype_and_passthrough(case, dtype):
    batch = batch_of(dtype=dtype)
    out = run(case.make(), batch)
    assert out["image"].shape == (8, *case.out_shape(SHAPE))
    expected = dtype if case.keeps_dtype else np.float32
    assert out["image"].dtype == expected
    np.testing.assert_array_equal(out["label"], batch["label"])


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_jit_equals_eager_and_same_key_same_output(case):
    batch = batch_of()
    eager = run(case.make(), batch)
    op = case.make()
    graphdef, state = nnx.split(op)

    @jax.jit
    def jitted(state, batch):
        return run(nnx.merge(graphdef, state), batch)

    # jit may fuse float arithmetic differently: equal up to rounding.
    np.testing.assert_allclose(jitted(state, batch)["image"], eager["image"], rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(run(case.make(), batch)["image"], eager["image"])


@pytest.mark.parametrize("case", [c for c in CASES if is_random(c.make())], ids=lambda c: c.name)
def test_random_ops_vary_by_record_and_epoch_and_are_identity_in_eval(case):
    batch = batch_of(n=32, fill=None)
    same = {
        "image": jnp.broadcast_to(batch["image"][:1], batch["image"].shape),
        "label": batch["label"],
    }
    op = case.make()
    out = np.asarray(run(op, same)["image"])
    assert len({o.tobytes() for o in out}) > 1, "identical records must get different draws"
    epoch0 = np.asarray(run(op, batch, epoch=0)["image"])
    epoch1 = np.asarray(run(op, batch, epoch=1)["image"])
    assert not np.array_equal(epoch0, epoch1)
    # The draw depends on the record index, not its position in the batch.
    perm = np.random.default_rng(0).permutation(32)
    shuffled = {k: v[perm] for k, v in batch.items()}
    np.testing.assert_array_equal(run(op, shuffled, indices=perm)["image"], epoch0[perm])
    op.eval()
    np.testing.assert_array_equal(run(op, batch)["image"], batch["image"])


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize(
    ("fill", "shape"), [(0, SHAPE), (255, SHAPE), (None, (7, 9, 3)), (None, (1, 1, 3))]
)
def test_edge_inputs_stay_finite(case, fill, shape):
    op = case.make()
    batch = batch_of(fill=fill, shape=shape, dtype=np.float32)
    if isinstance(op, fx.RandomCrop) and max(op.size) > min(shape[:2]) + 2 * op.padding:
        with pytest.raises(fx.OperatorError, match="larger than the padded image"):
            run(op, batch)
        return
    out = run(op, batch)
    assert np.isfinite(np.asarray(out["image"], np.float64)).all()


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.make().differentiable], ids=lambda c: c.name
)
def test_gradients_are_finite_and_non_zero(case):
    op = case.make()
    x = batch_of(dtype=np.float32)["image"] / 255.0
    weights = jnp.linspace(-1, 1, np.prod(case.out_shape(SHAPE))).reshape(case.out_shape(SHAPE))

    def loss(x, op):
        out = run(op, {"image": x, "label": jnp.arange(8)})["image"]
        return jnp.sum(out * weights)

    gx, gop = nnx.grad(loss, argnums=(0, 1))(x, op)
    assert np.isfinite(gx).all() and np.abs(gx).max() > 0
    for g in jax.tree.leaves(nnx.state(gop, nnx.Param)):
        assert np.isfinite(g).all() and np.abs(g).max() > 0
