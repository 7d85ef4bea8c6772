"""feedax: a data-pipeline framework for JAX in which every component is a Flax NNX module."""

from feedax import checkpoint, functional
from feedax._apply import apply_operators
from feedax._block_order import BlockShuffle
from feedax._context import BATCH_AXIS, RecordContext
from feedax._errors import (
    CheckpointError,
    FeedaxError,
    HostStageError,
    OperatorError,
    PipelineError,
    SourceError,
    StateMismatchError,
)
from feedax._filter import Filter
from feedax._grid import write_grid
from feedax._host import HostContext, HostMap
from feedax._operator import (
    BatchOperator,
    Operator,
    RandomBatchOperator,
    RandomOperator,
    SpatialOperator,
)
from feedax._ops.affine import RandomAffine, RandomRotation
from feedax._ops.color import BrightnessContrast
from feedax._ops.compose import OneOf, RandomApply, RandomChoice, Sequential
from feedax._ops.convert import ToFloat
from feedax._ops.crop import CenterCrop, RandomCrop
from feedax._ops.erase import Cutout, RandomErasing
from feedax._ops.filter import GaussianBlur, GaussianNoise
from feedax._ops.flip import RandomFlip
from feedax._ops.jitter import Brightness, ColorJitter, Contrast, Hue, Saturation, Sharpness
from feedax._ops.label import LabelSmoothing, OneHot
from feedax._ops.mix import CutMix, MixUp
from feedax._ops.normalize import Normalize, RunningNormalize
from feedax._ops.pad import Pad
from feedax._ops.policy import RandAugment, TrivialAugment
from feedax._ops.resize import RandomResizedCrop, Resize
from feedax._ops.tone import (
    AutoContrast,
    Equalize,
    Grayscale,
    Invert,
    Posterize,
    RandomGrayscale,
    Solarize,
)
from feedax._order import EpochOrder
from feedax._pack import Pack
from feedax._pipeline import Pipeline
from feedax._profile import Profile
from feedax._skip import SkipLog
from feedax._source import ArraySource, Source
from feedax._sources import (
    ArrayRecordSource,
    DecodeImage,
    DecodeRandomResizedCrop,
    HFSource,
    ImageFolderSource,
    NpySource,
    ParquetSource,
    ShardedStream,
    TokenizeText,
    decode_record,
    encode_record,
    write_array_record,
)
from feedax._sources.mix import Mix
from feedax._sources.text import JsonlSource, TextSource
from feedax._sources.tokens import Ragged, TokenSource, write_tokens
from feedax._state import Cursor, MixSchedule, Signature, TruncatedTokens
from feedax._stream import StreamSource
from feedax._summary import StageSummary, Summary
from feedax._tokenize import tokenize

__version__ = "0.1.0"

__all__ = [
    "BATCH_AXIS",
    "ArrayRecordSource",
    "ArraySource",
    "AutoContrast",
    "BatchOperator",
    "BlockShuffle",
    "Brightness",
    "BrightnessContrast",
    "CenterCrop",
    "ColorJitter",
    "Contrast",
    "Cursor",
    "CutMix",
    "Cutout",
    "DecodeImage",
    "DecodeRandomResizedCrop",
    "EpochOrder",
    "Equalize",
    "FeedaxError",
    "Filter",
    "GaussianBlur",
    "GaussianNoise",
    "Grayscale",
    "HFSource",
    "HostContext",
    "HostMap",
    "HostStageError",
    "Hue",
    "ImageFolderSource",
    "Invert",
    "JsonlSource",
    "LabelSmoothing",
    "MixUp",
    "Mix",
    "MixSchedule",
    "Normalize",
    "NpySource",
    "OneHot",
    "OneOf",
    "Operator",
    "OperatorError",
    "Pack",
    "Pad",
    "ParquetSource",
    "Pipeline",
    "PipelineError",
    "Posterize",
    "Profile",
    "RandAugment",
    "RandomAffine",
    "RandomBatchOperator",
    "RandomApply",
    "RandomChoice",
    "RandomCrop",
    "RandomErasing",
    "RandomFlip",
    "RandomGrayscale",
    "RandomOperator",
    "RandomResizedCrop",
    "RandomRotation",
    "Ragged",
    "RecordContext",
    "Resize",
    "RunningNormalize",
    "Saturation",
    "Sequential",
    "Sharpness",
    "ShardedStream",
    "Signature",
    "SkipLog",
    "Solarize",
    "Source",
    "SourceError",
    "SpatialOperator",
    "CheckpointError",
    "StateMismatchError",
    "StageSummary",
    "StreamSource",
    "Summary",
    "TextSource",
    "ToFloat",
    "TokenSource",
    "TokenizeText",
    "TrivialAugment",
    "TruncatedTokens",
    "apply_operators",
    "checkpoint",
    "decode_record",
    "encode_record",
    "functional",
    "tokenize",
    "write_grid",
    "write_array_record",
    "write_tokens",
]
