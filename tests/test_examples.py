"""The literate examples run top to bottom (at a tiny size)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_mc_dropout_your_model_runs(tmp_path):
    run = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "mc_dropout_your_model.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    assert "ROC-AUC adversarial vs clean" in run.stdout and "mutual information" in run.stdout
    assert (tmp_path / "mc_dropout_your_model.png").stat().st_size > 10_000


def test_detect_adversarial_inputs_runs():
    run = subprocess.run([sys.executable, str(ROOT / "examples" / "detect_adversarial_inputs.py"), "--quick"],
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "MI detector (threshold" in run.stdout and "of clean images" in run.stdout
