import numpy as np
import pytest
from conftest import host, make_images
from flax import nnx

import feedax as fx

N = 64


def random_pipeline(batch_size: int, *, seed: int = 0, prefetch: int = 2, drop=False):
    rngs = nnx.Rngs(augment=7)
    ops = [fx.RandomCrop(6, padding=2, rngs=rngs), fx.RandomFlip(rngs=rngs)]
    source = fx.ArraySource({"image": make_images(N), "id": np.arange(N, dtype=np.int32)})
    return fx.Pipeline(
        source,
        ops,
        batch_size=batch_size,
        shuffle=True,
        seed=seed,
        drop_remainder=drop,
        prefetch=prefetch,
    )


def records_by_id(pipe, epochs: int = 1) -> dict[tuple[int, int], np.ndarray]:
    out = {}
    for _ in range(epochs):
        epoch = pipe.position[0]
        for b in pipe.epoch():
            b = host(b)
            valid = b.get("valid", np.ones(len(b["id"]), bool))
            for image, i in zip(b["image"][valid], b["id"][valid], strict=True):
                out[(epoch, int(i))] = image
    return out


def test_same_record_same_augmentation_whatever_the_batch_size():
    reference = records_by_id(random_pipeline(1), epochs=2)
    assert len(reference) == 2 * N
    for batch_size, prefetch in [(7, 0), (64, 2), (10, 3)]:
        other = records_by_id(random_pipeline(batch_size, prefetch=prefetch), epochs=2)
        assert other.keys() == reference.keys()
        for key, image in reference.items():
            np.testing.assert_array_equal(other[key], image, err_msg=str(key))


def test_same_record_same_augmentation_whatever_the_order_seed():
    # The order seed changes positions only; a record's draw depends on (key, epoch, index).
    a = records_by_id(random_pipeline(8, seed=0))
    b = records_by_id(random_pipeline(8, seed=123))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_augmentation_changes_between_epochs_and_records():
    recs = records_by_id(random_pipeline(16), epochs=2)
    differs_by_epoch = sum(not np.array_equal(recs[(0, i)], recs[(1, i)]) for i in range(N))
    assert differs_by_epoch > N // 2


def test_different_records_get_different_draws():
    rngs = nnx.Rngs(augment=0)
    # Identical records: only the index differs, and 25 crop offsets are possible.
    ramp = np.arange(64, dtype=np.uint8).reshape(8, 8, 1)
    source = fx.ArraySource({"image": np.stack([ramp] * 32), "id": np.arange(32)})
    pipe = fx.Pipeline(source, [fx.RandomCrop(4, rngs=rngs)], batch_size=32)
    images = np.asarray(next(pipe.epoch())["image"])
    assert len({im.tobytes() for im in images}) > 12


@pytest.mark.parametrize("prefetch", [0, 1, 4])
def test_prefetch_depth_does_not_change_the_stream(prefetch):
    ref = [host(b) for b in random_pipeline(8, prefetch=0).epoch()]
    got = [host(b) for b in random_pipeline(8, prefetch=prefetch).epoch()]
    for r, g in zip(ref, got, strict=True):
        for k in r:
            np.testing.assert_array_equal(r[k], g[k])
