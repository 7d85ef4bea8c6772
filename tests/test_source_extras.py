import re
import subprocess
import sys

import pytest

import feedax as fx

CASES = [
    ("pyarrow", "parquet", lambda tmp: fx.ParquetSource(tmp)),
    ("array_record", "arrayrecord", lambda tmp: fx.ArrayRecordSource(tmp)),
    ("msgpack", "arrayrecord", lambda tmp: fx.ArrayRecordSource(tmp)),
    ("datasets", "hf", lambda tmp: fx.HFSource(None)),
    ("PIL", "image", lambda tmp: fx.DecodeImage(8)),
]


@pytest.mark.parametrize(("module", "extra", "make"), CASES, ids=[c[0] for c in CASES])
def test_a_missing_backend_names_the_extra_to_install(tmp_path, monkeypatch, module, extra, make):
    monkeypatch.setitem(sys.modules, module, None)  # as if it were not installed
    with pytest.raises(ImportError, match=re.escape(f"pip install 'feedax[{extra}]'")) as info:
        make(tmp_path)
    assert repr(module) in str(info.value)


def test_feedax_imports_without_any_optional_backend():
    blocked = ["pyarrow", "array_record", "datasets", "PIL", "simplejpeg"]  # msgpack: flax needs it
    code = (
        "import sys\n"
        f"for m in {blocked!r}: sys.modules[m] = None\n"
        "import feedax as fx\n"
        "import numpy as np\n"
        "print(fx.NpySource, fx.ImageFolderSource, len(fx.ArraySource({'x': np.arange(3)})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "NpySource" in result.stdout
