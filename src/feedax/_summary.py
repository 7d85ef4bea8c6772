"""``Pipeline.summary()``: a table of the stages, what each outputs, and what state each keeps."""

from __future__ import annotations

import dataclasses
import textwrap
from typing import Any

import jax
import numpy as np
from flax import nnx

from feedax._apply import traced_spec
from feedax._errors import PipelineError
from feedax._source import spec_text


@dataclasses.dataclass(frozen=True)
class StageSummary:
    """One stage of a pipeline, as :meth:`Pipeline.summary` shows it.

    Attributes:
      stage: where it sits: ``"source"``, ``"host"``, ``"pack"``, ``"operators[i]"``.
      name: what it is (its class, or the host function's name).
      fields: field -> shape and dtype of what it outputs (per record for the source and
        the host stage; per batch, with the batch axis, from the pack on).
      random: whether it draws random numbers (and so is the identity, or its central
        window, in eval mode).
      learnable: how many ``nnx.Param`` values it holds (what ``nnx.grad`` reaches).
      state_bytes: bytes of its ``nnx.state`` (RNG keys, statistics, parameters).
    """

    stage: str
    name: str
    fields: dict[str, Any]
    random: bool = False
    learnable: int = 0
    state_bytes: int = 0


@dataclasses.dataclass(frozen=True)
class Summary:
    """What :meth:`Pipeline.summary` returns; ``print`` it for the table.

    Attributes:
      source: the source's repr line (name, records, location).
      batch_size: the global batch.
      stages: one :class:`StageSummary` per stage, in order.
      batch: field -> shape and dtype of a delivered batch (``pipe.output_spec``).
      state_bytes: bytes of the whole ``nnx.state(pipe)`` (what a checkpoint holds).
    """

    source: str
    batch_size: int
    stages: tuple[StageSummary, ...]
    batch: dict[str, jax.ShapeDtypeStruct]
    state_bytes: int

    def __str__(self) -> str:
        header = ("stage", "module", "output", "random", "params", "state")
        rows = [header]
        for s in self.stages:
            texts = [f"{k}: {_spec_text(v)}" for k, v in s.fields.items()] or ["-"]
            random = "yes" if s.random else ""
            params = str(s.learnable) if s.learnable else ""
            size = _bytes(s.state_bytes) if s.state_bytes else ""
            rows.append((s.stage, s.name, texts[0], random, params, size))
            rows += [("", "", t, "", "", "") for t in texts[1:]]
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        lines = [f"Pipeline over {self.source}, batch {self.batch_size}"]
        rule = "  ".join("-" * w for w in widths)
        for i, r in enumerate(rows):
            lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
            if i == 0:
                lines.append(rule)
        lines.append(rule)
        batch = ", ".join(f"{k}: {_spec_text(v)}" for k, v in self.batch.items())
        lines.append(textwrap.fill(f"batch: {batch}", 90, subsequent_indent="  "))
        lines.append(
            f"state: {_bytes(self.state_bytes)} (nnx.state(pipe): what a checkpoint holds)"
        )
        return "\n".join(lines)


def summarize(pipe: Any) -> Summary:
    """The :class:`Summary` of a pipeline (traced only: nothing is read past record 0)."""
    source, host, pack = pipe.source, pipe.host, pipe.pack
    stages = [StageSummary("source", type(source).__name__, dict(source.element_spec))]
    spec = dict(pipe._input_spec)
    if host is not None:
        fields = dict(spec) if pack is None else {f: "ragged" for f in pack.fields}
        stages.append(StageSummary("host", host.name, fields, random=host.stream_key is not None))
    batch = _batched(spec, pipe.batch_size)
    if pack is not None:
        sizes = dict(zip(pack.fields, pack.sizes, strict=True))
        stages.append(StageSummary("pack", f"Pack({sizes}, {pack.method})", batch))
    for i, op in enumerate(pipe.operators):
        batch = traced_spec(nnx.List(list(pipe.operators)[: i + 1]), spec, pipe.batch_size)
        stages.append(
            StageSummary(
                f"operators[{i}]",
                type(op).__name__,
                batch,
                random=bool(_size(nnx.state(op, nnx.RngState))),
                learnable=_count(nnx.state(op, nnx.Param)),
                state_bytes=_size(nnx.state(op)),
            )
        )
    name = f"{type(source).__name__} {source.name!r}"
    where = f"{len(source)} records, {source.location}" if hasattr(source, "location") else ""
    return Summary(
        f"{name} ({where})" if where else name,
        pipe.batch_size,
        tuple(stages),
        pipe.output_spec,
        _size(nnx.state(pipe)),
    )


def _batched(spec: dict[str, Any], b: int) -> dict[str, jax.ShapeDtypeStruct]:
    return {k: jax.ShapeDtypeStruct((b, *v.shape), v.dtype) for k, v in spec.items()}


def _leaves(state: Any) -> list[Any]:
    return [np.asarray(jax.random.key_data(x)) if _is_key(x) else x for x in jax.tree.leaves(state)]


def _is_key(x: Any) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _size(state: Any) -> int:
    return int(sum(np.asarray(x).nbytes for x in _leaves(state)))


def _count(state: Any) -> int:
    return int(sum(np.size(x) for x in _leaves(state)))


def _spec_text(spec: Any) -> str:
    return spec if isinstance(spec, str) else spec_text(spec)


def _bytes(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def refuse_tabulate(pipe: Any) -> None:
    """Undoes ``nnx.tabulate``'s method patches, then raises: the pipeline stays usable.

    ``nnx.tabulate`` (Flax 0.12) replaces the public methods of every module class it meets
    and restores them only when its trace succeeds; applying a pipeline's operators builds
    new modules it never met, so the trace would fail and leave those classes patched for
    the rest of the process.
    """
    for node in [pipe, *(n for _, n in nnx.iter_graph(pipe))]:
        cls = type(node)
        for name, value in list(vars(cls).items()):
            code = getattr(value, "__code__", None)
            original = getattr(value, "__wrapped__", None)
            if original is not None and code and code.co_filename.endswith("summary.py"):
                setattr(cls, name, original)
    raise PipelineError(
        "nnx.tabulate cannot trace a feedax Pipeline (it rewrites the methods of the module "
        "classes it meets, and applying the operators builds modules it has not met). Use "
        "print(pipe.summary()) for the table of stages, shapes, randomness and state; the "
        "pipeline is unchanged."
    )
