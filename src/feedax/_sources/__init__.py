"""File-backed random-access sources (NumPy, ArrayRecord, Parquet, image folders, HF)."""

from feedax._sources.array_record import ArrayRecordSource, write_array_record
from feedax._sources.codec import decode_record, encode_record
from feedax._sources.decode_crop import DecodeRandomResizedCrop
from feedax._sources.decode_image import DecodeImage
from feedax._sources.hf import HFSource
from feedax._sources.image_folder import ImageFolderSource
from feedax._sources.npy import NpySource
from feedax._sources.parquet import ParquetSource
from feedax._sources.sharded_stream import ShardedStream
from feedax._sources.tokenize_text import TokenizeText

__all__ = [
    "ArrayRecordSource",
    "DecodeImage",
    "DecodeRandomResizedCrop",
    "HFSource",
    "ImageFolderSource",
    "NpySource",
    "ParquetSource",
    "ShardedStream",
    "TokenizeText",
    "decode_record",
    "encode_record",
    "write_array_record",
]
