"""feedax: a data-pipeline framework for JAX in which every component is a Flax NNX module."""

from feedax import checkpoint
from feedax._apply import apply_operators
from feedax._context import BATCH_AXIS, RecordContext
from feedax._errors import (
    FeedaxError,
    HostStageError,
    OperatorError,
    PipelineError,
    SourceError,
    StateMismatchError,
)
from feedax._host import HostContext, HostMap
from feedax._operator import BatchOperator, Operator, RandomOperator
from feedax._ops.color import BrightnessContrast
from feedax._ops.crop import RandomCrop
from feedax._ops.flip import RandomFlip
from feedax._ops.normalize import Normalize, RunningNormalize
from feedax._order import EpochOrder
from feedax._pipeline import Pipeline
from feedax._profile import Profile
from feedax._source import ArraySource, Source
from feedax._state import Cursor, Signature

__version__ = "0.1.0"

__all__ = [
    "BATCH_AXIS",
    "ArraySource",
    "BatchOperator",
    "BrightnessContrast",
    "Cursor",
    "EpochOrder",
    "FeedaxError",
    "HostContext",
    "HostMap",
    "HostStageError",
    "Normalize",
    "Operator",
    "OperatorError",
    "Pipeline",
    "PipelineError",
    "Profile",
    "RandomCrop",
    "RandomFlip",
    "RandomOperator",
    "RecordContext",
    "RunningNormalize",
    "Signature",
    "Source",
    "SourceError",
    "StateMismatchError",
    "apply_operators",
    "checkpoint",
]
