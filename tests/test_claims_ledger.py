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
    # 7c is judged where an ablation folder exists; this copy holds MNIST alone
    expected = {"1", "2", "3", "4", "5", "6", "7a", "7b", "8", "9", "10a", "10b", "11", "12a", "12b"}
    assert set(claims["claim"]) == expected


def test_claim_9_takes_an_exact_mcnemar_test_and_is_inconclusive_below_20_discordant_images(tmp_path):
    """Revision 4: 15 images disagree, all one way: the exact interval lies below 0, yet fewer than 20
    discordant images leave it inconclusive (it was "not testable"); 40 decide it."""
    from uncertadv.experiments.claims import ledger

    n = 10_000
    label = np.zeros(n, int)
    det = label.copy()
    mc = label.copy()
    mc[:15] = 1  # MC wrong on 15 images where the point estimate is right
    (tmp_path / "m").mkdir()
    artifacts.write_csv(tmp_path / "m" / "test_scores.csv", {"index": range(n), "label": label, "mc_pred": mc,
                                                            "det_pred": det})  # fmt: skip
    (row,) = ledger._accuracy_claim("mnist", tmp_path / "m", tmp_path)
    exact = metrics.mcnemar_exact(mc == label, det == label)
    assert (row["value"], row["lo"], row["hi"]) == (exact["difference"], exact["lo"], exact["hi"])
    assert row["hi"] < 0 and row["verdict"] == rules.INCONCLUSIVE and "discordant 0 vs 15" in row["reason"]
    mc[:40] = 1  # 40 disagree, all one way: MC is worse
    artifacts.write_csv(tmp_path / "m" / "test_scores.csv", {"index": range(n), "label": label, "mc_pred": mc,
                                                            "det_pred": det})  # fmt: skip
    assert ledger._accuracy_claim("mnist", tmp_path / "m", tmp_path)[0]["verdict"] == rules.HOLDS


def test_claims_8_and_10_compare_success_by_exact_mcnemar_at_the_bonferroni_level():
    """Revision 4: a success difference of two sets on the same images is McNemar's interval at 1 - 0.05/k,
    and a saturated pair (both rates >= 0.99) is judged like any other, by its discordant count."""
    from uncertadv.experiments.claims import ledger

    n = 300
    a = {"kind": np.array(["adversarial"] * n), "index": np.arange(n), "success": np.r_[np.ones(60), np.zeros(240)]}
    b = {**a, "success": np.r_[np.ones(20), np.zeros(280)]}
    rows = ledger._success_difference("8", "x", [("one", a, b), ("two", a, a)], "above", "s.csv")
    exact = metrics.mcnemar_exact(a["success"], b["success"], level=1 - 0.05 / 2)
    assert (rows[0]["lo"], rows[0]["hi"]) == (exact["lo"], exact["hi"]) and rows[0]["verdict"] == rules.HOLDS
    assert rows[1]["verdict"] == rules.INCONCLUSIVE  # identical sets: no discordant image
    full = {**a, "success": np.ones(n)}
    nearly = {**a, "success": np.r_[np.zeros(2), np.ones(n - 2)]}
    (row,) = ledger._success_difference("10a", "x", [("sat", full, nearly)], "above", "s.csv")
    assert row["verdict"] == rules.INCONCLUSIVE and "discordant 2 vs 0" in row["reason"]


def _grid_files(tmp_path, side: int, far: np.ndarray, hole_mc: np.ndarray, hole_ensemble: np.ndarray) -> dict:
    artifacts.write_csv(tmp_path / "holes_grid.csv", {"grid_index": far, "hole_mc": hole_mc[far].astype(int),
                                                      "hole_ensemble": hole_ensemble[far].astype(int)})  # fmt: skip
    return {"predictor": np.array(["mc", "ensemble"]), "grid_points": np.array([side * side] * 2),
            "hole_points": np.array([int(hole_mc.sum()), int(hole_ensemble.sum())]),
            "far_distance": np.array([1.0, 1.0])}  # fmt: skip


def test_claim_4_pairs_the_holes_by_grid_point_resamples_tiles_and_refuses_files_of_two_runs(tmp_path):
    """Revision 3: holes come in patches, so the interval resamples 10 x 10 tiles of the grid; resampling
    single points would be far narrower than the data warrant."""
    from uncertadv.experiments.claims import latent

    side = 30  # 9 tiles; mc has holes on three whole tiles, the ensemble on one of them
    tile = latent.tiles(side * side)
    hole_mc, hole_ensemble = np.isin(tile, [0, 4, 8]), tile == 0
    holes = _grid_files(tmp_path, side, np.flatnonzero(tile != 2), hole_mc, hole_ensemble)
    row = latent.ensemble_holes_claim("mnist", tmp_path / "holes_grid.csv", holes, tmp_path)
    diff, lo, hi = metrics.cluster_bootstrap_mean_difference(hole_ensemble, hole_mc, tile, rounds=latent.ROUNDS,
                                                             seed=latent.SEED)  # fmt: skip
    assert (row["value"], row["lo"], row["hi"]) == (diff, lo, hi) and diff == pytest.approx(-2 / 9)
    _, point_lo, point_hi = metrics.paired_bootstrap_mean_difference(hole_ensemble, hole_mc, rounds=latent.ROUNDS)
    assert hi - lo > 3 * (point_hi - point_lo)
    holes["hole_points"] = np.array([300, 101])  # holes.csv from another run than holes_grid.csv
    with pytest.raises(ValueError, match="disagree"):
        latent.ensemble_holes_claim("mnist", tmp_path / "holes_grid.csv", holes, tmp_path)
    missing = latent.ensemble_holes_claim("mnist", tmp_path / "absent.csv", holes, tmp_path)
    assert missing["verdict"] == rules.NOT_TESTABLE


def test_claim_2_is_judged_near_the_data_too_with_its_own_cuts(tmp_path):
    """Revision 3: far from the data entropy and MI rise together (the whole grid's share is high); near
    it, where the paper speaks of the region between classes, entropy is high where MI is low."""
    from uncertadv.experiments.claims import latent

    side = 40
    rng = np.random.default_rng(0)
    tile = latent.tiles(side * side)
    near = tile < 4  # the first row of tiles: within reach of the training codes
    pe = rng.random(side * side)
    mi = np.where(near, 1 - pe, pe)  # near: opposite rankings; far: the same
    mi[~near] += 2  # far points carry every top-MI cut of the whole grid
    pe[~near] += 2
    folder = tmp_path / "mnist"
    (folder / "cache").mkdir(parents=True)
    artifacts.write_csv(folder / "cache" / "latent_grid_mc.csv", {"predictive_entropy": pe, "mutual_information": mi})
    zeros = np.zeros(side * side, bool)
    holes = _grid_files(folder, side, np.flatnonzero(~near), zeros, zeros)
    rows = latent._between_classes("mnist", pe, mi, tile, folder / "holes_grid.csv", holes, {"2": "g", "4": "h"})
    whole, near_row = rows
    assert whole["verdict"] == rules.DOES_NOT_HOLD and whole["value"] == 1.0
    assert near_row["verdict"] == rules.HOLDS and near_row["value"] == 0.0 and near_row["n"] == near.sum() // 10
    assert "tile bootstrap" in near_row["reason"]


def test_claim_5_is_not_testable_on_test_scores_without_the_measures(tmp_path):
    from uncertadv.experiments.claims import latent

    artifacts.write_csv(tmp_path / "test_scores.csv", {"index": [0, 1], "label": [0, 1], "mc_pred": [0, 1],
                                                       "det_pred": [0, 0]})  # fmt: skip
    (row,) = latent.softmax_variance_claim("catsdogs", tmp_path / "test_scores.csv", tmp_path)
    assert row["verdict"] == rules.NOT_TESTABLE


def _adaptive(folder: Path, sets: list[tuple[str, str, np.ndarray]]) -> None:
    """adaptive.csv and adaptive_images.csv of a suite: ``(measure, who, evaded flags)``, who is ``pgd`` (the
    measure's PGD row, first) or an attacker's worst case."""
    columns = (
        "attack",
        "attacker",
        "eps",
        "predictor",
        "measure",
        "tail",
        "n",
        "success_rate",
        "evasion_rate",
        "evasion_rate_lo",
        "evasion_rate_hi",
        "evasion_gain",
        "evasion_gain_lo",
        "evasion_gain_hi",
    )
    table, images = {c: [] for c in columns}, {c: [] for c in ("eps", "predictor", "measure", "tail", "attacker",
                                                               "index", "success", "evaded_fpr05")}  # fmt: skip
    pgd = {}
    for measure, who, flags in sets:
        pgd.setdefault(measure, flags)
        attacker = "" if who == "pgd" else who
        values = ("pgd" if who == "pgd" else "worst-case", attacker, 76.0, "mc", measure, "two-sided", len(flags),
                  0.9, flags.mean(), 0.0, 1.0, flags.mean() - pgd[measure].mean(), 0.001, 0.9)  # fmt: skip
        for c, v in zip(columns, values):  # the suite's own intervals, unadjusted: the ledger must not read them
            table[c].append(v)
        for i, f in enumerate(flags):
            for c, v in zip(images, (76.0, "mc", measure, "two-sided", attacker, i, 1, int(f))):
                images[c].append(v)
    folder.mkdir(parents=True, exist_ok=True)
    artifacts.write_csv(folder / "adaptive.csv", table)
    artifacts.write_csv(folder / "adaptive_images.csv", images)


def test_claim_12_recomputes_its_intervals_at_the_bonferroni_level_from_the_images(tmp_path):
    """Revision 1: the gain's interval is the suite's paired bootstrap at 1 - 0.05/k, k the judged (fresh)
    rows, and the evasion rate's a Wilson interval at 1 - 0.05/k over every worst-case row; 12a skips
    the known attacker (at least PGD by construction). The file's own 95% intervals are not read."""
    from uncertadv.experiments.claims import evasion

    n = 200
    # paired by image: the fresh attacker evades 28 images PGD does not, PGD 14 the fresh one does not, so
    # the gain's interval excludes 0 at 95% but not at 1 - 0.05/3
    pgd = np.r_[np.zeros(28), np.ones(14), np.zeros(n - 42)]
    fresh = np.r_[np.ones(28), np.zeros(n - 28)]
    measures = ("mutual_information", "predictive_entropy", "softmax_variance")
    sets = [(m, who, flags) for m in measures for who, flags in (("pgd", pgd), ("known", np.ones(n)), ("fresh", fresh))]
    _adaptive(tmp_path / "mnist", sets)
    rows = evasion.claims("mnist", tmp_path / "mnist", tmp_path)
    out = {(r["claim"], r["row"].split(", ")[-1]): r for r in rows if "mutual_information" in r["row"]}
    assert len(rows) == 12
    _, lo, hi = metrics.paired_bootstrap_mean_difference(fresh, pgd, rounds=rules.bootstrap_rounds(3), seed=0,
                                                         level=1 - 0.05 / 3)  # fmt: skip
    assert (out[("12a", "fresh")]["lo"], out[("12a", "fresh")]["hi"]) == (lo, hi)
    assert out[("12a", "known")]["verdict"] == rules.NOT_TESTABLE
    assert (out[("12b", "fresh")]["lo"], out[("12b", "fresh")]["hi"]) == metrics.wilson_interval(28, n, 1 - 0.05 / 6)
    assert out[("12b", "known")]["verdict"] == rules.HOLDS and out[("12b", "fresh")]["verdict"] == rules.DOES_NOT_HOLD
    _, lo95, _ = metrics.paired_bootstrap_mean_difference(fresh, pgd, rounds=1000, seed=0)
    assert lo95 > 0 > lo and out[("12a", "fresh")]["verdict"] == rules.INCONCLUSIVE  # uncorrected, it would hold
    legacy = artifacts.read_table(tmp_path / "mnist" / "adaptive.csv")
    artifacts.write_csv(tmp_path / "mnist" / "adaptive.csv", {k: v for k, v in legacy.items() if k != "tail"})
    assert {r["verdict"] for r in evasion.claims("mnist", tmp_path / "mnist", tmp_path)} == {rules.NOT_TESTABLE}


def test_combined_rows_count_the_judged_rows_name_the_untestable_and_label_the_scope():
    """Revisions 5 and 6: "N rows combined" rested on the testable rows alone; MNIST's Table-1 claims are
    an extension the paper does not make."""
    from uncertadv.experiments.claims import ledger

    def r(claim, setting, row, verdict):
        return ledger._row(claim, setting, row, 0.0, 0.0, 0.0, 1, verdict, "", "s")

    rows = [r("8", "mnist", "a", rules.HOLDS), r("8", "mnist", "b", rules.NOT_TESTABLE),
            r("8", "mnist", "c", rules.NOT_TESTABLE), r("8", "catsdogs", "a", rules.HOLDS),
            r("8", "catsdogs", "b", rules.HOLDS), r("11", "catsdogs", "a", rules.HOLDS)]  # fmt: skip
    combined = {(c["claim"], c["setting"]): c["reason"] for c in ledger._combined(rows)}
    assert combined[("8", "mnist")] == (
        "an extension the paper does not claim (its Table 1 is cats vs dogs); 1 of 3 rows judged; not testable: b, c"
    )
    assert combined[("8", "catsdogs")] == "2 of 2 rows judged"
    assert combined[("11", "catsdogs")].startswith("future work")


def test_claim_7b_takes_the_mean_over_head_seeds_and_keeps_the_old_verdict_beside(tmp_path):
    """Revision 7: an ablation variant's seeds/NAME-sN/scores.csv join its own scores.csv (seed 0)."""
    from uncertadv.experiments.claims import ledger

    rng = np.random.default_rng(0)

    def scores(shift):
        n = 40
        kind = np.repeat(["clean", "noise", "adversarial"], n)
        mi = np.r_[rng.random(2 * n), rng.random(n) + shift]
        return {"attack": ["bim"] * 3 * n, "eps": [5.0] * 3 * n, "predictor": ["mc"] * 3 * n, "kind": kind,
                "index": np.tile(np.arange(n), 3), "mutual_information": mi,
                "detector_measure": [""] * 3 * n}  # fmt: skip

    folder = tmp_path / "catsdogs-ablation"
    for path, shift in (("as-coded", 0.1), ("seeds/as-coded-s2", 0.5), ("seeds/as-coded-s1", 0.3)):
        artifacts.write_csv(folder / path / "scores.csv", scores(shift))
    seeds = ledger._seed_groups(tmp_path, "catsdogs-ablation/as-coded")
    assert len(seeds) == 2 and ledger._seed_groups(tmp_path, "catsdogs") == []
    groups = ledger._groups(folder / "as-coded" / "scores.csv")
    paper = {("bim", 5.0, "mc"): 0.7}
    (row,) = ledger._reproduction("catsdogs-ablation/as-coded", groups, paper, "s", seeds)
    aucs = []
    for g in (groups, *seeds):
        r = g[("bim", 5.0, "mc")]
        aucs.append(metrics.roc_auc(r["mutual_information"][r["kind"] == "adversarial"],
                                    r["mutual_information"][r["kind"] != "adversarial"]))  # fmt: skip
    assert row["value"] == pytest.approx(np.mean(aucs) - 0.7)
    assert "mean of 3 head seeds" in row["reason"] and "before revision 7:" in row["reason"]
    assert aucs[1] < aucs[2]  # seeds in number order: s1 (shift 0.3) before s2 (shift 0.5)
    # the interval and verdict are the rule's, on the rows' own bootstrap errors, with k = the setting's rows (1)
    ses = [rules.se_from_interval(*ledger._auc_interval(g[("bim", 5.0, "mc")], "mutual_information", ledger.ROUNDS,
                                                        0.95)) for g in (groups, *seeds)]  # fmt: skip
    paper_se = rules.hanley_mcneil_se(0.7, rules.PAPER_N_ADVERSARIAL, rules.PAPER_N_NEGATIVE)
    verdict, diff, lo, hi, _ = rules.seeds_reproduce(aucs, ses, 0.7, paper_se, 1)
    assert (row["value"], row["lo"], row["hi"], row["verdict"]) == (diff, lo, hi, verdict)
    # a seed cut to other settings is left out of this row; a seed that scores other images is refused
    cut = {("bim", 10.0, "mc") if k == ("bim", 5.0, "mc") else k: v for k, v in seeds[1].items()}
    (row,) = ledger._reproduction("catsdogs-ablation/as-coded", groups, paper, "s", [seeds[0], cut])
    assert "mean of 2 head seeds" in row["reason"]
    moved = {k: {**v, "index": v["index"] + 1} for k, v in seeds[0].items()}
    with pytest.raises(ValueError, match="seed 0's images"):
        ledger._reproduction("catsdogs-ablation/as-coded", groups, paper, "s", [moved])
