"""The default record encoding of ArrayRecord files: msgpack of NumPy arrays.

A record is a msgpack map from field name to a value. A NumPy array (or a Python / NumPy
number) is stored as msgpack extension type 1 whose payload is the msgpack array
``[dtype string, shape, raw bytes]`` (C order), so it decodes without copying and
without pickle. ``bytes`` and ``str`` values (an encoded JPEG, a caption) are stored as
msgpack binary / string and decode to ``bytes`` / ``str``: object fields, which a host
stage turns into arrays.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np

from feedax._errors import SourceError
from feedax._sources._common import require

_ARRAY = 1


@functools.cache
def _msgpack() -> Any:
    (msgpack,) = require(["msgpack"], extra="arrayrecord", user="feedax's record codec")
    return msgpack


def _default(value: Any) -> Any:
    msgpack = _msgpack()
    if isinstance(value, np.ndarray | np.generic):
        array = np.asarray(value, order="C")
        if array.dtype.kind in "OV" or array.dtype.hasobject:
            raise SourceError(
                f"encode_record: cannot encode an array of dtype {array.dtype}; store numbers as "
                "numeric arrays and encoded data as bytes."
            )
        payload = msgpack.packb([array.dtype.str, list(array.shape), array.tobytes()])
        return msgpack.ExtType(_ARRAY, payload)
    raise SourceError(
        f"encode_record: cannot encode a value of type {type(value).__name__}; use NumPy "
        "arrays, numbers, bytes or str."
    )


def encode_record(record: Mapping[str, Any]) -> bytes:
    """Encodes one record (field -> array, number, bytes or str) as msgpack bytes.

    Python ints, floats and bools become 0-d NumPy arrays (int64, float64, bool).

    Example:
      >>> import numpy as np
      >>> data = encode_record({"image": np.zeros((2, 2), np.uint8), "label": 3})
      >>> sorted(decode_record(data).items())[1]
      ('label', array(3))
    """
    if not isinstance(record, Mapping):
        raise SourceError(
            f"encode_record: a record must be a dict of field -> value, got "
            f"{type(record).__name__}."
        )
    fields: dict[str, Any] = {}
    for field, value in record.items():
        if isinstance(value, bool | int | float) and not isinstance(value, np.generic):
            value = np.asarray(value)
        fields[str(field)] = value
    packed: bytes = _msgpack().packb(fields, default=_default, use_bin_type=True)
    return packed


def _ext_hook(code: int, payload: bytes) -> Any:
    msgpack = _msgpack()
    if code != _ARRAY:
        return msgpack.ExtType(code, payload)
    dtype, shape, data = msgpack.unpackb(payload, raw=False)
    return np.frombuffer(data, dtype=np.dtype(dtype)).reshape(shape)


def decode_record(data: bytes) -> dict[str, Any]:
    """Decodes bytes written by :func:`encode_record` (arrays are read-only views)."""
    record = _msgpack().unpackb(data, ext_hook=_ext_hook, raw=False)
    if not isinstance(record, dict):
        raise ValueError(
            f"expected a msgpack map of field -> value (feedax.encode_record), got "
            f"{type(record).__name__}"
        )
    return record
