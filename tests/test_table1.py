"""Every column of Table 1 recomputes from scores.csv with scikit-learn and NumPy alone.

An independent re-derivation: it reads only scores.csv and table1.csv of a small report, and
implements the bootstrap (with the same seeded draws) with roc_auc_score instead of ranks."""

import json

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score
from typer.testing import CliRunner

from uncertadv import artifacts
from uncertadv.cli import app
from uncertadv.experiments import attack_sets

runner = CliRunner()
ROUNDS = 20
CSV = dict(rtol=0, atol=1e-7)  # table1.csv keeps 8 significant digits
REPORT = ["report", "--methods", "fgm,mim", "--eps", "10,76", "--n", "15", "--samples", "2", "--bootstrap", ROUNDS]


@pytest.fixture(scope="module")
def tables(fresh_results):
    result = runner.invoke(app, [str(a) for a in [*REPORT, "--results", fresh_results]])
    assert result.exit_code == 0, result.output
    return artifacts.read_table(fresh_results / "table1.csv"), artifacts.read_table(fresh_results / "scores.csv")


def bootstrap(pos_a, neg_a, pos_b=None, neg_b=None, seed=0):
    """The seeded stratified draws of uncertadv.metrics, each round scored by sklearn."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(ROUNDS):
        i, j = rng.integers(0, len(pos_a), len(pos_a)), rng.integers(0, len(neg_a), len(neg_a))
        labels = np.r_[np.ones(len(i)), np.zeros(len(j))]
        value = roc_auc_score(labels, np.r_[pos_a[i], neg_a[j]])
        if pos_b is not None:
            value -= roc_auc_score(labels, np.r_[pos_b[i], neg_b[j]])
        values.append(value)
    return np.percentile(values, [2.5, 97.5])


def auc(pos, neg):
    return roc_auc_score(np.r_[np.ones(len(pos)), np.zeros(len(neg))], np.r_[pos, neg])


def test_every_column_recomputes_from_scores(tables):
    table, scores = tables
    assert len(table["attack"]) == 2 * 2 * 3
    for i in range(len(table["attack"])):
        key = (table["attack"][i], table["eps"][i], table["predictor"][i])
        sel = (scores["attack"] == key[0]) & (scores["eps"] == key[1]) & (scores["predictor"] == key[2])
        rows = {k: v[sel] for k, v in scores.items()}
        adv, neg = rows["kind"] == "adversarial", rows["kind"] != "adversarial"
        label, pred, clean_pred = rows["label"][adv], rows["pred"][adv], rows["clean_pred"][adv]
        # success counted right: correct when clean, wrong after the attack
        np.testing.assert_array_equal(rows["success"][adv], (clean_pred == label) & (pred != label))
        np.testing.assert_array_equal(rows["label_changed"][adv], pred != label)
        assert np.isnan(rows["clean_pred"][neg]).all() and np.isnan(rows["success"][neg]).all()
        succ = adv & (rows["success"] == 1)
        row = {k: v[i] for k, v in table.items()}
        assert row["success_rate"] == pytest.approx(np.mean(rows["success"][adv]))
        assert row["label_changed_rate"] == pytest.approx(np.mean(pred != label))
        assert row["n_clean_correct"] == np.sum(clean_pred == label) and row["n_successful"] == succ.sum()
        assert row["n_adversarial"] == adv.sum() == 15 and row["n_negative"] == neg.sum() == 30
        # noise matched to its paired perturbation after clipping
        noise = rows["kind"] == "noise"
        by_pair = dict(zip(rows["pair"][noise], rows["l2"][noise]))
        ratios = [by_pair[p] / d for p, d in zip(rows["pair"][adv], rows["l2"][adv]) if d > 0]
        assert row["noise_l2_ratio"] == pytest.approx(np.mean(ratios), rel=1e-6)
        assert (rows["l2"][rows["kind"] == "clean"] == 0).all()
        for short, measure in (("entropy", "predictive_entropy"), ("mi", "mutual_information")):
            values = rows[measure]
            if np.isnan(values).all():  # deterministic MI: n/a, never 0.5
                assert np.isnan(row[f"{short}_auc"]) and np.isnan(row["mi_minus_entropy_auc"])
                continue
            pos_v, neg_v = values[adv], values[neg]
            assert row[f"{short}_auc"] == pytest.approx(auc(pos_v, neg_v), abs=1e-7)
            assert row[f"{short}_aupr"] == pytest.approx(
                average_precision_score(np.r_[np.ones(adv.sum()), np.zeros(neg.sum())], np.r_[pos_v, neg_v])
            )
            np.testing.assert_allclose([row[f"{short}_auc_lo"], row[f"{short}_auc_hi"]], bootstrap(pos_v, neg_v), **CSV)
            threshold = np.sort(neg_v)[int(np.ceil(0.95 * len(neg_v))) - 1]
            assert row[f"{short}_tpr_at_5fpr"] == pytest.approx(np.mean(pos_v > threshold))
            if succ.any():
                assert row[f"{short}_auc_s"] == pytest.approx(auc(values[succ], neg_v), abs=1e-7)
            for kind in ("clean", "noise"):  # one kind of negative at a time
                want = auc(pos_v, values[rows["kind"] == kind])
                assert row[f"{short}_auc_vs_{kind}"] == pytest.approx(want, abs=1e-7)
            changed = adv & (rows["label_changed"] == 1)  # the paper's (S) filter
            assert row["n_label_changed"] == changed.sum()
            if changed.any():
                assert row[f"{short}_auc_s_changed"] == pytest.approx(auc(values[changed], neg_v), abs=1e-7)
            if succ.sum() < 10:  # too few points for a bootstrap interval: n/a, not a narrow lie
                assert np.isnan(row[f"{short}_auc_s_lo"]) and np.isnan(row[f"{short}_auc_s_hi"])
            else:
                np.testing.assert_allclose(
                    [row[f"{short}_auc_s_lo"], row[f"{short}_auc_s_hi"]], bootstrap(values[succ], neg_v), **CSV
                )
        if not np.isnan(row["mi_auc"]):
            mi, pe = rows["mutual_information"], rows["predictive_entropy"]
            assert row["mi_minus_entropy_auc"] == pytest.approx(row["mi_auc"] - row["entropy_auc"], abs=1e-7)
            np.testing.assert_allclose(
                [row["mi_minus_entropy_auc_lo"], row["mi_minus_entropy_auc_hi"]],
                bootstrap(mi[adv], mi[neg], pe[adv], pe[neg]),
                **CSV,
            )


def test_markdown_flags_thin_positives_and_says_what_significant_means(tables, fresh_results):
    md = (fresh_results / "table1.md").read_text()
    assert "†" in md  # 15 adversarial images per set: every (S) AUC rests on fewer than 20
    assert "by chance alone" in md and "in-sample threshold" in md
    assert "correctly when clean and wrongly after the attack" in md


def test_attack_sets_of_an_older_protocol_are_rebuilt(tables, fresh_results):
    record_path = fresh_results / "attacks" / "fgm_eps10_mc_n15_T2.json"
    npz = record_path.with_suffix(".npz")
    record = json.loads(record_path.read_text())
    del record["config"]["protocol"]  # as written by uncertadv before protocol 2
    artifacts.write_json(record_path, record)
    result = runner.invoke(app, ["score", "--attack", str(npz)])
    assert result.exit_code == 2 and "older uncertadv protocol" in result.stderr
    before = npz.stat().st_mtime_ns
    assert runner.invoke(app, [str(a) for a in [*REPORT, "--results", fresh_results]]).exit_code == 0
    assert npz.stat().st_mtime_ns != before
    assert json.loads(record_path.read_text())["config"]["protocol"] == attack_sets.PROTOCOL


def test_a_changed_model_file_is_caught_when_a_set_is_scored(tables, fresh_results, tmp_path):
    import shutil

    results = tmp_path / "results"
    shutil.copytree(fresh_results, results)
    record = json.loads((results / "attacks" / "mim_eps10_mc_n15_T2.json").read_text())
    assert record["model_files"] == ["models/cnn.keras"]  # relative to the results folder
    (results / "models" / "cnn.keras").write_bytes((results / "models" / "cnn.keras").read_bytes() + b"\0")
    result = runner.invoke(app, ["score", "--attack", str(results / "attacks" / "mim_eps10_mc_n15_T2.npz")])
    assert result.exit_code == 2 and "sha256 differs" in result.stderr, result.output
