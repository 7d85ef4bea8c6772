"""Streaming sources: numbered records, one pass per epoch, windowed shuffle, exact resume."""

import jax
import numpy as np
import pytest
from flax import nnx
from helpers import first_batches, host
from host_fns import decode
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import feedax as fx

N = 37


class Counted:
    """A stream of N records that counts how many records were read in total."""

    def __init__(self, n=N):
        self.n = n
        self.read = 0

    def __call__(self):
        for i in range(self.n):
            self.read += 1
            yield {"image": np.full((4, 4, 1), i % 256, np.uint8), "id": np.int32(i)}

    def seek(self, start):
        for i in range(start, self.n):
            self.read += 1
            yield {"image": np.full((4, 4, 1), i % 256, np.uint8), "id": np.int32(i)}


def pipeline(stream=None, *, window=8, batch_size=5, seekable=False, drop=False, **kw):
    stream = stream or Counted()
    source = fx.StreamSource(stream, seek=stream.seek if seekable else None, name="stream")
    return fx.Pipeline(
        source,
        [fx.RandomCrop(3, rngs=nnx.Rngs(augment=2))],
        batch_size=batch_size,
        shuffle_window=window,
        drop_remainder=drop,
        seed=9,
        **kw,
    )


@pytest.mark.parametrize("window", [0, 1, 8, 100])
def test_each_record_once_per_epoch(window):
    pipe = pipeline(window=window)
    for _ in range(2):
        batches = [host(b) for b in pipe.epoch()]
        ids = np.concatenate([b["id"][b["valid"]] for b in batches])
        assert sorted(ids.tolist()) == list(range(N))
        if window <= 1:
            assert ids.tolist() == list(range(N))
    assert pipe.position == (2, 0)


def test_window_shuffle_stays_within_windows_and_changes_each_epoch():
    pipe = pipeline(window=8)
    first = np.concatenate([b["id"][b["valid"]] for b in map(host, pipe.epoch())])
    second = np.concatenate([b["id"][b["valid"]] for b in map(host, pipe.epoch())])
    for w in range(0, N, 8):
        assert sorted(first[w : w + 8].tolist()) == list(range(w, min(w + 8, N)))
    assert not np.array_equal(first, second)


def test_drop_remainder_drops_the_last_partial_batch():
    batches = [host(b) for b in pipeline(drop=True).epoch()]
    assert len(batches) == N // 5 and "valid" not in batches[0]


@pytest.mark.parametrize("seekable", [True, False])
def test_resume_at_every_step(seekable):
    reference = first_batches(pipeline(), 12)  # 8 batches per epoch: crosses an epoch boundary
    for k in range(12):
        pipe = pipeline()
        first_batches(pipe, k)
        stream = Counted()
        fresh = pipeline(stream, seekable=seekable)
        nnx.update(fresh, nnx.clone(nnx.state(pipe)))
        for e, g in zip(reference[k:], first_batches(fresh, 12 - k), strict=True):
            for f in e:
                np.testing.assert_array_equal(e[f], g[f])


def test_seek_avoids_reading_the_head_again():
    pipe = pipeline()
    first_batches(pipe, 6)
    saved = nnx.clone(nnx.state(pipe))
    seeking, skipping = Counted(), Counted()
    for stream, seekable in [(seeking, True), (skipping, False)]:
        fresh = pipeline(stream, seekable=seekable, prefetch=0)
        nnx.update(fresh, saved)
        next(iter(fresh))
    assert seeking.read < skipping.read


def test_augmentation_is_per_record_whatever_the_batch_size():
    def crops(batch_size):
        out = {}
        for b in map(host, pipeline(batch_size=batch_size).epoch()):
            for i, img, ok in zip(b["id"], b["image"], b["valid"], strict=True):
                if ok:
                    out[int(i)] = img.tobytes()
        return out

    assert crops(5) == crops(3)


def test_sharded_stream_equals_unsharded():
    mesh = jax.make_mesh((2,), ("data",), devices=jax.devices()[:2])
    sharded = first_batches(pipeline(batch_size=6, sharding=NamedSharding(mesh, P("data"))), 9)
    for e, g in zip(first_batches(pipeline(batch_size=6), 9), sharded, strict=True):
        for f in e:
            np.testing.assert_array_equal(e[f], g[f])


def test_stream_with_a_thread_host_stage():
    def raw():
        for i in range(20):
            yield {"raw": ((np.arange(16) + i) % 256).astype(np.uint8).tobytes(), "id": np.int32(i)}

    pipe = fx.Pipeline(
        fx.StreamSource(raw), batch_size=4, host=fx.HostMap(decode, workers=2), drop_remainder=False
    )
    ids = np.concatenate([np.asarray(b["id"]) for b in pipe.epoch()])
    assert ids.tolist() == list(range(20))


def test_stream_errors():
    def bad_shape():
        yield {"x": np.zeros(3)}
        yield {"x": np.zeros(4)}

    pipe = fx.Pipeline(fx.StreamSource(bad_shape, name="s"), batch_size=2)
    with pytest.raises(
        fx.SourceError, match=r"s: record index 1 has fields .*\(4,\).*first record"
    ):
        list(pipe.epoch())
    with pytest.raises(fx.SourceError, match="the stream is empty"):
        fx.StreamSource(lambda: iter([]))
    with pytest.raises(fx.SourceError, match="record index 0 is a int"):
        fx.StreamSource(lambda: iter([3]))
    source = fx.StreamSource(Counted())
    with pytest.raises(fx.PipelineError, match="pass shuffle_window=K"):
        fx.Pipeline(source, batch_size=2, shuffle=True)
    with pytest.raises(fx.PipelineError, match="host stage runs in threads"):
        fx.Pipeline(source, batch_size=2, host=fx.HostMap(decode, backend="process"))
    with pytest.raises(fx.PipelineError, match="no known length"):
        fx.Pipeline(source, batch_size=2).steps_per_epoch  # noqa: B018
    with pytest.raises(fx.PipelineError, match="shuffle_window is for a StreamSource"):
        fx.Pipeline(fx.ArraySource({"x": np.arange(4)}), batch_size=2, shuffle_window=3)
