"""Scale out end to end: prepare a corpus with Apache Beam, train on two JAX processes,
stop, and resume on one process with the same stream.

    python examples/scale_out.py [--out DIR]

Needs the beam extra (``pip install 'feedax[beam]'``). Everything runs on this machine:
the corpus is the standard library's own source (no download), Beam runs on its
DirectRunner, and the two JAX processes meet on 127.0.0.1 (gloo collectives).
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

STEPS, SAVE_AT, BATCH, LENGTH, VOCAB = 12, 6, 8, 128, 512


def corpus(out: Path) -> tuple[Path, Path]:
    """A JSONL file of documents (stretches of stdlib source lines) and a BPE tokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    files = sorted(Path(os.__file__).parent.glob("[a-h]*.py"))[:40]
    lines = [
        line for f in files for line in f.read_text(errors="replace").splitlines() if line.strip()
    ]
    docs = [" ".join(lines[i : i + 3 + i % 17]) for i in range(0, len(lines) - 20, 9)]
    path = out / "corpus.jsonl"
    path.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.train(
        [str(f) for f in files], trainers.BpeTrainer(vocab_size=VOCAB, show_progress=False)
    )
    tokenizer.save(str(out / "tokenizer.json"))
    return path, out / "tokenizer.json"


def prepare_corpus(out: Path) -> Path:
    """Tokenizes the corpus with Beam into 8 ArrayRecord shards; prints the throughput."""
    import feedax as fx
    from feedax import prepare

    path, tokenizer = corpus(out)
    start = time.perf_counter()
    manifest = prepare.run(
        fx.JsonlSource(path),
        fx.TokenizeText(str(tokenizer), eos_id=0),
        out / "prepared",
        num_shards=8,
        options=["--direct_num_workers=2", "--direct_running_mode=multi_threading"],
    )
    seconds = time.perf_counter() - start
    tokens = int(prepare.load(out / "prepared").stored_lengths["tokens"].sum())
    print(
        f"prepared {manifest.records} documents ({tokens} tokens) into {len(manifest.files)} "
        f"shards with Beam in {seconds:.1f} s: {manifest.records / seconds:,.0f} documents/s, "
        f"{tokens / seconds:,.0f} tokens/s (failed: {manifest.failed})"
    )
    return out / "prepared"


def train(folder: Path, checkpoints: Path, first: int, last: int, resume: bool) -> list:
    """Steps ``first..last`` of training (this process's part); the log of each step."""
    import jax
    import jax.numpy as jnp
    import orbax.checkpoint as ocp
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    import feedax as fx
    from feedax import prepare

    mesh = jax.make_mesh((jax.device_count(),), ("data",))
    pipe = fx.Pipeline(
        prepare.load(folder),
        batch_size=BATCH,
        shuffle=True,
        seed=0,
        pack=fx.Pack(LENGTH, field="tokens", targets=True),
        sharding=NamedSharding(mesh, P("data")),
    )
    replicated = NamedSharding(mesh, P())
    table = np.random.default_rng(0).normal(0, 0.01, (VOCAB, VOCAB)).astype(np.float32)
    manager = ocp.CheckpointManager(checkpoints)
    if resume:
        manager.restore(SAVE_AT, args=ocp.args.Composite(data=fx.checkpoint.Restore(pipe)))
        table = np.load(checkpoints / "model.npy")
    params = jax.make_array_from_process_local_data(replicated, table)

    def loss_fn(w, batch):
        logits = jax.nn.one_hot(batch["tokens"], VOCAB) @ w  # a bigram model
        logp = jax.nn.log_softmax(logits)
        picked = jnp.take_along_axis(logp, batch["targets"][..., None], axis=-1)[..., 0]
        mask = batch["loss_mask"].astype(jnp.float32)
        return -(picked * mask).sum() / jnp.maximum(mask.sum(), 1.0)

    @jax.jit
    def step(w, batch):
        loss, grad = jax.value_and_grad(loss_fn)(w, batch)
        rows = (batch["tokens"] * (jnp.arange(LENGTH) + 1)).sum(axis=1)  # a digest per row
        return w - 20.0 * grad, loss, rows

    log, stream = [], iter(pipe)
    for k in range(first, last):
        params, loss, rows = step(params, next(stream))
        rows = jax.device_get(jax.jit(lambda r: r, out_shardings=replicated)(rows))
        log.append({"step": k, "loss": float(loss), "rows": rows.tolist()})
        if k + 1 == SAVE_AT and not resume:
            manager.save(SAVE_AT, args=ocp.args.Composite(data=fx.checkpoint.Save(pipe)))
            manager.wait_until_finished()
            if jax.process_index() == 0:
                np.save(checkpoints / "model.npy", np.asarray(params.addressable_data(0)))
    manager.close()
    return log


def worker(port: int, index: int, count: int, folder: Path, checkpoints: Path, log: Path) -> None:
    """One of the processes of the two-process run."""
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=1"
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=count, process_id=index)
    steps = train(folder, checkpoints, 0, STEPS, resume=False)
    if index == 0:
        log.write_text(json.dumps(steps))
    jax.distributed.shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="feedax-scale-out")
    parser.add_argument("--worker", nargs=3, type=int, metavar=("PORT", "INDEX", "COUNT"))
    args = parser.parse_args()
    out = Path(args.out).resolve()
    if args.worker:
        worker(*args.worker, out / "prepared", out / "checkpoints", out / "two.json")
        return 0
    out.mkdir(parents=True, exist_ok=True)
    folder = prepare_corpus(out)
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    command = [sys.executable, __file__, "--out", str(out), "--worker", str(port)]
    start = time.perf_counter()
    procs = [subprocess.Popen([*command, str(i), "2"], env=env) for i in range(2)]
    if any(p.wait(timeout=600) for p in procs):
        print("a training process failed")
        return 1
    two = json.loads((out / "two.json").read_text())
    print(
        f"two processes trained {STEPS} steps in {time.perf_counter() - start:.1f} s, "
        f"checkpoint at step {SAVE_AT}; losses {two[0]['loss']:.3f} -> {two[-1]['loss']:.3f}"
    )
    one = train(folder, out / "checkpoints", SAVE_AT, STEPS, resume=True)
    same_rows = all(a["rows"] == b["rows"] for a, b in zip(two[SAVE_AT:], one, strict=True))
    same_loss = all(
        abs(a["loss"] - b["loss"]) <= 1e-4 * abs(a["loss"])
        for a, b in zip(two[SAVE_AT:], one, strict=True)
    )
    print(
        f"resumed on one process from step {SAVE_AT}: "
        f"same rows: {same_rows}, same losses: {same_loss}"
    )
    return 0 if same_rows and same_loss else 1


if __name__ == "__main__":
    sys.exit(main())
