"""`uncertadv claims` on the committed MNIST results: every row recomputes from scores.csv, a re-run
gives the same bytes, and the verdicts follow the rules."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from uncertadv import artifacts, metrics
from uncertadv.cli import app
from uncertadv.experiments.claims import rules

RESULTS = Path(__file__).resolve().parent.parent / "results"


@pytest.fixture(scope="module")
def ledger(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    (root / "mnist" / "cache").mkdir(parents=True)
    for name in (
        "scores.csv",
        "test_scores.csv",
        "interpolation_midpoints.csv",
        "holes.csv",
        "cache/latent_grid_mc.csv",
    ):
        shutil.copy(RESULTS / "mnist" / name, root / "mnist" / name)
    result = CliRunner().invoke(app, ["claims", "--results", str(root)])
    assert result.exit_code == 0, result.output
    return root


def test_each_auc_row_recomputes_from_scores_csv(ledger):
    claims = artifacts.read_table(ledger / "claims.csv")
    scores = artifacts.read_table(ledger / "mnist" / "scores.csv")
    rows = np.flatnonzero(claims["claim"] == "7a")
    assert len(rows) == 7  # BIM and MIM at eps 5, 10, 76, and the combined row
    for i in rows[claims["row"][rows] != "all"]:
        attack, _, eps = claims["row"][i].split()
        sel = (scores["attack"] == attack) & (scores["eps"] == float(eps)) & (scores["predictor"] == "mc")
        sel &= scores["detector_measure"] == ""  # Table 1's rows, not the adaptive ones
        auc = roc_auc_score(scores["kind"][sel] == "adversarial", scores["mutual_information"][sel])
        assert claims["value"][i] == pytest.approx(auc, abs=1e-7)
        order = np.lexsort((scores["index"][sel], scores["kind"][sel]))  # the ledger's: by kind, then source image
        adv = scores["kind"][sel][order] == "adversarial"
        mi = scores["mutual_information"][sel][order]
        lo, hi = metrics.bootstrap_auc(mi[adv], mi[~adv], rounds=rules.bootstrap_rounds(6), seed=0, level=1 - 0.05 / 6)
        assert (claims["lo"][i], claims["hi"][i]) == pytest.approx((lo, hi), abs=1e-7) and lo <= auc <= hi
        want = rules.interval_verdict(claims["lo"][i], claims["hi"][i], 0.5)
        assert claims["verdict"][i] == want


def test_a_rerun_gives_the_same_bytes_and_combined_verdicts_follow_the_rows(ledger):
    before = {name: (ledger / name).read_bytes() for name in ("claims.csv", "CLAIMS.md")}
    assert CliRunner().invoke(app, ["claims", "--results", str(ledger)]).exit_code == 0
    assert all((ledger / name).read_bytes() == data for name, data in before.items())
    claims = artifacts.read_table(ledger / "claims.csv")
    for claim in set(claims["claim"]):
        sel = claims["claim"] == claim
        rows, combined = (
            claims["verdict"][sel & (claims["row"] != "all")],
            claims["verdict"][sel & (claims["row"] == "all")],
        )
        if len(rows):
            assert list(combined) == [rules.combine(list(rows))]
    text = (ledger / "CLAIMS.md").read_text()
    assert "## 12a." in text and "## 4." in text and "do not edit" in text
    expected = {"1", "2", "3", "4", "5", "6", "7a", "7b", "8", "9", "10a", "10b", "11", "12a", "12b"}
    assert set(claims["claim"]) == expected


def test_claim_9_needs_20_disagreeing_images_whatever_the_accuracy(tmp_path):
    from uncertadv.experiments.claims import ledger

    n = 10_000
    label = np.zeros(n, int)
    det = label.copy()
    mc = label.copy()
    mc[:15] = 1  # 15 images disagree, accuracies 0.9985 and 1.0: near 1, but too few to decide
    (tmp_path / "m").mkdir()
    artifacts.write_csv(tmp_path / "m" / "test_scores.csv", {"index": range(n), "label": label, "mc_pred": mc,
                                                            "det_pred": det})  # fmt: skip
    (row,) = ledger._accuracy_claim("mnist", tmp_path / "m", tmp_path)
    assert row["verdict"] == rules.NOT_TESTABLE and "only 15 images" in row["reason"]
    mc[:40] = 1  # 40 disagree, all one way: MC is worse
    artifacts.write_csv(tmp_path / "m" / "test_scores.csv", {"index": range(n), "label": label, "mc_pred": mc,
                                                            "det_pred": det})  # fmt: skip
    assert ledger._accuracy_claim("mnist", tmp_path / "m", tmp_path)[0]["verdict"] == rules.HOLDS


def test_claim_4_pairs_the_holes_by_grid_point_and_refuses_files_of_two_runs(tmp_path):
    from uncertadv.experiments.claims import ledger

    # 100 grid points; the far ones are 0-59: mc has holes at 0-29, the ensemble at 0-9 (a subset)
    holes = {"predictor": np.array(["mc", "ensemble"]), "grid_points": np.array([100, 100]),
             "hole_points": np.array([30, 10])}  # fmt: skip
    far = np.arange(60)
    artifacts.write_csv(tmp_path / "holes_grid.csv", {"grid_index": far, "hole_mc": (far < 30).astype(int),
                                                      "hole_ensemble": (far < 10).astype(int)})  # fmt: skip
    row = ledger._ensemble_holes_claim("mnist", tmp_path / "holes_grid.csv", holes, tmp_path)
    assert row["value"] == pytest.approx(-0.2) and row["hi"] < 0 and row["verdict"] == rules.HOLDS
    holes["hole_points"] = np.array([30, 11])  # holes.csv from another run than holes_grid.csv
    with pytest.raises(ValueError, match="disagree"):
        ledger._ensemble_holes_claim("mnist", tmp_path / "holes_grid.csv", holes, tmp_path)
    missing = ledger._ensemble_holes_claim("mnist", tmp_path / "absent.csv", holes, tmp_path)
    assert missing["verdict"] == rules.NOT_TESTABLE


def test_claim_5_is_not_testable_on_test_scores_without_the_measures(tmp_path):
    from uncertadv.experiments.claims import ledger

    artifacts.write_csv(tmp_path / "test_scores.csv", {"index": [0, 1], "label": [0, 1], "mc_pred": [0, 1],
                                                       "det_pred": [0, 0]})  # fmt: skip
    (row,) = ledger._softmax_variance_claim("catsdogs", tmp_path / "test_scores.csv", tmp_path)
    assert row["verdict"] == rules.NOT_TESTABLE


def test_claim_12_reads_the_worst_case_rows_and_skips_the_known_attackers_gain(tmp_path):
    """12a on the fresh attacker only (the known one's worst case is at least PGD's by construction); 12b on
    both, against 0.9 x the success rate. The 10-step protocol's adaptive.csv (no tail) gives no verdict."""
    from uncertadv.experiments.claims import ledger

    rows = {"attack": ["pgd", "worst-case", "worst-case"], "attacker": ["", "known", "fresh"], "eps": [76.0] * 3,
            "predictor": ["mc"] * 3, "measure": ["mutual_information"] * 3, "tail": ["two-sided"] * 3, "n": [100] * 3,
            "success_rate": [0.9] * 3, "evasion_rate": [0.5, 0.88, 0.7], "evasion_rate_lo": [0.4, 0.85, 0.6],
            "evasion_rate_hi": [0.6, 0.9, 0.8], "evasion_gain": [0.0, 0.38, 0.2], "evasion_gain_lo": [0.0, 0.3, 0.1],
            "evasion_gain_hi": [0.0, 0.45, 0.3]}  # fmt: skip
    (tmp_path / "mnist").mkdir()
    artifacts.write_csv(tmp_path / "mnist" / "adaptive.csv", rows)
    out = {(r["claim"], r["row"].split(", ")[-1]): r["verdict"] for r in ledger._adaptive_claims("mnist",
                                                                       tmp_path / "mnist", tmp_path)}  # fmt: skip
    assert out[("12a", "known")] == rules.NOT_TESTABLE and out[("12a", "fresh")] == rules.HOLDS
    assert out[("12b", "known")] == rules.HOLDS  # [0.85, 0.9] above 0.81
    assert out[("12b", "fresh")] == rules.DOES_NOT_HOLD  # [0.6, 0.8] below 0.81
    legacy = {k: v for k, v in rows.items() if k != "tail"}
    artifacts.write_csv(tmp_path / "mnist" / "adaptive.csv", legacy)
    assert {r["verdict"] for r in ledger._adaptive_claims("mnist", tmp_path / "mnist", tmp_path)} == {
        rules.NOT_TESTABLE
    }
