"""Every docstring example of the package runs as written (``--doctest-modules`` over feedax).

The walk runs under the tests' conftest (eight emulated devices), in a temporary folder.
Examples that need a dataset or a long run are marked ``# doctest: +SKIP`` where they
stand.
"""

import doctest
import importlib
import pkgutil
import tempfile

import pytest
from ops_reference import quick_compiles  # noqa: F401  (fixture)

import feedax

MODULES = sorted(info.name for info in pkgutil.walk_packages(feedax.__path__, prefix="feedax."))


def test_the_walk_finds_the_package():
    assert {"feedax._pipeline", "feedax._ops.color", "feedax.functional", "feedax.testing"} <= set(
        MODULES
    )


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the examples' mkdtemp()
    module = importlib.import_module(name)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(module, optionflags=flags, report=True)
    assert result.failed == 0, name
