"""attack, score --attack, report and the adversarial figures on tiny models."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from uncertadv import artifacts
from uncertadv.cli import app

runner = CliRunner()
REPORT = ["report", "--methods", "fgm,bim", "--eps", "5,76", "--n", "12", "--samples", "2", "--bootstrap", "20"]


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def results(fresh_results):
    result = run(*REPORT, "--results", fresh_results)
    assert result.exit_code == 0, result.output
    return fresh_results


def test_report_writes_every_setting_and_auc_recomputes_from_scores(results):
    table = artifacts.read_csv(results / "table1.csv")
    assert len(table["attack"]) == 2 * 2 * 3
    assert table["mi_auc"][table["predictor"].index("deterministic")] == ""  # n/a, never 0 or 0.5
    scores = artifacts.read_csv(results / "scores.csv")
    for i in range(len(table["attack"])):
        if table["predictor"][i] == "deterministic":
            continue
        sel = [
            j
            for j in range(len(scores["attack"]))
            if (scores["attack"][j], scores["eps"][j], scores["predictor"][j])
            == (table["attack"][i], table["eps"][i], table["predictor"][i])
        ]
        labels = [scores["kind"][j] == "adversarial" for j in sel]
        mi = [float(scores["mutual_information"][j]) for j in sel]
        assert float(table["mi_auc"][i]) == pytest.approx(roc_auc_score(labels, mi), abs=1e-7)
    md = (results / "table1.md").read_text()
    assert "T = 2" in md and "N = 12" in md and "n/a" in md


def test_report_rerun_reuses_attack_sets(results):
    npz = results / "attacks" / "bim_eps76_mc_n12_T2.npz"
    before = npz.stat().st_mtime_ns
    assert run(*REPORT, "--results", results).exit_code == 0
    assert npz.stat().st_mtime_ns == before


def test_attack_sets_respect_budget_and_keep_sources_apart(results):
    from uncertadv import data
    from uncertadv.experiments import attack_sets

    x, _ = data.load_mnist("test")
    arrays, record = attack_sets.load(results / "attacks" / "bim_eps5_deterministic_n12_T2.npz")
    src = x[arrays["adversarial_index"]]
    assert np.abs(arrays["x_adv"] - src).max() <= 5 / 255 + 1e-6
    assert not set(arrays["clean_index"]) & set(arrays["adversarial_index"])
    assert record["config"]["eval_seed"] != record["config"]["attack"]["seed"]


def test_attack_command_and_score_attack_update_scores_csv(results):
    result = run(
        "attack",
        "--results",
        results,
        "--method",
        "mim",
        "--eps",
        "10",
        "--predictor",
        "mc",
        "--n",
        "8",
        "--samples",
        "2",
    )
    assert result.exit_code == 0, result.output
    assert "success rate" in result.stdout
    npz = results / "attacks" / "mim_eps10_mc_n8_T2.npz"
    result = run("score", "--attack", npz)
    assert result.exit_code == 0, result.output
    scores = artifacts.read_csv(results / "scores.csv")
    rows = [i for i in range(len(scores["attack"])) if scores["attack"][i] == "mim"]
    assert len(rows) == 24 and {scores["kind"][i] for i in rows} == {"clean", "noise", "adversarial"}
    assert any(a == "bim" for a in scores["attack"])  # other settings kept


def test_adversarial_figures(results):
    assert run("plot", "roc", "--results", results).exit_code == 0
    assert (results / "roc_bim_eps76.png").stat().st_size > 10_000
    result = run("plot", "adversarial-examples", "--results", results, "--method", "bim", "--eps", "76", "--count", "4")
    assert result.exit_code == 0, result.output
    assert (results / "adversarial_examples_bim_eps76.png").stat().st_size > 10_000


@pytest.mark.parametrize(
    "args",
    [
        ["attack", "--method", "cw", "--eps", "5"],
        ["attack", "--method", "fgm", "--eps", "-5"],
        ["report", "--methods", "fgm,zoo"],
        ["report", "--eps", "five"],
        ["score", "--attack", "missing.npz"],
        ["score"],
    ],
)
def test_bad_adversarial_input_is_one_line(results, args):
    result = run(*args, *(["--results", results] if args[0] in ("attack", "report") else []))
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1
