import json

import numpy as np
import pytest
from typer.testing import CliRunner

from uncertadv import artifacts
from uncertadv.cli import app

runner = CliRunner()
TINY = ["--epochs", "1", "--limit-train", "256", "--limit-test", "64", "--samples", "3", "--batch-size", "64"]


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("models") / "cnn.keras"
    result = run("train", "cnn", "--out", out, *TINY)
    assert result.exit_code == 0, result.output
    return out, result


def assert_one_line_error(result):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr


def test_train_writes_model_and_sidecar(trained):
    out, result = trained
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["config"]["epochs"] == 1 and record["config"]["seed"] == 0
    assert record["versions"]["tensorflow"].startswith("2.21")
    metrics = record["metrics"]
    assert metrics["n_test"] == 64 and 0.0 <= metrics["test_accuracy_mc"] <= 1.0
    assert f"{metrics['test_accuracy_deterministic']:.4f}" in result.stdout
    assert not list(out.parent.glob(".*tmp*"))  # no temporary files left behind


def test_train_rerun_reuses_the_finished_model(trained):
    out, _ = trained
    before = out.stat().st_mtime_ns
    result = run("train", "cnn", "--out", out, *TINY)
    assert result.exit_code == 0 and "reusing" in result.stderr
    assert out.stat().st_mtime_ns == before


def test_score_writes_one_row_per_input_and_a_summary(trained, tmp_path):
    model, _ = trained
    out = tmp_path / "scores.csv"
    result = run("score", "--model", model, "--out", out, "--samples", "4", "--seed", "1", "--limit", "30")
    assert result.exit_code == 0, result.output
    table = artifacts.read_csv(out)
    assert list(table) == [
        "index",
        "label",
        "mc_pred",
        "det_pred",
        "predictive_entropy",
        "expected_entropy",
        "mutual_information",
        "softmax_variance",
        "variation_ratio",
    ]
    assert len(table["index"]) == 30 and table["label"][:3] == ["7", "2", "1"]
    mi = np.asarray(table["mutual_information"], float)
    pe = np.asarray(table["predictive_entropy"], float)
    assert (mi >= 0).all() and (mi <= pe + 1e-6).all()
    assert "accuracy: deterministic" in result.stdout
    # same command again reuses; another seed recomputes different numbers
    assert (
        "reused"
        in run("score", "--model", model, "--out", out, "--samples", "4", "--seed", "1", "--limit", "30").stderr
    )
    assert run("score", "--model", model, "--out", out, "--samples", "4", "--seed", "2", "--limit", "30").exit_code == 0
    assert artifacts.read_csv(out)["mutual_information"] != table["mutual_information"]


def test_missing_and_corrupt_models_fail_cleanly_and_keep_existing_output(trained, tmp_path):
    out = tmp_path / "scores.csv"
    out.write_text("precious\n")
    assert_one_line_error(run("score", "--model", tmp_path / "missing.keras", "--out", out))
    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes(b"not a zip")
    assert_one_line_error(run("score", "--model", corrupt, "--out", out))
    assert out.read_text() == "precious\n"


@pytest.mark.parametrize(
    "args",
    [
        ["score", "--model", "{model}", "--out", "{tmp}/s.csv", "--samples", "0"],
        ["score", "--model", "{model}", "--out", "{tmp}/s.csv", "--dataset", "imagenet"],
        ["score", "--model", "{model}", "--out", "{tmp}/s.txt"],
        ["train", "cnn", "--out", "{tmp}/m.h5"],
        ["train", "cnn", "--out", "{tmp}/m.keras", "--learning-rate", "-1"],
        ["train", "cnn", "--out", "{tmp}/m.keras", "--epochs", "0"],
        ["frobnicate"],
    ],
)
def test_bad_input_is_one_line_and_exit_2(trained, tmp_path, args):
    model, _ = trained
    result = run(*[a.format(model=model, tmp=tmp_path) for a in args])
    assert_one_line_error(result)
    assert not (tmp_path / "m.keras").exists()


def test_help_describes_commands():
    result = run("--help")
    assert result.exit_code == 0 and "train" in result.stdout and "score" in result.stdout


def test_python_dash_m_and_checkout_script_run_the_same_app():
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    for cmd in ([sys.executable, "-m", "uncertadv", "--help"], [sys.executable, str(root / "cli.py"), "--help"]):
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and "score" in out.stdout, out.stderr
