"""Per-stage timing of a pipeline: where the time per batch goes, and the bottleneck."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import jax
import numpy as np
from flax import nnx

from feedax._errors import PipelineError

STAGES = ("host read", "transfer", "device compute", "consumer wait")


@dataclasses.dataclass(frozen=True)
class Profile:
    """Median milliseconds per batch for each stage, and the slowest pipeline stage.

    Attributes:
      ms_per_batch: stage -> median milliseconds per batch (see ``STAGES``).
      records_per_s: records per second over the profiled batches.
      bottleneck: the pipeline stage that takes longest per batch.
      batches: how many batches were timed.
    """

    ms_per_batch: dict[str, float]
    records_per_s: float
    bottleneck: str
    batches: int

    def __str__(self) -> str:
        rate = f"{self.records_per_s:,.0f} records/s"
        lines = [f"feedax profile over {self.batches} batches ({rate})"]
        for stage, ms in self.ms_per_batch.items():
            mark = "  <- bottleneck" if stage == self.bottleneck else ""
            lines.append(f"  {stage:<15} {ms:9.3f} ms/batch{mark}")
        if self.ms_per_batch["consumer wait"] < 0.1 * max(self.ms_per_batch.values()):
            lines.append("  the consumer rarely waits: the pipeline keeps ahead of it")
        return "\n".join(lines)


class StageTimes:
    """Collects per-batch stage times during a profiled iteration."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        """Forgets what was collected (e.g. the compilation batch)."""
        self.rows: list[tuple[float, float, float, float]] = []
        self.start = time.perf_counter()

    def add(self, wait: float, host: Any, received: float, batch: Any) -> None:
        """Records one batch; waits for its device work to finish to time it."""
        jax.block_until_ready(batch)
        device = time.perf_counter() - received
        self.rows.append((host.read, host.transfer, device, wait))

    def summary(self, batch_size: int) -> Profile:
        """The medians, throughput and bottleneck of what was collected."""
        elapsed = time.perf_counter() - self.start
        medians = np.median(np.asarray(self.rows), axis=0) * 1e3
        ms = {stage: float(m) for stage, m in zip(STAGES, medians, strict=True)}
        bottleneck = max(STAGES[:3], key=lambda stage: ms[stage])
        return Profile(ms, len(self.rows) * batch_size / elapsed, bottleneck, len(self.rows))


def run_profile(pipe: Any, n_batches: int, *, verbose: bool) -> Profile:
    """``pipe.profile``: times ``n_batches`` batches after a warm-up, then restores the state."""
    if not isinstance(n_batches, int) or n_batches < 1:
        raise PipelineError(f"Pipeline.profile: n_batches must be >= 1, got {n_batches!r}.")
    saved = nnx.clone(nnx.state(pipe))
    times = StageTimes()
    try:
        stream = pipe._iterate(single_epoch=False, times=times)
        jax.block_until_ready(next(stream))  # compile outside the measurement
        times.clear()
        for _ in range(n_batches):
            next(stream)
        stream.close()
    finally:
        nnx.update(pipe, saved)
    profile = times.summary(pipe.batch_size)
    if verbose:
        print(profile)
    return profile
