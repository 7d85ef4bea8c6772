"""RandAugment and TrivialAugment: torchvision's tables, each op equal to its function.

References: torchvision's magnitude formulas (written out here), and each policy op at a
fixed magnitude against the functional op it stands for (itself checked against PIL in
test_ops_color / test_ops_geometry), max abs error 1e-6 on float images.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from ops_reference import (
    china,
    jit,
    quick_compiles,  # noqa: F401  (fixture)
    run,
)

import feedax as fx
from feedax import functional as F
from feedax._ops.policy import OPS, SIGNED, magnitude_table, policy_op

X = china(32).astype(np.float32) / 255.0


def test_magnitude_tables_are_torchvisions():
    rand = magnitude_table(False, 31, (32, 48, 3))
    column = dict(zip(OPS, rand[:, 9], strict=True))
    assert np.isclose(column["ShearX"], 0.3 * 9 / 30) and np.isclose(column["Rotate"], 9.0)
    assert np.isclose(column["TranslateX"], 150 / 331 * 48 * 9 / 30)
    assert np.isclose(column["TranslateY"], 150 / 331 * 32 * 9 / 30)
    assert np.isclose(column["Brightness"], 0.9 * 9 / 30) and np.isclose(column["Color"], 0.27)
    assert column["Posterize"] == 8 - round(9 / 7.5) and np.isclose(column["Solarize"], 1 - 9 / 30)
    assert column["Identity"] == column["AutoContrast"] == column["Equalize"] == 0
    wide = dict(zip(OPS, magnitude_table(True, 31, (32, 48, 3))[:, 30], strict=True))
    assert np.isclose(wide["ShearX"], 0.99) and np.isclose(wide["TranslateX"], 32.0)
    assert np.isclose(wide["Rotate"], 135.0) and wide["Posterize"] == 2 and wide["Solarize"] == 0
    assert SIGNED.tolist() == [op in OPS[1:10] for op in OPS]


def expected(op, m):
    shear = float(np.degrees(np.arctan(m)))
    return {
        "Identity": lambda: X,
        "ShearX": lambda: jit(
            F.affine, X, 0.0, (0.0, 0.0), 1.0, (shear, 0.0), interpolation="nearest"
        ),
        "ShearY": lambda: jit(
            F.affine, X, 0.0, (0.0, 0.0), 1.0, (0.0, shear), interpolation="nearest"
        ),
        "TranslateX": lambda: jit(F.affine, X, 0.0, (float(int(m)), 0.0), interpolation="nearest"),
        "TranslateY": lambda: jit(F.affine, X, 0.0, (0.0, float(int(m))), interpolation="nearest"),
        "Rotate": lambda: jit(F.rotate, X, m, interpolation="nearest"),
        "Brightness": lambda: jit(F.adjust_brightness, X, 1 + m),
        "Color": lambda: jit(F.adjust_saturation, X, 1 + m),
        "Contrast": lambda: jit(F.adjust_contrast, X, 1 + m),
        "Sharpness": lambda: jit(F.adjust_sharpness, X, 1 + m),
        "Posterize": lambda: jit(F.posterize, X, int(m)),
        "Solarize": lambda: jit(F.solarize, X, m),
        "AutoContrast": lambda: jit(F.autocontrast, X),
        "Equalize": lambda: jit(F.equalize, X),
    }[op]()


def test_each_policy_op_is_its_function():
    magnitudes = {"Posterize": 3.0, "Solarize": 0.4, "TranslateX": -5.7, "TranslateY": 6.2}
    ops = jax.jit(jax.vmap(lambda i, m: policy_op(jnp.asarray(X), i, m)))
    ms = np.array([magnitudes.get(op, -0.35 if SIGNED[i] else 0.0) for i, op in enumerate(OPS)])
    ms[OPS.index("Rotate")] = 25.0
    out = np.asarray(ops(jnp.arange(len(OPS)), jnp.asarray(ms, jnp.float32)))
    for i, op in enumerate(OPS):
        np.testing.assert_allclose(out[i], expected(op, float(ms[i])), atol=1e-6, err_msg=op)


@pytest.mark.parametrize(
    "make",
    [
        lambda: fx.RandAugment(num_ops=2, magnitude=9, rngs=nnx.Rngs(augment=0)),
        lambda: fx.TrivialAugment(rngs=nnx.Rngs(augment=0)),
    ],
    ids=["RandAugment", "TrivialAugment"],
)
def test_policies_choose_varied_ops_per_record(make):
    n = 48
    x = jnp.broadcast_to(jnp.asarray(china(32)), (n, 32, 32, 3))
    op = make()
    out = np.asarray(run(op, {"image": x})["image"])
    assert out.dtype == np.uint8
    distinct = {o.tobytes() for o in out}
    assert len(distinct) > n // 2
    unchanged = np.mean([np.array_equal(o, china(32)) for o in out])
    assert unchanged < 0.3  # Identity (1/14 per op) and no-op magnitudes are rare
