"""Block shuffle: a bijection per epoch that reads a window of blocks at a time, resumable."""

import itertools

import numpy as np
import pytest

import feedax as fx
from feedax import testing
from feedax._block_order import BlockOrder


@pytest.mark.parametrize(
    ("n", "block", "window"),
    list(itertools.product([1, 2, 23, 100, 101, 997], [1, 4, 10], [1, 3])),
)
def test_every_record_once_per_epoch_in_a_new_order(n, block, window):
    shuffle = fx.BlockShuffle(block, window)
    orders = [BlockOrder(n, shuffle, seed=5, epoch=e)(np.arange(n)) for e in range(3)]
    for order in orders:
        assert sorted(order.tolist()) == list(range(n))
    if n > block * window and n > 20:
        assert not np.array_equal(orders[0], orders[1])


@pytest.mark.parametrize(("n", "block", "window"), [(1000, 10, 4), (997, 10, 4), (95, 7, 2)])
def test_a_window_of_positions_reads_its_window_of_blocks(n, block, window):
    order = BlockOrder(n, fx.BlockShuffle(block, window), seed=1, epoch=0)
    indices = order(np.arange(n))
    span = block * window
    for start in range(0, n, span):  # at most two windows' blocks in any aligned span
        assert len(np.unique(indices[start : start + span] // block)) <= 2 * window
    first = indices[: span - block]  # inside the first window: its own blocks only
    assert len(np.unique(first // block)) <= window


def test_a_block_shuffled_pipeline_resumes_exactly_and_covers_the_source():
    data = {"x": np.arange(230, dtype=np.int32)}

    def make():
        return fx.Pipeline(
            fx.ArraySource(data), batch_size=16, shuffle=fx.BlockShuffle(10, 3), seed=2
        )

    testing.assert_resumes_exactly(make, steps=30)  # 14 batches per epoch: crosses two
    pipe = make()
    seen = [np.asarray(b["x"]) for b in pipe.epoch()]
    flat = np.concatenate(seen)
    assert len(set(flat.tolist())) == len(flat) == 224  # 14 full batches, no repeats
    assert max(len(np.unique(b // 10)) for b in seen) <= 6  # a batch reads few blocks


def test_block_shuffle_reads_parquet_row_group_by_row_group(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"x": np.arange(400)}), tmp_path / "a.parquet", row_group_size=20)
    source = fx.ParquetSource(str(tmp_path / "a.parquet"), cache_row_groups=4)
    pipe = fx.Pipeline(source, batch_size=10, shuffle=fx.BlockShuffle(20, 4))
    batches = [np.asarray(b["x"]) for b in pipe.epoch()]
    assert sorted(np.concatenate(batches).tolist()) == list(range(400))
    assert max(len(np.unique(b // 20)) for b in batches) <= 4


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda s: fx.Pipeline(fx.Mix([s, s]), batch_size=4, shuffle=s_block()), "Mix"),
        (
            lambda s: fx.Pipeline(
                fx.ArraySource({"x": np.arange(40)}, on_device=True),
                batch_size=4,
                shuffle=s_block(),
            ),
            "on-device",
        ),
        (lambda s: fx.Pipeline(s, batch_size=4, shuffle="yes"), "True, False or an fx.Block"),
    ],
)
def test_block_shuffle_errors(build, match):
    with pytest.raises(fx.PipelineError, match=match):
        build(fx.ArraySource({"x": np.arange(40)}))
    with pytest.raises(fx.PipelineError, match="block must be an int >= 1"):
        fx.BlockShuffle(0, 2)


def s_block():
    return fx.BlockShuffle(5, 2)
