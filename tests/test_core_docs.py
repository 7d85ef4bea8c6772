"""The docstring examples of the iteration core run as written."""

import doctest
import importlib

import pytest

MODULES = [
    "feedax._pipeline",
    "feedax._filter",
    "feedax._sources.mix",
    "feedax._stream",
    "feedax._host",
    "feedax._order",
    "feedax._prefetch",
    "feedax._context",
    "feedax._pack",
    "feedax._sources.tokens",
    "feedax._sources.text",
    "feedax._tokenize",
    "feedax._demo.lm_model",
    "feedax.cli",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0
