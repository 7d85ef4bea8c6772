"""Every operator's docstring has an example and argument docs (test_docstrings runs them)."""

import inspect

import pytest

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
