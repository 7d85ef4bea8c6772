"""The contract every operator meets. A new operator gets all of it by joining CASES.

Every public operator must appear in CASES (one-record operators) or BATCH_CASES (batch
operators); ``test_every_public_operator_is_in_the_suite`` fails otherwise. Reference
checks against PIL / scipy / colorsys / NumPy live in ``test_ops_*.py``.
"""

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from ops_reference import quick_compiles  # noqa: F401  (fixture)

import feedax as fx
from feedax import testing

N = 8
SHAPE = (6, 6, 3)
ODD = (7, 9, 3)
CLASSES = 5


def rngs():
    return nnx.Rngs(augment=3)


def same(shape):
    return shape


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[], fx.Operator]
    out_shape: Callable[[tuple[int, ...]], tuple[int, ...]] = same
    out_dtype: str = "same"  # "same" (input dtype) or "float32"
    kind: str = "image"  # "image": HWC images; "label": int labels; "onehot": float labels
    min_size: int = 1  # smaller images raise OperatorError when the op is built/traced
    unit: bool = False  # a colour op: float output stays in [0, 1]


def sq(n):
    return lambda s: (n, n, s[2])


CASES = [
    # Geometry.
    Case("RandomCrop", lambda: fx.RandomCrop(4, padding=2, rngs=rngs()), sq(4)),
    Case(
        "RandomCrop-reflect",
        lambda: fx.RandomCrop(6, padding=1, padding_mode="reflect", rngs=rngs()),
        sq(6),
        min_size=4,
    ),
    Case("CenterCrop", lambda: fx.CenterCrop(4), sq(4), min_size=4),
    Case("RandomResizedCrop", lambda: fx.RandomResizedCrop(5, rngs=rngs()), sq(5)),
    Case("Resize", lambda: fx.Resize((5, 7)), lambda s: (5, 7, s[2])),
    Case("Resize-bicubic", lambda: fx.Resize((9, 4), method="bicubic"), lambda s: (9, 4, s[2])),
    Case("RandomFlip", lambda: fx.RandomFlip(rngs=rngs())),
    Case("RandomFlip-vertical", lambda: fx.RandomFlip("vertical", p=0.7, rngs=rngs())),
    Case("RandomRotation", lambda: fx.RandomRotation(40, rngs=rngs())),
    Case(
        "RandomAffine",
        lambda: fx.RandomAffine(
            20, translate=(0.2, 0.1), scale=(0.8, 1.2), shear=(-10, 10, -5, 5), rngs=rngs()
        ),
    ),
    Case(
        "Pad",
        lambda: fx.Pad((1, 2, 3, 0), padding_mode="reflect"),
        lambda s: (s[0] + 2, s[1] + 4, s[2]),
    ),
    # Colour.
    Case("Brightness", lambda: fx.Brightness(0.5, learnable=True, rngs=rngs()), unit=True),
    Case("Contrast", lambda: fx.Contrast(0.5, learnable=True, rngs=rngs()), unit=True),
    Case("Saturation", lambda: fx.Saturation(0.5, learnable=True, rngs=rngs()), unit=True),
    Case("Hue", lambda: fx.Hue(0.2, learnable=True, rngs=rngs()), unit=True),
    Case("Sharpness", lambda: fx.Sharpness((0.2, 2.0), rngs=rngs()), unit=True),
    Case(
        "ColorJitter",
        lambda: fx.ColorJitter(0.4, 0.4, 0.4, 0.1, learnable=True, rngs=rngs()),
        unit=True,
    ),
    Case("Grayscale", lambda: fx.Grayscale(), lambda s: (s[0], s[1], 1), unit=True),
    Case("Grayscale-3", lambda: fx.Grayscale(3), unit=True),
    Case("RandomGrayscale", lambda: fx.RandomGrayscale(0.5, rngs=rngs()), unit=True),
    Case("Solarize", lambda: fx.Solarize(0.4), unit=True),
    Case("Posterize", lambda: fx.Posterize(3), unit=True),
    Case("Equalize", lambda: fx.Equalize(), unit=True),
    Case("AutoContrast", lambda: fx.AutoContrast(), unit=True),
    Case("Invert", lambda: fx.Invert(), unit=True),
    Case("GaussianBlur", lambda: fx.GaussianBlur(5, sigma=(0.5, 2.0), rngs=rngs()), unit=True),
    Case("GaussianNoise", lambda: fx.GaussianNoise(0.1, learnable=True, rngs=rngs()), unit=True),
    Case("BrightnessContrast", lambda: fx.BrightnessContrast(0.1, 1.2), out_dtype="float32"),
    # Occlusion.
    Case("RandomErasing", lambda: fx.RandomErasing(0.8, value="random", rngs=rngs()), unit=True),
    Case("Cutout", lambda: fx.Cutout(3, rngs=rngs()), unit=True),
    # Policies.
    Case("RandAugment", lambda: fx.RandAugment(2, 15, rngs=rngs()), unit=True),
    Case("TrivialAugment", lambda: fx.TrivialAugment(rngs=rngs()), unit=True),
    # Dtype and scale.
    Case("ToFloat", lambda: fx.ToFloat(), out_dtype="float32"),
    Case(
        "Normalize",
        lambda: fx.Normalize((120.0, 110.0, 100.0), (60.0, 50.0, 40.0)),
        out_dtype="float32",
    ),
    Case("RunningNormalize", lambda: fx.RunningNormalize(3), out_dtype="float32"),
    # Labels.
    Case("OneHot", lambda: fx.OneHot(CLASSES), lambda s: (CLASSES,), "float32", kind="label"),
    Case("LabelSmoothing", lambda: fx.LabelSmoothing(0.2), kind="onehot"),
    # Composition.
    Case(
        "Sequential",
        lambda: fx.Sequential(
            [fx.RandomCrop(5, rngs=rngs()), fx.Brightness(0.5, learnable=True, rngs=rngs())]
        ),
        sq(5),
        min_size=5,
    ),
    Case("RandomApply", lambda: fx.RandomApply([fx.Invert(), fx.Solarize(0.3)], 0.5, rngs=rngs())),
    Case(
        "RandomChoice",
        lambda: fx.RandomChoice(
            [fx.Invert(), fx.RandomFlip(p=1.0, rngs=rngs()), fx.Contrast(0.5, rngs=rngs())],
            weights=[1, 2, 1],
            rngs=rngs(),
        ),
    ),
    Case("OneOf", lambda: fx.OneOf([fx.Equalize(), fx.AutoContrast()], rngs=rngs())),
]
IDS = [c.name for c in CASES]

NOT_DIFFERENTIABLE = {
    fx.Posterize,  # piecewise constant
    fx.Equalize,  # lookup table
    fx.RandAugment,  # contains Posterize and Equalize
    fx.TrivialAugment,  # contains Posterize and Equalize
    fx.OneHot,  # integer input
}


def field_of(case):
    return "image" if case.kind == "image" else "label"


def batch_of(case, dtype=np.uint8, shape=SHAPE, seed=0):
    """N records; for images the last two are all-zero and all-max (edge inputs)."""
    rng = np.random.default_rng(seed)
    if case.kind == "label":
        return {"label": jnp.asarray(rng.integers(0, CLASSES, N), jnp.int32), "id": jnp.arange(N)}
    if case.kind == "onehot":
        return {"label": jax.nn.one_hot(rng.integers(0, CLASSES, N), CLASSES), "id": jnp.arange(N)}
    x = rng.integers(0, 256, (N, *shape)).astype(np.float64)
    x[-2], x[-1] = 0, 255
    x = x.astype(np.uint8) if dtype == np.uint8 else (x / 255.0).astype(dtype)
    return {"image": jnp.asarray(x), "id": jnp.arange(N)}


def run(op, batch, epoch=0, indices=None):
    indices = np.arange(N) if indices is None else indices
    return fx.apply_operators(op, batch, indices=indices, epoch=epoch)


def check_output(case, batch, out, dtype):
    f = field_of(case)
    in_shape = tuple(batch[f].shape[1:])
    assert out[f].shape == (N, *case.out_shape(in_shape))
    expected = np.float32 if case.out_dtype == "float32" or case.kind == "label" else dtype
    assert out[f].dtype == expected
    np.testing.assert_array_equal(out["id"], batch["id"])  # other fields pass through
    assert np.isfinite(np.asarray(out[f], np.float64)).all()  # incl. all-zero / all-max
    if case.unit and expected == np.float32:
        assert float(out[f].min()) >= 0.0 and float(out[f].max()) <= 1.0


# A few operators, one of each mechanism (switch, argsort order, scatter, box draw), get
# the one-record check (one more compilation each): jit of the operator on one record,
# without vmap, gives that record's row of the batch.
PER_RECORD = ["RandomResizedCrop", "ColorJitter", "Equalize", "RandomChoice", "RandomErasing"]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_operator_meets_the_contract(case):
    """feedax.testing.check_operator on uint8 records (float labels for label operators),
    edge records included; then the output shape, dtype and range this operator promises."""
    dtype = np.uint8 if case.kind == "image" else np.float32
    batch = batch_of(case, dtype)
    testing.check_operator(
        case.make, batch, field=field_of(case), one_record=case.name in PER_RECORD, gradients=False
    )
    check_output(case, batch, run(case.make(), batch), dtype)


IMAGE_CASES = [c for c in CASES if c.kind == "image"]


@pytest.mark.parametrize(
    "case", [c for c in IMAGE_CASES if type(c.make()) in NOT_DIFFERENTIABLE], ids=lambda c: c.name
)
def test_float_input_of_odd_size(case):
    """(Differentiable operators get this check in the gradient test, from one compile.)"""
    batch = batch_of(case, np.float32, shape=ODD)
    check_output(case, batch, run(case.make(), batch), np.float32)


@pytest.mark.parametrize("case", IMAGE_CASES, ids=lambda c: c.name)
def test_1x1_images_stay_finite_or_are_rejected(case):
    batch = batch_of(case, np.float32, shape=(1, 1, 3))
    if case.min_size > 1:
        with pytest.raises(fx.OperatorError, match="larger than"):
            run(case.make(), batch)
        return
    check_output(case, batch, run(case.make(), batch), np.float32)


@pytest.mark.parametrize(
    "case", [c for c in CASES if type(c.make()) not in NOT_DIFFERENTIABLE], ids=lambda c: c.name
)
def test_float_input_of_odd_size_and_gradients(case):
    """The contract again on float records of odd size, with finite non-zero gradients."""
    op = case.make()
    assert op.differentiable
    batch = batch_of(case, np.float32, shape=ODD)
    testing.check_operator(case.make, batch, field=field_of(case), one_record=False, gradients=True)
    check_output(case, batch, run(op, batch), np.float32)


def test_non_differentiable_operators_say_so():
    for case in CASES:
        op = case.make()
        assert op.differentiable == (type(op) not in NOT_DIFFERENTIABLE), case.name


# ---------------------------------------------------------------------------- batch operators

BATCH_CASES = {
    "MixUp": lambda: fx.MixUp(0.4, rngs=rngs()),
    "CutMix": lambda: fx.CutMix(1.0, rngs=rngs()),
}


def mix_batch(dtype=np.uint8, shape=SHAPE):
    b = batch_of(CASES[0], dtype, shape)
    b["label"] = jax.nn.one_hot(jnp.arange(N) % CLASSES, CLASSES)
    return b


@pytest.mark.parametrize("name", BATCH_CASES)
def test_batch_ops_contract(name):
    batch = mix_batch()
    testing.check_batch_operator(BATCH_CASES[name], batch, gradients=False)
    out = run(BATCH_CASES[name](), batch)
    np.testing.assert_allclose(out["label"].sum(axis=1), 1.0, rtol=1e-6)
    assert not np.array_equal(out["label"], batch["label"]), "labels must be mixed"


@pytest.mark.parametrize("name", BATCH_CASES)
def test_batch_ops_float_odd_size_and_gradients(name):
    assert BATCH_CASES[name]().differentiable
    testing.check_batch_operator(BATCH_CASES[name], mix_batch(np.float32, ODD), gradients=True)


@pytest.mark.parametrize("name", BATCH_CASES)
def test_batch_ops_1x1_images(name):
    out = run(BATCH_CASES[name](), mix_batch(np.float32, (1, 1, 3)))
    assert out["image"].shape == (N, 1, 1, 3)
    assert np.isfinite(np.asarray(out["image"])).all()


@pytest.mark.parametrize("name", BATCH_CASES)
def test_batch_ops_need_one_hot_labels(name):
    batch = {**mix_batch(), "label": jnp.arange(N)}
    with pytest.raises(fx.OperatorError, match=r"Put fx\.OneHot"):
        run(BATCH_CASES[name](), batch)


# ---------------------------------------------------------------------------- the lists


def public_operator_types():
    return {
        obj
        for name in fx.__all__
        if inspect.isclass(obj := getattr(fx, name))
        and issubclass(obj, fx.Operator | fx.BatchOperator)
        and not inspect.isabstract(obj)
    }


def test_every_public_operator_is_in_the_suite():
    covered = {type(c.make()) for c in CASES} | {type(m()) for m in BATCH_CASES.values()}
    missing = {t.__name__ for t in public_operator_types()} - {t.__name__ for t in covered}
    assert not missing, f"add these operators to CASES / BATCH_CASES: {sorted(missing)}"


def test_random_operators_take_keyword_only_rngs_and_hold_only_traced_state():
    allowed = (nnx.RngKey, nnx.Param, nnx.BatchStat)
    for t in public_operator_types():
        params = inspect.signature(t.__init__).parameters
        if issubclass(t, fx.RandomOperator) or "rngs" in params:
            assert params["rngs"].kind is inspect.Parameter.KEYWORD_ONLY, t.__name__
    for case in CASES:
        op = case.make()
        for path, var in nnx.iter_graph(op):
            if isinstance(var, nnx.Variable):
                assert isinstance(var, allowed), (case.name, path, type(var))
        # Hyperparameters are plain attributes: no Param unless asked to learn.
        if not getattr(op, "learnable", False) and not isinstance(
            op, fx.BrightnessContrast | fx.Sequential
        ):
            assert not jax.tree.leaves(nnx.state(op, nnx.Param)), case.name
