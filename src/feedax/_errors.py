"""The errors feedax raises. Each message says what was expected, what came, and the fix."""

from __future__ import annotations


class FeedaxError(Exception):
    """Base class of every error raised by feedax."""


class SourceError(FeedaxError, ValueError):
    """A source is malformed, or a record in it is bad."""


class OperatorError(FeedaxError, ValueError):
    """An operator was given a record it cannot handle, or was configured wrongly."""


class PipelineError(FeedaxError, ValueError):
    """A pipeline was configured wrongly."""


class StateMismatchError(FeedaxError, ValueError):
    """A state taken from one pipeline was loaded into a different one."""


class HostStageError(FeedaxError, RuntimeError):
    """A host-stage function failed on a record, returned a bad shape, or its worker died."""


class CheckpointError(FeedaxError, ValueError):
    """A checkpoint whose restored values differ from what was saved (damaged on disk)."""
