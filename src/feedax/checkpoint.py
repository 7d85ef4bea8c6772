"""Orbax checkpoints of pipelines beside models: ``save`` and ``restore``."""

from feedax._checkpoint import restore, save

__all__ = ["restore", "save"]
