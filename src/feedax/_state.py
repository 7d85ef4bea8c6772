"""The pipeline's own NNX Variable types: its cursor, its signature, a mixture's schedule."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np
from flax import nnx
from flax.nnx import reprlib

from feedax._errors import StateMismatchError


class Cursor(nnx.Variable):
    """Where a pipeline is: ``[epoch, step, position, offset]``, int64 of shape ``(4,)``.

    ``step`` counts the batches of the epoch already handed to the consumer; ``position``
    is the order position of the next record to consider, global over all processes (so
    a run can resume on another number of hosts), with filtered and skipped records
    before it consumed; for packed rows it is where the planning window of the next row
    starts, and ``offset`` counts that window's rows already handed over (else 0). It
    advances when a batch is handed over, not when it is prefetched.
    """

    def __nnx_repr__(self) -> Iterator[reprlib.Object | reprlib.Attr]:
        # Four named integers read better than NNX's Array(shape=(4,)) placeholder.
        yield reprlib.Object(type=type(self).__name__, same_line=True)
        value = self.get_value()
        names = ("epoch", "step", "position", "offset")
        if not isinstance(value, np.ndarray | jax.Array) or value.shape != (len(names),):
            yield reprlib.Attr("value", value)  # a placeholder (NNX's repr of a module)
            return
        value = np.asarray(value).tolist()
        for name, v in zip(names, value, strict=True):
            yield reprlib.Attr(name, v)


class TruncatedTokens(nnx.Variable):
    """Tokens cut off sequences longer than a row (``Pack(long="truncate")``), so far."""


class MixSchedule(nnx.Variable):
    """The schedule of a :class:`feedax.Mix`: where it started and with what weights.

    An int64 array ``[origin epoch, origin position, slots per epoch, weight bits...,
    records taken per source at the origin...]``. A pipeline whose Mix has other weights
    than the schedule it loads starts a new schedule at its cursor, so each source
    continues exactly where it was.
    """


COMPONENTS = {
    "source": "the source (its type or length)",
    "fields": "the record fields, shapes or dtypes",
    "order": "the seed or shuffle",
    "batching": "batch_size, drop_remainder or the packing",
    "host": "the host stage",
    "operators": "the operators or their parameters",
    "filter": "the filter",
    "errors": "on_error",
    "mixture": "the mixture's sources (names or lengths)",
    "window": "shuffle_window",
}
"""What a pipeline's stream depends on, each hashed into one word of its signature."""


def signature(parts: dict[str, Any]) -> np.ndarray:
    """One 31-bit hash per component of ``COMPONENTS`` (``parts`` holds a value for each).

    int32 words, so the signature survives NNX transforms (``nnx.jit``, ``nnx.grad``),
    which hand state back as 32-bit arrays unless JAX's x64 mode is on.
    """
    words = []
    for name in COMPONENTS:
        digest = hashlib.blake2b(repr(parts[name]).encode(), digest_size=4).digest()
        words.append(int.from_bytes(digest, "little") >> 1)
    return np.asarray(words, np.int32)


class Signature(nnx.Variable):
    """Hashes of what defines a pipeline's stream (see ``COMPONENTS``).

    It travels in ``nnx.state(pipeline)``; loading a state whose signature differs raises
    :class:`feedax.StateMismatchError` naming what differs, in ``nnx.update`` itself,
    before a single wrong batch is produced. The pipeline names this variable
    ``blueprint``, which NNX visits before ``cursor``, so a rejected state changes nothing.
    """

    def update_from_state(self, variable_state: nnx.Variable[Any]) -> None:
        """Loads ``variable_state`` if it is this pipeline's signature; else raises."""
        _check(self.get_raw_value(), variable_state.get_raw_value())
        super().update_from_state(variable_state)

    def set_raw_value(self, value: Any, **kwargs: Any) -> None:
        """Sets ``value`` if it is this pipeline's signature (or none was set yet)."""
        if hasattr(self, "_raw_value"):
            _check(self.get_raw_value(), value)
        super().set_raw_value(value, **kwargs)


def _check(expected: Any, got: Any) -> None:
    if isinstance(expected, jax.core.Tracer) or isinstance(got, jax.core.Tracer):
        return  # inside a transform (nnx.jit, nnx.grad): NNX moves the same state in and out
    expected, got = np.asarray(expected, np.int64), np.asarray(got, np.int64)
    if expected.shape == got.shape and (expected == got).all():
        return
    if expected.shape != got.shape:
        what = "its signature has another form (a state of another feedax version?)"
    else:
        names = [COMPONENTS[n] for n, a, b in zip(COMPONENTS, expected, got, strict=True) if a != b]
        what = "it differs in " + "; ".join(names)
    raise StateMismatchError(
        f"Pipeline: the state being loaded was taken from a different pipeline: {what}. "
        "Restore it into a pipeline built like the one that saved it (same source, fields, "
        "seed, shuffle, batch_size, drop_remainder, host stage, operators, filter, on_error); "
        "a Mix may change its weights."
    )


def operator_fingerprint(operators: nnx.Module) -> list[tuple[Any, ...]]:
    """Each module's path, type and hyperparameters (plain attributes), modes left out."""
    from feedax._modes import MODE_ATTRIBUTES

    plain = (int, float, str, bool, tuple, type(None))
    out = []
    for path, module in nnx.iter_modules(operators):
        params = sorted(
            (k, v)
            for k, v in vars(module).items()
            if not k.startswith("_") and k not in MODE_ATTRIBUTES and isinstance(v, plain)
        )
        out.append((path, type(module).__qualname__, params))
    return out


def components(pipe: Any, spec: dict[str, jax.ShapeDtypeStruct]) -> dict[str, Any]:
    """What a pipeline's stream depends on: the parts its :class:`Signature` hashes.

    Two pipelines whose components differ give different streams, so a state saved by
    one must not be loaded into the other.
    """
    from feedax._sources.mix import Mix
    from feedax._stream import StreamSource

    source = pipe.source
    stream = isinstance(source, StreamSource)
    return {
        "source": (type(source).__qualname__, -1 if stream else len(source)),
        "fields": sorted((k, v.shape, str(v.dtype)) for k, v in spec.items()),
        "order": (pipe.seed, pipe.shuffle),
        "batching": (
            pipe.batch_size,
            pipe.drop_remainder,
            None if pipe.pack is None else pipe.pack.config(),
        ),
        "host": None if pipe.host is None else pipe.host.name,
        "operators": operator_fingerprint(pipe.operators),
        "filter": None if pipe.filter is None else (pipe.filter.name, pipe.filter.columns),
        "errors": (pipe.on_error, pipe.max_skip_fraction),
        "mixture": [(s.name, len(s)) for s in source.sources] if isinstance(source, Mix) else None,
        "window": pipe.shuffle_window,
    }
