"""Tests of the benchmark harness (benchmarks): every variant does the same work.

Deterministic settings (no shuffle, crop from zero padding, flip p=0, full-image resize) must
give equal values across variants; random settings must agree statistically. W2 and
W2-folder (the same JPEGs as files on disk) run the same checks. The harness itself is run
end to end at a tiny size. No timing assertions.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from PIL import Image

from benchmarks import _augment, _config, _data, _harness, _variants
from benchmarks._cli import build_parser, main

HAS_TORCH = importlib.util.find_spec("torch") is not None
IN_PROCESS = ["reference", "feedax", "grain"] + (["torch"] if HAS_TORCH else [])


def take(
    variant: str, workload: str, data: _data.Bundle, cfg: Any, k: int
) -> list[dict[str, np.ndarray]]:
    """First ``k`` batches of a variant, as NumPy, after checking they are jax.Arrays."""
    import jax

    fn = _variants.load_function(variant, workload)
    it: Iterator[dict[str, Any]] = fn(data, cfg)
    try:
        out = []
        for _ in range(k):
            batch = next(it)
            assert all(isinstance(v, jax.Array) for v in batch.values()), variant
            out.append({key: np.asarray(v) for key, v in batch.items()})
        return out
    finally:
        close = getattr(it, "close", None)
        if callable(close):
            close()


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("bench-data"))


# ------------------------------------------------------------------------------ W1


def _w1(cache: str, **kw: Any) -> tuple[_data.Bundle, _config.CifarConfig]:
    cfg = _config.CifarConfig(n=512, shuffle=False, **kw)
    return _data.ensure_data(cfg, cache), cfg


W1_VARIANTS = [*IN_PROCESS, "feedax-host", "handwritten", "grain-defaults"]


@pytest.mark.parametrize("variant", W1_VARIANTS)
def test_w1_deterministic_values_equal(cache: str, variant: str) -> None:
    data, cfg = _w1(cache, padding=0, flip_p=0.0, batch_size=64)
    batches = take(variant, "w1", data, cfg, 2)
    mean, std = np.float32(cfg.mean), np.float32(cfg.std)
    for i, b in enumerate(batches):
        sl = slice(64 * i, 64 * (i + 1))
        assert b["image"].shape == (64, 32, 32, 3) and b["image"].dtype == np.float32
        assert b["label"].shape == (64,) and b["label"].dtype == np.int32
        want = (data["images"][sl].astype(np.float32) - mean) / std
        np.testing.assert_allclose(b["image"], want, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(b["label"], data["labels"][sl])


def _recover_crop_flip(
    out: np.ndarray, image: np.ndarray, cfg: _config.CifarConfig
) -> tuple[int, int, bool]:
    """The (dy, dx, flip) that produce ``out`` from ``image``; asserts an exact match."""
    p = cfg.padding
    norm = (
        np.pad(image, ((p, p), (p, p), (0, 0))).astype(np.float32) - np.float32(cfg.mean)
    ) / np.float32(cfg.std)
    win = np.lib.stride_tricks.sliding_window_view(norm, (32, 32), axis=(0, 1))
    win = np.moveaxis(win, 2, -1)  # (2p+1, 2p+1, 32, 32, 3)
    errs = np.stack(
        [np.abs(win - out).max(axis=(2, 3, 4)), np.abs(win - out[:, ::-1]).max(axis=(2, 3, 4))]
    )
    f, dy, dx = np.unravel_index(np.argmin(errs), errs.shape)
    assert errs[f, dy, dx] < 1e-4, "output is not a crop/flip of its record"
    return int(dy), int(dx), bool(f)


@pytest.mark.parametrize("variant", W1_VARIANTS)
def test_w1_random_statistics(cache: str, variant: str) -> None:
    data, cfg = _w1(cache)  # padding 4, flip p=0.5, batch 256
    (b,) = take(variant, "w1", data, cfg, 1)
    draws = np.array(
        [_recover_crop_flip(b["image"][i], data["images"][i], cfg) for i in range(cfg.batch_size)]
    )
    dy, dx, flip = draws.T
    assert 0.35 < flip.mean() < 0.65
    for off in (dy, dx):
        assert off.min() >= 0 and off.max() <= 2 * cfg.padding
        assert 3.3 < off.mean() < 4.7  # uniform on 0..8: mean 4, s.e. 0.16
        assert len(np.unique(off)) >= 8


# ------------------------------------------------------------------------------ W2

W2_VARIANTS = ["reference", "feedax", "feedax-host", "grain", "grain-defaults"] + (
    ["torch"] if HAS_TORCH else []
)
W2_WORKLOADS = ["w2", "w2folder"]


def _w2(cache: str, workload: str = "w2", **kw: Any) -> tuple[_data.Bundle, _config.JpegConfig]:
    cfg = _config.WORKLOADS[workload].config_cls(
        n=48, image_size=64, out_size=56, batch_size=16, shuffle=False, **kw
    )
    assert isinstance(cfg, _config.JpegConfig)
    return _data.ensure_data(cfg, cache), cfg


def _w2_expected(data: _data.Bundle, cfg: _config.JpegConfig, n: int) -> np.ndarray:
    """Full-image bilinear resize with PIL then normalise: the deterministic W2 output."""
    out = []
    jpegs = _data.jpeg_records(data, cfg)
    for i in range(n):
        img = _augment.decode_jpeg(jpegs(i))
        img = img.resize((cfg.out_size, cfg.out_size), Image.Resampling.BILINEAR)
        out.append(np.asarray(img, np.float32))
    return (np.stack(out) - np.float32(cfg.mean)) / np.float32(cfg.std)


@pytest.mark.parametrize("workload", W2_WORKLOADS)
@pytest.mark.parametrize("variant", W2_VARIANTS)
def test_w2_deterministic_values_close(cache: str, variant: str, workload: str) -> None:
    data, cfg = _w2(cache, workload, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.0)
    (b,) = take(variant, workload, data, cfg, 1)
    assert b["image"].shape == (16, 56, 56, 3) and b["image"].dtype == np.float32
    np.testing.assert_array_equal(b["label"], data["labels"][:16])
    diff = np.abs(b["image"] - _w2_expected(data, cfg, 16)) * np.float32(cfg.std)
    assert diff.max() <= 1.01  # PIL rounds its resize to uint8, the JAX reference does not
    assert diff.mean() < 0.5


@pytest.mark.parametrize("workload", W2_WORKLOADS)
@pytest.mark.parametrize("variant", W2_VARIANTS)
def test_w2_random_statistics(cache: str, variant: str, workload: str) -> None:
    data, cfg = _w2(cache, workload, scale=(1.0, 1.0), ratio=(1.0, 1.0))  # flip p=0.5 only
    batches = take(variant, workload, data, cfg, 3)
    got = np.concatenate([b["image"] for b in batches])
    want = _w2_expected(data, cfg, len(got))
    same = np.abs(got - want).max(axis=(1, 2, 3)) * min(cfg.std) <= 1.01
    flipped = np.abs(got - want[:, :, ::-1]).max(axis=(1, 2, 3)) * min(cfg.std) <= 1.01
    assert np.all(same | flipped)
    assert 0.2 < flipped.mean() < 0.8  # 48 draws of p=0.5
    # Random-resized crops: outputs differ from the full-image resize, values stay sane.
    data, cfg = _w2(cache, workload)
    (b,) = take(variant, workload, data, cfg, 1)
    assert np.isfinite(b["image"]).all()
    assert np.abs(b["image"] - want[:16]).max(axis=(1, 2, 3)).min() > 0.05


def test_w2folder_files_are_the_w2_jpegs_labelled_by_folder(cache: str) -> None:
    import feedax as fx

    data, cfg = _w2(cache, "w2folder")
    assert isinstance(cfg, _config.JpegFolderConfig) and cfg.classes == 10
    w2 = _data.ensure_data(_config.JpegConfig(n=48, image_size=64, out_size=56), cache)
    folders = sorted(e.name for e in os.scandir(data.path) if e.is_dir())
    assert folders == [f"class_{k:02d}" for k in range(10)]
    files = _data.JpegFiles(data.path)
    assert len(files) == len(data) == 48
    labels = files.labels
    assert labels.dtype == np.int32
    np.testing.assert_array_equal(labels, data["labels"])
    np.testing.assert_array_equal(labels, np.arange(48) * 10 // 48)  # sorted by folder
    assert np.all(np.diff(labels) >= 0) and np.bincount(labels).min() >= 4
    for i, path in enumerate(files.paths):
        assert os.path.basename(os.path.dirname(path)) == folders[labels[i]]
        assert os.path.basename(path) == f"{i:05d}.jpg"
        assert files(i) == _data.jpeg_bytes(w2, i)  # byte for byte the W2 data
    # feedax's ImageFolderSource lists the same files with the same labels.
    src = fx.ImageFolderSource(data.path)
    assert src.classes == folders
    got = src.read(np.arange(48))
    assert list(got["path"]) == files.paths
    np.testing.assert_array_equal(got["label"], labels)
    # Cached: a second call reuses the folder; JpegFiles pickles as paths.
    stamp = os.stat(files.paths[0]).st_mtime_ns
    assert _data.ensure_data(cfg, cache).path == data.path
    assert os.stat(files.paths[0]).st_mtime_ns == stamp
    assert pickle.loads(pickle.dumps(files))(5) == files(5)
    from benchmarks import _grain  # grain-mp pickles its source into spawned workers

    record = pickle.loads(pickle.dumps(_grain._JpegSource(files)))[5]
    assert record["jpeg"] == files(5) and record["label"] == labels[5]
    with pytest.raises(TypeError, match="files"):
        _data.generate(cfg)


# ------------------------------------------------------------------------------ W3

W3_VARIANTS = ["reference", "grain"] + (["torch"] if HAS_TORCH else [])


def _w3(cache: str, **kw: Any) -> tuple[_data.Bundle, _config.TokensConfig]:
    cfg = _config.TokensConfig(n=300, min_len=16, max_len=100, row_len=256, batch_size=4, **kw)
    return _data.ensure_data(cfg, cache), cfg


def _unpack(batch: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The sequences of a packed batch, row by row, checking segment ids and positions."""
    seqs = []
    for tok, seg, pos in zip(
        batch["tokens"], batch["segment_ids"], batch["positions"], strict=True
    ):
        used = int(np.count_nonzero(seg))
        assert np.all(seg[used:] == 0) and np.all(tok[used:] == 0)
        for s in range(1, int(seg.max()) + 1):
            where = np.flatnonzero(seg == s)
            np.testing.assert_array_equal(pos[where], np.arange(len(where)))
            seqs.append(tok[where])
    return seqs


def test_w3_packing_equal_across_variants(cache: str) -> None:
    data, cfg = _w3(cache, shuffle=False)
    results = {v: take(v, "w3", data, cfg, 3) for v in W3_VARIANTS}
    ref = results["reference"]
    for b in ref:
        assert set(b) == {"tokens", "segment_ids", "positions"}
        assert all(v.shape == (4, 256) and v.dtype == np.int32 for v in b.values())
    # First fit in visiting order: the concatenated packed sequences, read bin by bin per
    # batch, are the dataset's sequences, each exactly once.
    seen = [s for b in ref for s in _unpack(b)]
    assert sorted(map(tuple, seen)) == sorted(
        tuple(_data.sequence(data, i)) for i in range(len(seen))
    )
    for v, batches in results.items():
        for a, b in zip(ref, batches, strict=True):
            for key in a:
                np.testing.assert_array_equal(a[key], b[key], err_msg=f"{v} {key}")


@pytest.mark.parametrize("variant", [*W3_VARIANTS, "feedax", "grain-bestfit", "grain-defaults"])
def test_w3_shuffled_packs_whole_distinct_records(cache: str, variant: str) -> None:
    data, cfg = _w3(cache)
    lookup = {tuple(_data.sequence(data, i)): i for i in range(len(data))}
    seqs = [s for b in take(variant, "w3", data, cfg, 3) for s in _unpack(b)]
    ids = [lookup[tuple(s)] for s in seqs]  # KeyError: a packed sequence is not a record
    assert len(set(ids)) == len(ids)
    assert ids != sorted(ids)


def test_grain_packing_variants_have_only_w3_and_time_a_restore(cache: str) -> None:
    with pytest.raises(NotImplementedError):
        _variants.load_function("grain-bestfit", "w1")
    data, cfg = _w3(cache)
    from benchmarks import _feedax, _grain_packing

    assert 0 < _grain_packing.restore_best_fit(data, cfg) < 60
    assert 0 < _feedax.restore_w3(data, cfg, after=5) < 60


# ------------------------------------------------------------------------------ W4


def _w4(cache: str, **kw: Any) -> tuple[_data.Bundle, _config.TextConfig]:
    cfg = _config.TextConfig(
        n=200, min_words=5, max_words=150, words=300, vocab=400, row_len=128, batch_size=4, **kw
    )
    return _data.ensure_data(cfg, cache), cfg


def _encodings(data: _data.Bundle, cfg: _config.TextConfig) -> dict[tuple[int, ...], int]:
    import json

    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(data.path / _data.TOKENIZER_FILE))
    with open(data.path / _data.TEXT_FILE) as f:
        texts = [json.loads(line)["text"] for line in f]
    return {tuple(tokenizer.encode(t).ids[: cfg.row_len]): i for i, t in enumerate(texts)}


def test_w4_first_fit_is_the_same_for_the_reference_and_grain(cache: str) -> None:
    data, cfg = _w4(cache, shuffle=False)
    ref, grain_ = (take(v, "w4", data, cfg, 3) for v in ("reference", "grain"))
    lookup = _encodings(data, cfg)
    seen = [lookup[tuple(s)] for b in ref for s in _unpack(b)]
    assert sorted(seen) == list(range(len(seen)))  # the first documents, each once
    for a, b in zip(ref, grain_, strict=True):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.mark.parametrize("variant", ["feedax", "feedax-host", "feedax-ray", "grain-defaults"])
def test_w4_variants_pack_whole_distinct_documents(cache: str, variant: str) -> None:
    data, cfg = _w4(cache)
    lookup = _encodings(data, cfg)
    ids = [lookup[tuple(s)] for b in take(variant, "w4", data, cfg, 3) for s in _unpack(b)]
    assert len(set(ids)) == len(ids) > 3
    assert ids != sorted(ids)


def test_first_fit_packer_semantics() -> None:
    packer = _augment.FirstFitPacker(bins=2, row_len=10)
    seqs = [np.full(n, n, np.int32) for n in (6, 5, 3, 7, 4, 9)]
    # [6,3] [5]; 7 fits nowhere -> emit. [7] [4]; 9 fits nowhere -> emit. [9] is dropped.
    first, second = list(packer.pack(seqs))
    np.testing.assert_array_equal(first["segment_ids"][0], [1] * 6 + [2] * 3 + [0])
    np.testing.assert_array_equal(first["positions"][0], [*range(6), *range(3), 0])
    np.testing.assert_array_equal(first["tokens"][1], [5] * 5 + [0] * 5)
    np.testing.assert_array_equal(second["tokens"][:, 0], [7, 4])
    with pytest.raises(ValueError, match="exceeds row_len"):
        list(packer.pack([np.zeros(11, np.int32)]))


# ------------------------------------------------------------------------------ harness


def test_worker_env_strips_forced_device_count() -> None:
    env = _harness.worker_env({"XLA_FLAGS": "--xla_force_host_platform_device_count=8 --x=1"})
    assert env["XLA_FLAGS"] == "--x=1"
    env = _harness.worker_env({"XLA_FLAGS": "--xla_force_host_platform_device_count=8"})
    assert "XLA_FLAGS" not in env


def test_plan_is_round_robin() -> None:
    chosen = _variants.select(variants=("reference", "feedax", "grain"))
    plan = _harness._plan(specs_names=["w1"], chosen=chosen, rounds=2)
    assert [v.name for _, _, v in plan] == [
        "reference",
        "feedax",
        "grain",
        "feedax",
        "grain",
        "reference",
    ]


def test_config_roundtrip_and_cli_errors() -> None:
    cfg = _config.JpegConfig(n=7, scale=(0.5, 1.0))
    assert (
        _config.config_from_dict("w2", json.loads(json.dumps(_config.config_to_dict(cfg)))) == cfg
    )
    args = build_parser().parse_args(["-w", "w1,w3", "-r", "2", "--peers", "grain"])
    assert args.workloads == ["w1", "w3"] and args.peers == ["grain"]
    assert build_parser().parse_args([]).workloads == ["w1", "w2", "w2folder", "w3", "w4"]
    folder = _config.JpegFolderConfig(n=7, classes=3)
    assert _config.config_from_dict("w2folder", _config.config_to_dict(folder)) == folder
    with pytest.raises(SystemExit):
        main(["-w", "w9", "-o", "unused"])
    with pytest.raises(ValueError, match="unknown variant"):
        _variants.select(variants=("nope",))


def test_harness_end_to_end(tmp_path: Any, cache: str) -> None:
    report = _harness.run(
        ("w1", "w3"),
        rounds=1,
        n={"w1": 512, "w3": 400},
        batches=2,
        warmup=0,
        variants=("reference", "feedax", "tfdata"),
        out_dir=tmp_path,
        cache_dir=cache,
        progress=False,
        print_table=False,
    )
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert saved["summary"] == json.loads(json.dumps(report["summary"]))
    rows = {(r["workload"], r["variant"]): r for r in saved["summary"]}
    for wl in ("w1", "w3"):
        assert rows[(wl, "reference")]["status"] == "ok", rows[(wl, "reference")]
        assert rows[(wl, "reference")]["vs_reference"] == pytest.approx(1.0)
    assert rows[("w1", "feedax")]["status"] == "ok", rows[("w1", "feedax")]
    assert rows[("w3", "feedax")]["status"] == "ok", rows[("w3", "feedax")]
    expected_tf = "ok" if importlib.util.find_spec("tensorflow") else "not installed"
    assert rows[("w1", "tfdata")]["status"] in (expected_tf, "n/a")
    with Image.open(tmp_path / "bench.png") as png:
        assert png.size[0] > 100 and png.size[1] > 100
    assert all(r["status"] in ("ok", "n/a") for r in saved["runs"])
    ok = [r for r in saved["runs"] if r["status"] == "ok"]
    assert all(r["records_per_s"] > 0 and r["batches"] == 2 for r in ok)


@pytest.mark.parametrize("variant", ["grain-mp"] + (["torch-mp"] if HAS_TORCH else []))
def test_multiprocess_variant_runs_in_fresh_process(cache: str, variant: str) -> None:
    cfg = _config.CifarConfig(n=512, workers=2)
    data = _data.ensure_data(cfg, cache)
    args = {
        "config": _config.config_to_dict(cfg),
        "data_dir": str(data.path),
        "batches": 2,
        "warmup": 0,
    }
    res = _harness.run_worker(variant, "w1", args, timeout_s=120)
    assert res["status"] == "ok", res
    assert res["spec"] == {"image": [[256, 32, 32, 3], "float32"], "label": [[256], "int32"]}
