"""``report --adaptive`` and ``attack --method pgd-adaptive|pgd-adaptive-known|holes`` on tiny models:
every number of adaptive.csv recomputes from scores.csv and the detector files."""

import json

import numpy as np
import pytest
from conftest import assert_one_line_error
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from uncertadv import artifacts, data
from uncertadv.cli import app
from uncertadv.experiments.adaptive import protocol

runner = CliRunner()
COMMON = ["--n", "15", "--samples", "2"]
ISSUE_COLUMNS = ["attack", "eps", "predictor", "measure", "c", "n", "success_rate", "auc", "tpr_at_threshold",
                 "detector_fpr", "evasion_rate"]  # fmt: skip


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def run(fresh_results):
    vae = ["train", "vae", "--epochs", "1", "--limit-train", "400", "--out", fresh_results / "models" / "vae.json"]
    assert invoke(*vae).exit_code == 0
    args = ["report", "--adaptive", "--eps", "76", "--measures", "mutual_information", "--bootstrap", "20",
            *COMMON, "--results", fresh_results]  # fmt: skip
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return fresh_results, args


def test_the_table_has_the_issues_columns_and_every_number_recomputes(run):
    folder, _ = run
    assert artifacts.read_csv(folder / "adaptive.csv").keys() >= set(ISSUE_COLUMNS)
    assert list(artifacts.read_csv(folder / "adaptive.csv"))[: len(ISSUE_COLUMNS)] == ISSUE_COLUMNS
    table, scores = artifacts.read_table(folder / "adaptive.csv"), artifacts.read_table(folder / "scores.csv")
    assert sorted(set(table["attack"])) == ["pgd", "pgd-adaptive", "pgd-adaptive-known"]
    assert sorted(set(table["predictor"])) == ["ensemble", "mc"]
    measure = scores["detector_measure"]
    for i in range(len(table["attack"])):
        attack, eps, predictor, name = (table[k][i] for k in ("attack", "eps", "predictor", "measure"))
        detector = artifacts.read_json(folder / "detectors" / f"{predictor}_{name}.json")
        tau = detector["threshold"]
        group = (scores["attack"] == attack) & (scores["eps"] == eps) & (scores["predictor"] == predictor)
        group &= measure == ("" if attack == "pgd" else name)
        rows = {k: v[group] for k, v in scores.items()}
        adv, clean = rows["kind"] == "adversarial", rows["kind"] == "clean"
        u, success = rows[name], rows["success"][adv] == 1
        assert adv.sum() == table["n"][i] == 15 and (~adv).sum() == 30
        labels = np.r_[np.ones(adv.sum()), np.zeros((~adv).sum())]
        assert table["auc"][i] == pytest.approx(roc_auc_score(labels, np.r_[u[adv], u[~adv]]), abs=1e-7)
        assert table["tpr_at_threshold"][i] == pytest.approx(np.mean(u[adv] > tau))
        assert table["detector_fpr"][i] == pytest.approx(np.mean(u[clean] > tau))
        assert table["success_rate"][i] == pytest.approx(success.mean())
        assert table["evasion_rate"][i] == pytest.approx(np.mean(success & (u[adv] <= tau)))
        assert table["evasion_rate_lo"][i] <= table["evasion_rate"][i] <= table["evasion_rate_hi"][i]
        if attack == "pgd":
            assert np.isnan(table["c"][i])
        else:
            assert table["c"][i] in protocol.C_GRID
            pgd = (scores["attack"] == "pgd") & (scores["eps"] == eps) & (scores["predictor"] == predictor)
            # the same negatives as the PGD set (Table 1's), score for score, and the same source images
            np.testing.assert_array_equal(u[~adv], scores[name][pgd & (scores["kind"] != "adversarial")])
            np.testing.assert_array_equal(rows["index"][adv], scores["index"][pgd & (scores["kind"] == "adversarial")])


def test_detectors_are_fitted_on_images_no_attack_set_uses(run):
    folder, _ = run
    detector = artifacts.read_json(folder / "detectors" / "mc_mutual_information.json")
    assert detector["seed"] == 1_000_000 and detector["samples"] == 2 and detector["target_fpr"] == 0.05
    assert detector["n_fit"] == protocol.N_FIT and detector["fit_data"]["n_evaluation"] == 15
    with np.load(folder / "attacks" / "pgd_eps76_mc.npz") as npz:
        used = np.concatenate([npz[f"{k}_index"] for k in ("clean", "noise", "adversarial")])
    held = protocol.held_out(10_000, 15, 0)
    assert not np.isin(held["fit"], used).any() and not np.isin(held["calibration"], used).any()
    assert not np.isin(held["fit"], held["calibration"]).any()
    with pytest.raises(ValueError, match="needs"):
        protocol.held_out(1000, 15, 0)


def test_the_record_names_the_grid_and_the_choice(run):
    folder, _ = run
    record = artifacts.read_json(folder / "attacks" / "pgd-adaptive_eps76_mc_mutual_information.json")
    assert record["config"]["c_grid"] == list(protocol.C_GRID) and record["c"] in protocol.C_GRID
    rates = record["calibration_evasion_rates"]
    assert len(rates) == 4 and record["c"] == protocol.C_GRID[int(np.argmax(rates))]
    assert json.loads((folder / "adaptive.json").read_text())["versions"]["cpu"]


def test_the_hole_search_rows_and_the_latent_radius(run):
    folder, _ = run
    holes = artifacts.read_table(folder / "hole_search.csv")
    assert list(holes)[:2] == ["predictor", "measure"]
    assert {"n", "success_rate", "median_latent_distance", "median_pixel_l2"} <= holes.keys()
    assert sorted(holes["predictor"]) == ["ensemble", "mc"] and (holes["n"] == 15).all()
    with np.load(folder / "attacks" / "holes_mc_mutual_information.npz") as npz:
        assert (npz["latent_distance"] <= 3.0 + 1e-4).all()
        holes_mc = holes["n_holes"][holes["predictor"] == "mc"][0]
        assert holes_mc == np.sum(npz["success"] & (npz["data_distance"] > 1.0)) <= npz["success"].sum()
        np.testing.assert_array_equal(npz["target"], (data.load_mnist("test")[1][npz["index"]] + 1) % 10)
        assert holes["success_rate"][holes["predictor"] == "mc"][0] == pytest.approx(npz["success"].mean())


def test_a_rerun_reuses_everything_and_table1_keeps_the_adaptive_rows(run):
    folder, args = run
    npz = folder / "attacks" / "pgd-adaptive_eps76_mc_mutual_information.npz"
    before = npz.stat().st_mtime_ns, (folder / "adaptive.csv").read_bytes()
    assert invoke(*args).exit_code == 0
    assert (npz.stat().st_mtime_ns, (folder / "adaptive.csv").read_bytes()) == before
    result = invoke("report", "--methods", "fgm", "--eps", "76", "--bootstrap", "20", *COMMON, "--results", folder)
    assert result.exit_code == 0, result.output
    scores = artifacts.read_table(folder / "scores.csv")
    assert {"fgm", "pgd", "pgd-adaptive", "pgd-adaptive-known"} <= set(scores["attack"])


def test_attack_cli_adaptive_and_its_errors(run):
    folder, _ = run
    result = invoke("attack", "--method", "pgd-adaptive-known", "--eps", "76", *COMMON, "--results", folder)
    assert result.exit_code == 0, result.output
    assert "evasion rate" in result.output
    assert_one_line_error(invoke("attack", "--method", "pgd-adaptive", "--results", folder), "needs --eps")
    assert_one_line_error(invoke("attack", "--method", "pgd", "--eps", "5", "--detector", folder / "x.json"), "ignores")
    assert_one_line_error(invoke("attack", "--method", "holes", "--dataset", "catsdogs"), "MNIST")
    # a detector given from outside may use any seed (issue 16): its set is named apart and records it,
    # and the protocol's own set stays as it was
    record = artifacts.read_json(folder / "detectors" / "mc_mutual_information.json")
    other = folder / "other_seed.json"
    artifacts.write_json(other, {**record, "seed": 5})
    stem = folder / "attacks" / "pgd-adaptive_eps76_mc_mutual_information"
    protocol_set = stem.with_suffix(".npz").read_bytes()
    result = invoke("attack", "--method", "pgd-adaptive", "--eps", "76", "--detector", other, *COMMON,
                    "--results", folder)  # fmt: skip
    assert result.exit_code == 0, result.output
    (given,) = (folder / "attacks").glob("pgd-adaptive_eps76_mc_mutual_information_det*.json")
    assert artifacts.read_json(given)["config"]["detector"]["seed"] == 5
    result = invoke("attack", "--method", "pgd-adaptive", "--eps", "76", *COMMON, "--results", folder)
    assert "reused attack set" in result.stderr and stem.with_suffix(".npz").read_bytes() == protocol_set


def test_detector_aware_mistakes_are_one_line_errors_before_any_work(run):
    folder, _ = run
    det = folder / "detectors" / "mc_mutual_information.json"
    for args, text in (
        (["--method", "holes", "--predictor", "deterministic"], "sampled networks"),
        (["--method", "pgd-adaptive", "--eps", "76", "--predictor", "deterministic"], "sampled networks"),
        (["--method", "fgm", "--eps", "5", "--measure", "mutual_information"], "ignores"),
        (["--method", "pgd-adaptive", "--eps", "76", "--detector", det, "--measure", "softmax_variance", *COMMON],
         "differs"),
        # another N would fit the detector on other held-out images: refused, not silently refitted
        (["--method", "pgd-adaptive", "--eps", "76", "--n", "10", "--samples", "2"], "another protocol"),
    ):  # fmt: skip
        assert_one_line_error(invoke("attack", *args, "--results", folder), text)
    adaptive_set = folder / "attacks" / "pgd-adaptive_eps76_mc_mutual_information.npz"
    assert_one_line_error(invoke("score", "--attack", adaptive_set), "report --adaptive")


def test_the_same_seeds_give_the_same_adaptive_set(run):
    folder, _ = run
    npz = folder / "attacks" / "pgd-adaptive_eps76_mc_mutual_information.npz"
    before = npz.read_bytes()
    result = invoke("attack", "--method", "pgd-adaptive", "--eps", "76", *COMMON, "--force", "--results", folder)
    assert result.exit_code == 0, result.output
    assert npz.read_bytes() == before


def test_the_protocols_detectors_work_with_detect_run(run, tmp_path):
    folder, _ = run
    x, y = data.load_mnist("test")
    np.savez(tmp_path / "digits.npz", x=(x[:40] * 255).round().astype(np.uint8), y=y[:40])
    record = artifacts.read_json(folder / "detectors" / "mc_mutual_information.json")
    assert record["model"] == "../models/cnn.keras" and record["fit_data"]["data_sha256"]  # relative to itself
    result = invoke("detect", "run", "--detector", folder / "detectors" / "mc_mutual_information.json",
                    "--data", tmp_path / "digits.npz", "--out", tmp_path / "flags.csv")  # fmt: skip
    assert result.exit_code == 0 and "of 40 inputs" in result.stdout, result.output
