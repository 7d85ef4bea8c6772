"""The parts of ``feedax demo``: model, data and pipelines, sample grid.

Importing this package checks the ``demo`` extra first, so a missing dependency is
reported with the command that installs it rather than as a bare ImportError.
"""

_PIP_NAMES = {"optax": "optax", "sklearn": "scikit-learn", "PIL": "pillow"}

try:
    import optax  # noqa: F401
    import PIL  # noqa: F401
    import sklearn  # noqa: F401
except ImportError as error:  # pragma: no cover - depends on the environment
    _missing = _PIP_NAMES.get(error.name or "", error.name)
    raise ImportError(
        f"feedax demo needs optax, scikit-learn and pillow, and {_missing} is missing. "
        "Install the demo extra: pip install 'feedax[demo]'"
    ) from error
