import pytest

pytest.importorskip("optax")
pytest.importorskip("tokenizers")

from feedax import cli, demo_lm


def test_tiny_lm_demo_learns_packs_and_resumes_exactly(tmp_path, capsys):
    result = demo_lm.run(
        steps=12, resume_steps=3, batch_size=4, length=64, files=20, out=tmp_path / "lm"
    )
    assert result.resumed_exactly
    assert result.last_loss < result.first_loss
    assert 0.9 < result.fill <= 1.0 and result.tokens_per_s > 0
    assert result.checkpoint.is_dir()
    out = capsys.readouterr().out
    assert "same rows: True   same losses: True" in out
    assert "packing fill" in out
    # The tokenized corpus is cached: a second run tokenizes nothing.
    assert (tmp_path / "lm" / "tokens" / "fingerprint.json").is_file()


def test_cli_routes_the_lm_task_and_rejects_mixed_options(capsys):
    assert cli.main(["demo", "--task", "lm", "--epochs", "2"]) == 2
    assert "--steps, not --epochs" in capsys.readouterr().err
    assert cli.main(["demo", "--steps", "5"]) == 2
    assert "--steps is for --task lm" in capsys.readouterr().err


def test_cli_version_and_bare_command(capsys):
    import feedax as fx

    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"feedax {fx.__version__}"
    assert cli.main([]) == 0
    assert "COMMAND" in capsys.readouterr().out
