"""Every operator's docstring example runs and prints what it shows.

Only the operators' examples run here (eager JAX compiles every primitive separately, so
all the functional helpers' examples would cost half a minute); the helpers are checked
against references in the other test_ops_*.py files.
"""

import doctest
import inspect

import pytest
from ops_reference import quick_compiles  # noqa: F401  (fixture)

import feedax as fx


def public_operators():
    return sorted(
        name
        for name in fx.__all__
        if inspect.isclass(obj := getattr(fx, name))
        and issubclass(obj, fx.Operator | fx.BatchOperator)
        and not inspect.isabstract(obj)
    )


@pytest.mark.parametrize("name", public_operators())
def test_operator_docstring_has_a_runnable_example(name):
    obj = getattr(fx, name)
    doc = inspect.getdoc(obj) or ""
    assert "Example:" in doc and ">>>" in doc, name
    assert "Args:" in doc or name in ("AutoContrast", "Equalize", "Invert", "ToFloat")
    tests = doctest.DocTestFinder(recurse=False).find(obj, name, globs={})
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.attempted > 0 and result.failed == 0, name
