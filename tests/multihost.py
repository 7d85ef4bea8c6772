"""Running a test worker as several jax.distributed processes on 127.0.0.1."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_workers(
    worker: Path,
    out: Path,
    steps: int,
    save_step: int,
    n: int = 2,
    *,
    extra: tuple[str, ...] = (),
    devices: int = 2,
) -> list[dict]:
    """Runs ``worker`` as ``n`` processes of one run; returns the JSON each wrote.

    ``extra`` arguments follow the standard ones; each process has ``devices`` CPU devices.
    """
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["FEEDAX_TEST_DEVICES"] = str(devices)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(worker),
                str(port),
                str(i),
                str(n),
                str(out / f"{i}.json"),
                str(steps),
                str(save_step),
                *extra,
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for i in range(n)
    ]
    logs = [p.communicate(timeout=300)[0].decode() for p in procs]
    for p, log in zip(procs, logs, strict=True):
        assert p.returncode == 0, log[-3000:]
    return [json.loads((out / f"{i}.json").read_text()) for i in range(n)]


def union(runs: list[dict], step: int, rows: int) -> dict[str, object]:
    """Row -> what the processes produced for ``step``; each row from exactly one of them."""
    merged: dict[str, object] = {}
    for run in runs:
        part = run["records"][step]
        assert not merged.keys() & part.keys(), "two processes produced the same row"
        merged.update(part)
    assert sorted(int(k) for k in merged) == list(range(rows))
    return merged
