"""The ``feedax`` command: ``feedax demo`` and ``feedax gallery``.

Example:
  $ feedax demo --epochs 5 --out /tmp/demo
  $ feedax gallery /tmp/ops.png --only Brightness,RandomAffine
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Returns the parser of the ``feedax`` command.

    Example:
      >>> build_parser().parse_args(["demo", "--epochs", "3"])
      Namespace(command='demo', task='digits', epochs=3)
    """
    from feedax import __version__

    parser = argparse.ArgumentParser(
        prog="feedax",
        description="feedax: JAX data pipelines in which every part is an NNX module.",
    )
    parser.add_argument("--version", action="version", version=f"feedax {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="train a small CNN on scikit-learn's digits, fed by a feedax pipeline",
        description="Train a small NNX CNN on scikit-learn's digits through an augmenting feedax "
        "pipeline; report test accuracy and throughput, check that a mid-epoch checkpoint "
        "resumes exactly (exit code 1 if not) and write a PNG of augmented samples.",
    )
    # Options not given stay out of the namespace, so feedax.demo.run's defaults apply;
    # the help repeats them because importing the demo here would need its extra.
    given = argparse.SUPPRESS
    demo.add_argument("--epochs", type=_positive, default=given, help="training epochs (50)")
    demo.add_argument("--batch-size", type=_positive, default=given, help="batch size (64)")
    demo.add_argument("--out", default=given, help="output directory (feedax-demo-out)")
    demo.add_argument("--seed", type=int, default=given, help="seed of everything (0)")
    demo.add_argument(
        "--resume-steps", type=_positive, default=given, help="steps replayed after resuming (10)"
    )
    demo.add_argument(
        "--task",
        choices=["digits", "lm"],
        default="digits",
        help="digits: a CNN on scikit-learn's digits (default); lm: a small transformer "
        "language model on Python's own source files, tokenized and packed",
    )
    demo.add_argument(
        "--steps", type=_positive, default=given, help="training steps of --task lm (300)"
    )
    commands.add_parser(
        "prepare",
        add_help=False,
        help="prepare a corpus with Apache Beam: feedax prepare INPUT OUTPUT --fn/--tokenizer "
        "(feedax prepare --help)",
    )
    commands.add_parser(
        "gallery",
        add_help=False,
        help="write a PNG of every image operator (feedax gallery OUT.png)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the ``feedax`` command line; returns the exit code.

    Args:
      argv: the arguments after the program name (default: ``sys.argv[1:]``).

    Example:
      >>> main(["demo", "--epochs", "1", "--out", "/tmp/feedax-demo"])  # doctest: +SKIP
      0
    """
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:  # no command: say what there is
        parser.print_help()
        return 0
    args, rest = parser.parse_known_args(argv)
    if args.command == "gallery":
        from feedax import gallery

        return gallery.main(rest)
    if args.command == "prepare":
        from feedax._prepare._cli import main as prepare

        return prepare(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    return _demo(args)


def _demo(args: argparse.Namespace) -> int:
    if args.task == "lm":
        return _demo_lm(args)
    if hasattr(args, "steps"):
        print(
            "feedax demo: --steps is for --task lm; the digits demo takes --epochs.",
            file=sys.stderr,
        )
        return 2
    try:
        from feedax import demo
    except ImportError as error:
        print(f"feedax demo: {error}", file=sys.stderr)
        return 2
    options = {k: v for k, v in vars(args).items() if k not in ("command", "task")}
    try:
        result = demo.run(**options)
    except demo.DemoArgumentError as error:
        print(f"feedax demo: error: {error}", file=sys.stderr)
        return 2
    return 0 if result.resumed_exactly else 1


def _demo_lm(args: argparse.Namespace) -> int:
    if hasattr(args, "epochs"):
        print("feedax demo: --task lm trains for --steps, not --epochs.", file=sys.stderr)
        return 2
    try:
        from feedax import demo_lm
    except ImportError as error:
        print(
            f"feedax demo: {error}. Install the demo extra: pip install 'feedax[demo]'",
            file=sys.stderr,
        )
        return 2
    options = {k: v for k, v in vars(args).items() if k not in ("command", "task")}
    try:
        result = demo_lm.run(**options)
    except ValueError as error:
        print(f"feedax demo: error: {error}", file=sys.stderr)
        return 2
    return 0 if result.resumed_exactly else 1
