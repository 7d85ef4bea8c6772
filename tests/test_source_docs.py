import doctest
import importlib
import re
import tempfile
from pathlib import Path

import pytest

DOC = Path(__file__).parent.parent / "docs" / "sources.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
MODULES = [
    "feedax._sources.npy",
    "feedax._sources.array_record",
    "feedax._sources.codec",
    "feedax._sources.parquet",
    "feedax._sources.image_folder",
    "feedax._sources.decode_image",
    "feedax._sources.hf",
]


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


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0 or name.endswith("image_folder")  # its example needs a dataset
