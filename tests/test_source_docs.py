import re
from pathlib import Path

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
