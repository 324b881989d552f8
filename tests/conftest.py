"""Shared fixtures: tiny models trained once per test session (a few hundred MNIST images)."""

import shutil

import pytest
from typer.testing import CliRunner

from uncertadv.cli import app

QUICK = ["--epochs", "1", "--limit-train", "400", "--limit-test", "50", "--samples", "2"]


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """A folder with cnn.keras and a 2-member ensemble.json (member 0 = the CNN)."""
    models = tmp_path_factory.mktemp("tiny") / "models"
    runner = CliRunner()
    for args in (
        ["train", "cnn", "--out", models / "cnn.keras", *QUICK],
        [
            "train",
            "cnn",
            "--members",
            "2",
            "--first-member",
            models / "cnn.keras",
            "--out",
            models / "ensemble.json",
            *QUICK,
        ],
    ):
        result = runner.invoke(app, [str(a) for a in args])
        assert result.exit_code == 0, result.output
    return models


@pytest.fixture(scope="module")
def fresh_results(tiny_models, tmp_path_factory):
    """A results folder of this module's own, holding a copy of the tiny models."""
    root = tmp_path_factory.mktemp("results")
    shutil.copytree(tiny_models, root / "models")
    return root


def assert_one_line_error(result, text: str = "") -> None:
    """Bad input: exit code 2 and exactly one line on stderr, starting 'error: ' and naming ``text``."""
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert text in result.stderr, result.stderr
