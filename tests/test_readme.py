"""Every Python block of the README and of docs/ runs as written.

A file's blocks run in order as one script (later blocks use the names earlier ones
define, as a reader does), except a block with a ``__main__`` guard, which is a whole
script of its own (spawned workers import it). Each block keeps its line numbers, so a
traceback's line is the line of the Markdown file.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^( *)```python\n(.*?)^\1```", re.S | re.M)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(first line number, dedented code) of each ```python block."""
    return [
        (text.count("\n", 0, m.start(2)) + 1, textwrap.dedent(m.group(2)))
        for m in FENCE.finditer(text)
    ]


def script(blocks: list[tuple[int, str]]) -> str:
    """The blocks, each at its own line numbers, blank lines between."""
    lines: list[str] = []
    for first, code in blocks:
        lines += [""] * (first - 1 - len(lines))
        lines += code.splitlines()
    return "\n".join(lines) + "\n"


def scripts(path: Path) -> list[str]:
    blocks = python_blocks(path.read_text())
    alone = [b for b in blocks if '__name__ == "__main__"' in b[1]]
    together = [b for b in blocks if b not in alone]
    return [script(together)] * bool(together) + [script([b]) for b in alone]


def test_blocks_are_found():
    readme = python_blocks((ROOT / "README.md").read_text())
    assert len(readme) >= 15
    assert any("def first_bytes" in code for _, code in readme)  # an indented block


@pytest.mark.parametrize(
    "path, index",
    [(p, i) for p in DOCS for i in range(len(scripts(p)))],
    ids=lambda v: v.name if isinstance(v, Path) else str(v),
)
def test_doc_blocks_run_as_written(path, index, tmp_path):
    runnable = tmp_path / path.name.replace(".md", ".py")
    runnable.write_text(scripts(path)[index])
    result = subprocess.run(
        [sys.executable, str(runnable)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"{path.name}: {result.stderr[-3000:]}"
