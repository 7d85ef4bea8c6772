"""Command line of ``python -m benchmarks`` (also ``python -m benchmarks``)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from benchmarks._config import WORKLOADS
from benchmarks._variants import PEER_FAMILIES, VARIANTS


def _names(text: str) -> list[str]:
    return [t for t in (s.strip() for s in text.split(",")) if t]


def build_parser(prog: str = "python -m benchmarks") -> argparse.ArgumentParser:
    """Returns the argument parser of ``python -m benchmarks``."""
    p = argparse.ArgumentParser(
        prog=prog,
        description="Benchmark feedax against a hand-written jax.jit reference and the "
        "installed peers (Grain, PyTorch DataLoader, tf.data) on synthetic "
        "workloads. Each run is a fresh process; rounds are interleaved.",
    )
    p.add_argument(
        "-w",
        "--workloads",
        type=_names,
        default=list(WORKLOADS),
        help=f"comma-separated workloads ({', '.join(WORKLOADS)}); default all",
    )
    p.add_argument("-r", "--rounds", type=int, default=3, help="interleaved rounds (3)")
    p.add_argument(
        "-n",
        "--n",
        type=int,
        default=None,
        help="records per workload (default: 50000 / 5000 / 5000 / 200000 / 20000)",
    )
    p.add_argument(
        "-b",
        "--batches",
        type=int,
        default=None,
        help="timed batches per run (default: ~1 epoch: 190 / 75 / 75 / 400 / 480)",
    )
    p.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="untimed batches after the first (default 5 / 3 / 3 / 5 / 0)",
    )
    p.add_argument(
        "--peers",
        type=_names,
        default=list(PEER_FAMILIES),
        help=f"peer families to include ({', '.join(PEER_FAMILIES)}); "
        "'none' for feedax and the reference only",
    )
    p.add_argument(
        "--variants",
        type=_names,
        default=None,
        help=f"exact variants to run, overrides --peers ({', '.join(VARIANTS)})",
    )
    p.add_argument(
        "--workers", type=int, default=2, help="worker processes of the multiprocess peers (2)"
    )
    p.add_argument("--seed", type=int, default=0, help="order/augmentation seed (0)")
    p.add_argument(
        "-o",
        "--out",
        default="bench_results",
        help="output folder for bench.json and bench.png (bench_results)",
    )
    p.add_argument(
        "--cache-dir",
        default=None,
        help="where generated data are kept (default: ~/.cache/feedax/bench)",
    )
    p.add_argument("--timeout", type=float, default=900.0, help="per-run limit in s (900)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Runs ``python -m benchmarks`` with ``argv`` (default: ``sys.argv[1:]``); returns 0.

    Raises:
        SystemExit: On invalid arguments (argparse's usage error, status 2).
    """
    from benchmarks._harness import run

    parser = build_parser()
    args = parser.parse_args(argv)
    peers = [] if args.peers == ["none"] else args.peers
    try:
        run(
            args.workloads,
            args.rounds,
            n=args.n,
            batches=args.batches,
            warmup=args.warmup,
            peers=peers,
            variants=args.variants,
            workers=args.workers,
            seed=args.seed,
            out_dir=args.out,
            cache_dir=args.cache_dir,
            timeout_s=args.timeout,
            progress=not args.quiet,
        )
    except ValueError as e:
        parser.error(str(e))
    return 0
