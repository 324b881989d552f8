"""The design card's commands, exactly as written, need no other option.

They run the full default recipe as written; here $UNCERTADV_RESULTS points them at a results
folder of tiny models, and only options that keep them tiny are added (never a required one)."""

import re
import shutil

import pytest
from typer.testing import CliRunner

from uncertadv import artifacts
from uncertadv.cli import app

runner = CliRunner()
TINY_CNN = ["--epochs", "1", "--limit-train", "400", "--limit-test", "50", "--samples", "2"]  # conftest's recipe


@pytest.fixture(scope="module")
def root(tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    shutil.copytree(tiny_models, root / "mnist" / "models")
    return root


def run(root, *args):
    result = runner.invoke(app, [str(a) for a in args], env={"UNCERTADV_RESULTS": str(root)})
    assert result.exit_code == 0, result.output
    return result


def test_train_vae_and_train_cnn_need_no_out(root):
    run(root, "train", "vae", "--epochs", "1", "--limit-train", "200")
    assert artifacts.read_json(root / "mnist" / "models" / "vae.json")["config"]["epochs"] == 1
    assert (root / "mnist" / "models" / "vae-decoder.keras").is_file()
    result = run(root, "train", "cnn", *TINY_CNN)  # the tiny CNN is there already: reused, not retrained
    assert "reusing" in result.stderr and str(root / "mnist" / "models" / "cnn.keras") in result.stderr


def test_attack_method_mim_eps_5_needs_nothing_else(root):
    result = run(root, "attack", "--method", "mim", "--eps", "5", "--n", "6", "--samples", "2")
    assert "on the mc predictor" in result.stdout
    record = artifacts.read_json(root / "mnist" / "attacks" / "mim_eps5_mc_n6_T2.json")
    assert record["config"]["attack"]["predictor"] == "mc" and record["config"]["n"] == 6


def test_report_needs_nothing_else(root):
    run(root, "report", "--methods", "mim", "--eps", "5", "--n", "6", "--samples", "2", "--bootstrap", "10")
    table = artifacts.read_csv(root / "mnist" / "table1.csv")
    assert table["predictor"] == ["deterministic", "mc", "ensemble"]
    assert artifacts.read_json(root / "mnist" / "table1.json")["attack_sets_reused"] == 1  # the mc set above


def test_help_says_the_defaults_train_what_is_missing():
    for command in (["train", "vae", "--help"], ["attack", "--help"], ["report", "--help"]):
        result = runner.invoke(app, command, terminal_width=200)
        assert result.exit_code == 0
        assert "default recipe" in result.stdout or "full MNIST table" in result.stdout, command
    # defaults written in the help text survive rich's markup (square brackets would be eaten)
    text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", runner.invoke(app, ["attack", "--help"]).stdout).split())
    assert "0.5 at eps 5, 1.2 at eps 10" in text and "results/DATASET" in text


def test_models_missing_from_a_clone_are_retrained_by_their_recorded_recipe(tiny_models, tmp_path):
    """A fresh clone holds the model records but not the .keras files."""
    root = tmp_path / "results"
    shutil.copytree(tiny_models, root / "mnist" / "models")
    (root / "mnist" / "models" / "ensemble-member1.keras").unlink()
    result = run(
        root, "attack", "--method", "fgm", "--eps", "5", "--predictor", "ensemble", "--n", "4", "--samples", "2"
    )
    assert "training the missing members" in result.stdout
    member = artifacts.read_json(root / "mnist" / "models" / "ensemble-member1.json")
    assert member["config"]["limit_train"] == 400 and member["config"]["seed"] == 1  # the recorded tiny recipe
