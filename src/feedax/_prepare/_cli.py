"""``feedax prepare``: prepare a corpus with Apache Beam from the command line."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

KINDS = ("jsonl", "text", "parquet", "images", "hf")


def parser() -> argparse.ArgumentParser:
    """The ``feedax prepare`` arguments; what follows ``--`` goes to Beam as its options."""
    p = argparse.ArgumentParser(
        prog="feedax prepare",
        description="Read INPUT, apply a function to every record, write ArrayRecord or "
        "Parquet shards with a manifest to OUTPUT (Apache Beam; DirectRunner unless Beam "
        "options after -- say otherwise, e.g. -- --runner=DataflowRunner --project=...).",
    )
    p.add_argument(
        "input",
        help="a .jsonl / .txt / .parquet file or glob, an image folder, or "
        "a Hugging Face dataset saved to disk",
    )
    p.add_argument("output", help="the output folder (a path or a URL Beam can write)")
    p.add_argument(
        "--kind",
        choices=KINDS,
        help="the input kind (default: from the suffix; a folder of images is 'images')",
    )
    job = p.add_mutually_exclusive_group(required=True)
    job.add_argument("--fn", help="module:function, a host function fn(record, ctx) -> dict")
    job.add_argument("--tokenizer", help="a tokenizer.json: tokenize --field into 'tokens'")
    job.add_argument("--image-size", type=int, help="decode images, centre-cropped to N x N")
    p.add_argument("--field", default="text", help="the text field (jsonl, parquet, hf)")
    p.add_argument("--eos-id", type=int, default=None, help="with --tokenizer: append this id")
    p.add_argument("--shards", type=int, default=8, help="output files (8)")
    p.add_argument("--format", choices=("array_record", "parquet"), default="array_record")
    p.add_argument("--seed", type=int, default=0, help="ctx.seed of the function (0)")
    return p


def source_of(path: str, kind: str | None, field: str) -> Any:
    """The feedax source reading ``path`` as ``kind`` (guessed from the path when None)."""
    import feedax as fx

    if kind is None:
        kind = _guess(path)
    if kind == "jsonl":
        return fx.JsonlSource(path, fields=(field,))
    if kind == "text":
        return fx.TextSource(path, field=field)
    if kind == "parquet":
        return fx.ParquetSource(path)
    if kind == "images":
        return fx.ImageFolderSource(path)
    from feedax._sources._common import require

    (datasets,) = require(["datasets"], extra="hf", user="feedax prepare")
    return fx.HFSource(datasets.load_from_disk(path))


def _guess(path: str) -> str:
    if os.path.isdir(path):
        return "hf" if os.path.isfile(os.path.join(path, "dataset_info.json")) else "images"
    for suffix, kind in ((".jsonl", "jsonl"), (".txt", "text"), (".parquet", "parquet")):
        if path.endswith(suffix):
            return kind
    raise SystemExit(
        f"feedax prepare: cannot tell what {path!r} holds; pass --kind {'|'.join(KINDS)}."
    )


def function_of(args: argparse.Namespace) -> Any:
    """The host function the arguments name."""
    import feedax as fx

    if args.tokenizer:
        return fx.TokenizeText(args.tokenizer, field=args.field, eos_id=args.eos_id)
    if args.image_size:
        return fx.DecodeImage(args.image_size, field="path")
    module, _, name = args.fn.partition(":")
    if not name:
        raise SystemExit(f"feedax prepare: --fn must be module:function, got {args.fn!r}.")
    sys.path.insert(0, os.getcwd())
    return getattr(importlib.import_module(module), name)


def main(argv: Sequence[str]) -> int:
    """Runs ``feedax prepare``; prints the manifest's summary. Returns the exit code."""
    argv = list(argv)
    beam_options = argv[argv.index("--") + 1 :] if "--" in argv else []
    ours = argv[: argv.index("--")] if "--" in argv else argv
    args = parser().parse_args(ours)
    from feedax.prepare import run

    source = source_of(args.input, args.kind, args.field)
    manifest = run(
        source,
        function_of(args),
        args.output,
        num_shards=args.shards,
        format=args.format,
        seed=args.seed,
        options=beam_options or None,
    )
    print(
        f"wrote {manifest.records} records in {len(manifest.files)} {manifest.format} files to "
        f"{args.output} (read {manifest.records_in}, failed {manifest.failed}; fingerprint "
        f"{manifest.fingerprint})"
    )
    return 0
