"""Label operators: OneHot and LabelSmoothing (default field ``"label"``)."""

from __future__ import annotations

from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from feedax._context import RecordContext
from feedax._errors import OperatorError
from feedax._operator import Operator
from feedax._ops._common import check_int, check_number, fail


class OneHot(Operator):
    """An integer class label -> a one-hot float vector of length ``num_classes``.

    A pipeline checks every batch's labels on the host (one comparison per row) and
    raises on one outside ``[0, num_classes)``, naming the record (``jax.nn.one_hot``
    would give it an all-zero vector). MixUp, CutMix and LabelSmoothing need one-hot
    labels: put ``OneHot`` before them.

    Args:
      num_classes: the number of classes.
      dtype: the float dtype of the output.
      field: the record field holding the label (a scalar per record).

    Example:
      >>> import jax.numpy as jnp, feedax as fx
      >>> ctx = fx.RecordContext(jnp.int32(0), jnp.int32(0), jnp.bool_(True))
      >>> fx.OneHot(4)({"label": jnp.int32(2)}, ctx)["label"].tolist()
      [0.0, 0.0, 1.0, 0.0]
    """

    ranks: ClassVar[tuple[int, ...]] = (0,)
    kinds: ClassVar[tuple[str, ...]] = ("integer", "uint8", "uint16", "int16")
    differentiable: ClassVar[bool] = False

    def __init__(self, num_classes: int, *, dtype: Any = jnp.float32, field: str = "label"):
        super().__init__(field=field)
        self.num_classes = check_int(type(self).__name__, "num_classes", num_classes, 1)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise fail(type(self).__name__, "dtype", "a float dtype", dtype)
        self.dtype = jnp.dtype(dtype)

    def apply(self, x: jax.Array, ctx: RecordContext) -> jax.Array:
        """One-hot encodes one label."""
        return jax.nn.one_hot(x, self.num_classes, dtype=self.dtype)


class LabelSmoothing(Operator):
    """``(1 - epsilon) * y + epsilon / K`` on a one-hot (or soft) label of ``K`` classes.

    Args:
      epsilon: the mass moved to the uniform distribution, in [0, 1].
      field: the record field holding the float label vector (use OneHot first).

    Example:
      >>> import jax.numpy as jnp, feedax as fx
      >>> ctx = fx.RecordContext(jnp.int32(0), jnp.int32(0), jnp.bool_(True))
      >>> fx.LabelSmoothing(0.2)({"label": jnp.array([0.0, 1.0])}, ctx)["label"].tolist()
      [0.10000000149011612, 0.9000000357627869]
    """

    ranks: ClassVar[tuple[int, ...]] = (1,)
    kinds: ClassVar[tuple[str, ...]] = ("float",)

    def __init__(self, epsilon: float = 0.1, *, field: str = "label"):
        super().__init__(field=field)
        self.epsilon = check_number(type(self).__name__, "epsilon", epsilon, 0.0, 1.0)

    def check(self, x: jax.Array) -> None:
        if x.ndim != 1 or not jnp.issubdtype(x.dtype, jnp.floating):
            raise OperatorError(
                f"{type(self).__name__}: field {self.field!r} must be a float vector of class "
                f"probabilities per record, got shape {tuple(x.shape)} and dtype {x.dtype}. Put "
                "fx.OneHot(num_classes) before it."
            )

    def apply(self, x: jax.Array, ctx: RecordContext) -> jax.Array:
        """Smooths one label vector."""
        return (1.0 - self.epsilon) * x + self.epsilon / x.shape[-1]
