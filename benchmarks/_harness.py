"""The benchmark harness: data preparation, fresh-process runs, interleaved rounds.

Each (workload, variant) measurement runs in a fresh ``python -m benchmarks._worker``
process with a cleaned environment. Rounds are interleaved: every round runs each variant
once, in an order rotated from round to round, so slow drifts of the machine (thermal,
other load) spread over all variants instead of biasing one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks import _report
from benchmarks._config import config_to_dict, get_workload
from benchmarks._data import ensure_data
from benchmarks._variants import Variant, select
from benchmarks._worker import RESULT_MARKER

_STRIPPED_XLA_FLAGS = ("--xla_force_host_platform_device_count",)
_SKIP_AFTER = ("n/a", "not installed")


def worker_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Returns the environment of a worker process.

    The same for every variant: the parent's environment without
    ``--xla_force_host_platform_device_count`` (test suites set it; it would split the CPU
    into fake devices), with this package importable, unbuffered output and quiet
    TensorFlow logging.
    """
    env = dict(os.environ if base is None else base)
    flags = [f for f in env.get("XLA_FLAGS", "").split() if not f.startswith(_STRIPPED_XLA_FLAGS)]
    if flags:
        env["XLA_FLAGS"] = " ".join(flags)
    else:
        env.pop("XLA_FLAGS", None)
    root = str(Path(__file__).resolve().parent.parent)  # the checkout holding benchmarks/
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return env


def default_cache_dir() -> Path:
    """Returns ``$FEEDAX_BENCH_CACHE``, else ``$XDG_CACHE_HOME/feedax/bench`` (``~/.cache``)."""
    if os.environ.get("FEEDAX_BENCH_CACHE"):
        return Path(os.environ["FEEDAX_BENCH_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "feedax" / "bench"


def run_worker(
    variant: str,
    workload: str,
    args: dict[str, Any],
    *,
    timeout_s: float = 900.0,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Runs one measurement in a fresh process and returns its result dict.

    A crash, a timeout or a missing result becomes ``status == "error"`` with the tail of
    the worker's output, never an exception. The worker runs in its own process group, so
    on a timeout (or Ctrl-C) its own worker processes are killed with it.
    """
    cmd = [sys.executable, "-m", "benchmarks._worker", variant, workload, json.dumps(args)]
    base = {"variant": variant, "workload": workload, "status": "error"}
    with subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(env) if env is not None else worker_env(),
        start_new_session=True,
    ) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            return {**base, "error": f"timed out after {timeout_s:.0f} s"}
        except BaseException:
            _kill_group(proc)
            raise
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            return json.loads(line[len(RESULT_MARKER) :])
    tail = (stdout + stderr).strip().splitlines()[-6:]
    return {
        **base,
        "error": f"worker exited with {proc.returncode} and no result: " + " | ".join(tail),
    }


def _kill_group(proc: subprocess.Popen[str]) -> None:
    """Kills the worker's process group (the worker and the processes it started)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()


def _per_workload(value: int | Mapping[str, int] | None, workload: str) -> int | None:
    if value is None or isinstance(value, int):
        return value
    return value.get(workload)


def run(
    workloads: Sequence[str] = ("w1", "w2", "w2folder", "w3", "w4"),
    rounds: int = 3,
    *,
    n: int | Mapping[str, int] | None = None,
    batches: int | Mapping[str, int] | None = None,
    warmup: int | Mapping[str, int] | None = None,
    peers: Sequence[str] | None = None,
    variants: Sequence[str] | None = None,
    workers: int = 2,
    seed: int = 0,
    out_dir: str | os.PathLike[str] | None = "bench_results",
    cache_dir: str | os.PathLike[str] | None = None,
    timeout_s: float = 900.0,
    progress: bool = True,
    print_table: bool = True,
) -> dict[str, Any]:
    """Runs the benchmark and returns (and optionally writes) the report.

    Args:
        workloads: Workload names (``w1`` cifar, ``w2`` jpeg, ``w2folder`` jpeg files,
            ``w3`` tokens, ``w4`` text).
        rounds: Interleaved rounds; each runs every variant once per workload.
        n: Records per workload (an int for all, or ``{"w1": ...}``); default: standard.
        batches: Timed batches per run; default: about an epoch at the standard size.
        warmup: Untimed batches after the first; default per workload.
        peers: Peer families to include (``grain``, ``torch``, ``tfdata``); default all.
        variants: Explicit variant names (overrides ``peers``).
        workers: Worker processes of the multiprocess peer variants.
        seed: Seed of orders and augmentations (the same for every variant).
        out_dir: Where ``bench.json`` and ``bench.png`` go; ``None``: write nothing.
        cache_dir: Where generated data are cached (reused across runs); default
            :func:`default_cache_dir`.
        timeout_s: Per-run limit.
        progress: Show a tqdm progress bar.
        print_table: Print the summary table to stdout.

    Returns:
        ``{"meta", "workloads", "runs", "summary"}``, as written to ``bench.json``.

    Raises:
        ValueError: On an unknown workload, peer or variant, or ``rounds < 1``.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    specs = [get_workload(w) for w in workloads]
    chosen = select(
        tuple(peers) if peers is not None else None,
        tuple(variants) if variants is not None else None,
    )
    if cache_dir is None:
        cache_dir = default_cache_dir()

    jobs: dict[str, dict[str, Any]] = {}
    for spec in specs:
        cfg = spec.config_cls(seed=seed)
        size = _per_workload(n, spec.name)
        if size is not None:
            cfg = dataclasses.replace(cfg, n=size)
        if progress:
            print(
                f"preparing {spec.name} data (n={cfg.n}) in {cache_dir} ...",
                file=sys.stderr,
                flush=True,
            )
        bundle = ensure_data(cfg, cache_dir)
        jobs[spec.name] = {
            "config": cfg,
            "data_dir": str(bundle.path),
            "batches": _per_workload(batches, spec.name) or spec.default_batches,
            "warmup": w
            if (w := _per_workload(warmup, spec.name)) is not None
            else spec.default_warmup,
        }

    runs: list[dict[str, Any]] = []
    skip: dict[tuple[str, str], dict[str, Any]] = {}
    for v in chosen:
        if not v.installed():
            for spec in specs:
                skip[(spec.name, v.name)] = {
                    "status": "not installed",
                    "error": f"{v.requires} is not importable",
                }
    plan = _plan(specs_names=[s.name for s in specs], chosen=chosen, rounds=rounds)
    env = worker_env()
    bar = _progress_bar(len(plan), progress)
    try:
        for rnd, wl, v in plan:
            if bar is not None:
                bar.set_postfix_str(f"round {rnd + 1} {wl} {v.name}")
            if (wl, v.name) in skip:
                if bar is not None:
                    bar.update(1)
                continue
            job = jobs[wl]
            args = {
                "config": config_to_dict(
                    dataclasses.replace(job["config"], workers=workers if v.multiprocess else 0)
                ),
                "data_dir": job["data_dir"],
                "batches": job["batches"],
                "warmup": job["warmup"],
            }
            t = time.perf_counter()
            res = run_worker(v.name, wl, args, timeout_s=timeout_s, env=env)
            res.update(round=rnd, wall_s=time.perf_counter() - t)
            runs.append(res)
            if res["status"] in _SKIP_AFTER:
                skip[(wl, v.name)] = {"status": res["status"], "error": res.get("error")}
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()

    report = {
        "meta": _meta(rounds, workers, seed, env),
        "workloads": {
            wl: {
                "title": get_workload(wl).title,
                "unit": get_workload(wl).unit,
                "config": config_to_dict(j["config"]),
                "batches": j["batches"],
                "warmup": j["warmup"],
            }
            for wl, j in jobs.items()
        },
        "runs": runs,
        "summary": _report.summarise(runs, [s.name for s in specs], chosen, workers, skip),
    }
    if print_table:
        print(_report.format_table(report))
    if out_dir is not None:
        paths = _report.write(report, out_dir)
        if print_table:
            print("wrote " + ", ".join(str(p) for p in paths))
    return report


def _plan(
    *, specs_names: Iterable[str], chosen: Sequence[Variant], rounds: int
) -> list[tuple[int, str, Variant]]:
    """Round-robin plan: each round, each workload, every variant (rotated per round)."""
    plan: list[tuple[int, str, Variant]] = []
    for rnd in range(rounds):
        shift = rnd % max(len(chosen), 1)
        order = list(chosen[shift:]) + list(chosen[:shift])
        for wl in specs_names:
            plan.extend((rnd, wl, v) for v in order)
    return plan


def _progress_bar(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="benchmarks", unit="run", file=sys.stderr)


def _meta(rounds: int, workers: int, seed: int, env: Mapping[str, str]) -> dict[str, Any]:
    import importlib.metadata as md

    versions: dict[str, str | None] = {}
    for pkg in (
        "feedax",
        "jax",
        "jaxlib",
        "flax",
        "numpy",
        "grain",
        "torch",
        "tensorflow",
        "pillow",
    ):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "rounds": rounds,
        "workers": workers,
        "seed": seed,
        "versions": versions,
        "worker_env": {
            k: env.get(k)
            for k in ("XLA_FLAGS", "JAX_PLATFORMS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
        },
    }
