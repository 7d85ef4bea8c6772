import numpy as np
import pytest
from conftest import host, make_pipeline


def epoch_ids(pipe) -> list[np.ndarray]:
    return [host(b) for b in pipe.epoch()]


@pytest.mark.parametrize("n", [8, 13, 50, 64, 101])
@pytest.mark.parametrize("shuffle", [True, False])
def test_drop_remainder_covers_each_kept_record_once(n, shuffle):
    pipe = make_pipeline(n, batch_size=8, shuffle=shuffle, augment=False)
    batches = epoch_ids(pipe)
    assert len(batches) == n // 8 == pipe.steps_per_epoch
    ids = np.concatenate([b["id"] for b in batches])
    assert len(ids) == len(set(ids.tolist())) == (n // 8) * 8
    if not shuffle:
        assert ids.tolist() == list(range(len(ids)))


@pytest.mark.parametrize("n", [8, 13, 50, 101])
@pytest.mark.parametrize("shuffle", [True, False])
def test_padding_covers_every_record_once_and_masks_the_rest(n, shuffle):
    pipe = make_pipeline(n, batch_size=8, shuffle=shuffle, drop_remainder=False, augment=False)
    batches = epoch_ids(pipe)
    assert len(batches) == -(-n // 8) == pipe.steps_per_epoch
    for b in batches:
        assert b["image"].shape == (8, 8, 8, 3) and b["valid"].shape == (8,)
    ids = np.concatenate([b["id"][b["valid"]] for b in batches])
    assert sorted(ids.tolist()) == list(range(n))
    assert sum(int(b["valid"].sum()) for b in batches) == n
    assert all(b["valid"].all() for b in batches[:-1])


def test_epochs_have_different_orders_and_seeds_too():
    pipe = make_pipeline(40, batch_size=8, augment=False)
    first = np.concatenate([b["id"] for b in epoch_ids(pipe)])
    second = np.concatenate([b["id"] for b in epoch_ids(pipe)])
    assert sorted(first.tolist()) == sorted(second.tolist()) == list(range(40))
    assert not np.array_equal(first, second)
    other = make_pipeline(40, batch_size=8, seed=1, augment=False)
    assert not np.array_equal(first, np.concatenate([b["id"] for b in epoch_ids(other)]))


def test_endless_iteration_crosses_epochs():
    pipe = make_pipeline(20, batch_size=8, augment=False)  # 2 batches per epoch
    it = iter(pipe)
    ids = [np.asarray(next(it)["id"]) for _ in range(6)]
    assert pipe.position == (3, 0)
    for e in range(3):
        epoch = np.concatenate(ids[2 * e : 2 * e + 2])
        assert len(set(epoch.tolist())) == 16


def test_epoch_yields_rest_of_current_epoch():
    pipe = make_pipeline(40, batch_size=8, augment=False)
    it = pipe.epoch()
    first_two = [next(it), next(it)]
    it.close()
    assert pipe.position == (0, 16)
    rest = list(pipe.epoch())
    assert len(rest) == 3
    assert pipe.position == (1, 0)
    ids = np.concatenate([np.asarray(b["id"]) for b in first_two + rest])
    assert sorted(ids.tolist()) == list(range(40))
