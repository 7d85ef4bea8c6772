"""One benchmark measurement, run in a fresh process by the harness.

Usage::

    python -m benchmarks._worker VARIANT WORKLOAD JSON_ARGS

``JSON_ARGS`` holds ``config`` (the workload config as a dict), ``data_dir``, ``batches``
and ``warmup``. The result is printed on stdout as one line starting with
:data:`RESULT_MARKER` followed by a JSON object.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
import traceback
from typing import Any

RESULT_MARKER = "FEEDAX_BENCH_RESULT "


def _check_batch(batch: Any, batch_size: int) -> dict[str, list[Any]]:
    """Checks a batch is a dict of ``jax.Array`` with ``batch_size`` rows.

    Returns:
        ``{key: [shape, dtype]}`` of the batch.

    Raises:
        TypeError: If the batch is not a dict of ``jax.Array``.
        ValueError: If a leaf does not have ``batch_size`` rows.
    """
    import jax

    if not isinstance(batch, dict):
        raise TypeError(f"a batch must be a dict of jax.Array, got {type(batch).__name__}")
    spec: dict[str, list[Any]] = {}
    for key, leaf in batch.items():
        if not isinstance(leaf, jax.Array):
            raise TypeError(f"batch[{key!r}] is a {type(leaf).__name__}, not a jax.Array")
        if leaf.shape[:1] != (batch_size,):
            raise ValueError(f"batch[{key!r}] has shape {leaf.shape}; expected {batch_size} rows")
        spec[key] = [list(leaf.shape), str(leaf.dtype)]
    return spec


def measure(variant: str, workload: str, args: dict[str, Any]) -> dict[str, Any]:
    """Builds the variant's pipeline and times it.

    Times: ``construct_s`` (building the iterator), ``first_batch_s`` (construction,
    compilation and the first batch ready on device), then ``warmup`` untimed batches, then
    ``batches`` timed batches, each followed by ``jax.block_until_ready``.

    Args:
        variant: Variant name (see :mod:`benchmarks._variants`).
        workload: Workload name (``w1``...).
        args: ``config``, ``data_dir``, ``batches``, ``warmup``.

    Returns:
        A JSON-serialisable result with ``status`` one of ``ok``, ``n/a``,
        ``not installed`` or ``error`` (with ``error`` text).
    """
    from benchmarks._config import config_from_dict, get_workload
    from benchmarks._data import Bundle
    from benchmarks._variants import get_variant, load_function

    result: dict[str, Any] = {"variant": variant, "workload": workload, "status": "error"}
    it: Any = None
    try:
        cfg = config_from_dict(workload, args["config"])
        batches, warmup = int(args["batches"]), int(args["warmup"])
        try:
            fn = load_function(variant, workload)
        except ModuleNotFoundError as e:
            # Only the peer library itself missing is "not installed"; any other import
            # failure is a bug and reported as an error.
            if (e.name or "").split(".")[0] != get_variant(variant).requires:
                raise
            return {**result, "status": "not installed", "error": str(e)}
        t = time.perf_counter()
        data = Bundle(args["data_dir"])
        data.load_all()
        result["load_s"] = time.perf_counter() - t

        import jax

        t0 = time.perf_counter()
        try:
            it = fn(data, cfg)
        except NotImplementedError as e:
            return {**result, "status": "n/a", "error": str(e)}
        result["construct_s"] = time.perf_counter() - t0
        first = jax.block_until_ready(next(it))
        result["first_batch_s"] = time.perf_counter() - t0
        result["spec"] = _check_batch(first, cfg.batch_size)
        result["devices"] = sorted({str(d) for leaf in first.values() for d in leaf.devices()})
        for _ in range(warmup):
            jax.block_until_ready(next(it))
        packed: list[Any] = []  # the timed batches' segment ids: the fill, computed after
        t1 = time.perf_counter()
        for _ in range(batches):
            batch = jax.block_until_ready(next(it))
            if "segment_ids" in batch:
                packed.append(batch["segment_ids"])
        elapsed = time.perf_counter() - t1
        if get_workload(workload).end_to_end:  # from building the pipeline to its last batch
            elapsed = time.perf_counter() - t0
            batches += 1 + warmup
        if packed:
            result["fill"] = sum(int((p > 0).sum()) for p in packed) / sum(p.size for p in packed)
        # A variant module may time a mid-epoch resume: restore_<function>(data, cfg).
        restore = getattr(sys.modules[fn.__module__], f"restore_{fn.__name__}", None)
        if restore is not None:
            result["restore_s"] = restore(data, cfg)
        result.update(
            status="ok",
            batches=batches,
            warmup=warmup,
            batch_size=cfg.batch_size,
            elapsed_s=elapsed,
            records_per_s=batches * cfg.batch_size / elapsed,
            default_device=str(jax.devices()[0]),
        )
    except NotImplementedError as e:
        result.update(status="n/a", error=str(e))
    except Exception as e:  # reported, not raised: one broken variant must not stop a run
        result.update(error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc(limit=8))
    finally:
        close = getattr(it, "close", None)
        if callable(close):
            with contextlib.suppress(Exception):  # cleanup is best effort
                close()
    return result


def main(argv: list[str] | None = None) -> int:
    """Entry point: measures one variant and prints the marked JSON result."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 3:
        print("usage: python -m benchmarks._worker VARIANT WORKLOAD JSON_ARGS", file=sys.stderr)
        return 2
    variant, workload, raw = argv
    result = measure(variant, workload, json.loads(raw))
    sys.stdout.write(RESULT_MARKER + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
