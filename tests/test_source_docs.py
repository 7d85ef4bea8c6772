import re
import tempfile
from pathlib import Path

import pytest

DOC = Path(__file__).parent.parent / "docs" / "sources.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_every_source_has_an_example():
    text = "\n".join(BLOCKS)
    for name in [
        "NpySource",
        "ArrayRecordSource",
        "ParquetSource",
        "ImageFolderSource",
        "HFSource",
    ]:
        assert f"fx.{name}(" in text, name


@pytest.mark.parametrize("block", range(len(BLOCKS)))
def test_docs_example_runs(block, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the examples' mkdtemp()
    exec(compile(BLOCKS[block], f"{DOC}:block{block}", "exec"), {"__name__": "__doc__"})
