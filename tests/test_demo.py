import pytest

pytest.importorskip("optax")
pytest.importorskip("sklearn")
Image = pytest.importorskip("PIL.Image")

from feedax import cli, demo  # noqa: E402
from feedax._demo.grid import grid_size  # noqa: E402


def test_tiny_demo_resumes_exactly_and_writes_its_outputs(tmp_path, capsys):
    # 1437 training records // 256 = 5 steps: checkpoint after step 2, replay steps 3 and 4.
    result = demo.run(epochs=1, batch_size=256, out=tmp_path / "out", resume_steps=2)

    assert result.resumed_exactly
    assert 0.0 <= result.accuracy <= 1.0
    assert result.pipeline_records_per_s > 0 and result.train_records_per_s > 0
    assert result.checkpoint.is_dir()
    with Image.open(result.grid) as grid:
        # Three rows (original, epoch 0, epoch 1) of 12 digits upscaled x8, 4-pixel gaps.
        assert grid.size == grid_size(3) == (820, 208)
        assert grid.mode == "L"
    out = capsys.readouterr().out
    assert "same batches: True   same losses: True" in out
    assert str(result.grid) in out


def test_cli_rejects_impossible_arguments_before_training(capsys):
    assert cli.main(["demo", "--resume-steps", "100000"]) == 2
    assert "resume_steps (100000) must be smaller" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["demo", "--epochs", "0"])


def test_cli_help_states_the_demo_defaults(capsys):
    with pytest.raises(SystemExit):
        cli.main(["demo", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for what, default in [
        ("training epochs", demo.DEFAULT_EPOCHS),
        ("batch size", demo.DEFAULT_BATCH_SIZE),
        ("output directory", demo.DEFAULT_OUT),
        ("steps replayed after resuming", demo.DEFAULT_RESUME_STEPS),
    ]:
        assert f"{what} ({default})" in help_text, what
