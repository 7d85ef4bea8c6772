"""examples/learned_preprocessing.py learns the true colour distortion (small settings)."""

import runpy
from pathlib import Path

from ops_reference import quick_compiles  # noqa: F401  (fixture)

EXAMPLE = Path(__file__).parent.parent / "examples" / "learned_preprocessing.py"


def test_learned_preprocessing_recovers_the_distortion(capsys):
    example = runpy.run_path(str(EXAMPLE))  # defines run() without running main()
    result = example["run"](steps=120, size=16, batch_size=16, records=64, log_every=40)
    printed = capsys.readouterr().out
    assert "recovered (true)" in printed and printed.count("\n") > 4  # the loss curve
    for name, true in example["TRUE"].items():
        centre, spread = result[name]
        assert abs(centre - true) < 0.01, (name, centre, true)
        assert spread < 0.02, (name, spread)
