import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).parent.parent / "examples"


def test_quickstart_example_runs_and_resumes_exactly():
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "quickstart.py")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "resumed batch 2 identical: True" in result.stdout


def test_scale_out_example_prepares_trains_on_two_processes_and_resumes_on_one(tmp_path):
    env = {k: v for k, v in __import__("os").environ.items() if k != "XLA_FLAGS"}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "scale_out.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "failed: 0" in result.stdout
    assert "same rows: True, same losses: True" in result.stdout
