"""Host-stage functions for the tests; module-level so process workers can import them."""

import os

import numpy as np

BAD_INDEX = 13


def decode(record, ctx):
    """Bytes -> a 4x4x1 uint8 image, plus a host-side random draw keyed per record."""
    image = np.frombuffer(record["raw"], np.uint8).reshape(4, 4, 1)
    jitter = ctx.rng().integers(0, 1000) if ctx.training else -1
    return {"image": image, "id": record["id"], "jitter": np.int32(jitter)}


def fails_on_bad(record, ctx):
    if ctx.index == BAD_INDEX:
        raise ValueError("corrupt payload")
    return decode(record, ctx)


def wrong_shape_on_bad(record, ctx):
    out = decode(record, ctx)
    if ctx.index == BAD_INDEX:
        out["image"] = out["image"][:2]
    return out


def dies_on_bad(record, ctx):
    if ctx.index == BAD_INDEX:
        os._exit(3)
    return decode(record, ctx)


def raw_records(n: int) -> dict[str, np.ndarray]:
    raw = np.empty(n, dtype=object)
    for i in range(n):
        raw[i] = ((np.arange(16) + i) % 256).astype(np.uint8).tobytes()
    return {"raw": raw, "id": np.arange(n, dtype=np.int32)}


BAD = (3, 13, 27)


def fails_on_several(record, ctx):
    if ctx.index in BAD:
        raise ValueError("corrupt payload")
    return decode(record, ctx)


def exits_on_bad(record, ctx):
    if ctx.index == BAD_INDEX:
        raise SystemExit(3)
    return decode(record, ctx)


def interrupted_on_bad(record, ctx):
    if ctx.index == BAD_INDEX:
        raise KeyboardInterrupt
    return decode(record, ctx)


def fails_on_the_first_two(record, ctx):
    if ctx.index in (0, 1):
        raise ValueError("corrupt payload")
    return decode(record, ctx)


def always_fails(record, ctx):
    raise ValueError("corrupt payload")


def hangs_on_bad(record, ctx):
    if ctx.index == BAD_INDEX:
        import time

        time.sleep(3600)
    return decode(record, ctx)
