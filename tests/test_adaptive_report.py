"""``report --adaptive`` (the converged suite) and ``attack --method pgd-adaptive|pgd-adaptive-known|holes`` on
tiny models: every worst-case number recomputes from the per-image file, the evaluator re-judges the chosen
images, and the cascade attacks only the images still failing."""

import json

import numpy as np
import pytest
from conftest import assert_one_line_error
from typer.testing import CliRunner

from uncertadv import artifacts, data, measures, predictors
from uncertadv.cli import app
from uncertadv.experiments.adaptive import protocol, suite
from uncertadv.experiments.adaptive import report as adaptive_report

runner = CliRunner()
COMMON = ["--n", "15", "--samples", "2"]
# The tiny model's detectors flag none of PGD's successful images, so every configuration would be skipped:
# --all-configs runs the cascade anyway (the skip itself is tested on a copy).
SUITE = ["--n", "30", "--samples", "4"]
ISSUE_COLUMNS = ["tail", "objective", "c", "kappa", "margin", "restarts", "steps"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def run(fresh_results):
    vae = ["train", "vae", "--epochs", "1", "--limit-train", "400", "--out", fresh_results / "models" / "vae.json"]
    assert invoke(*vae).exit_code == 0
    args = ["report", "--adaptive", "--eps", "76", "--measures", "mutual_information,predictive_entropy",
            "--iterations", "4", "--bootstrap", "20", "--all-configs", "--predictors", "mc", *SUITE,
            "--results", fresh_results]  # fmt: skip
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return fresh_results, args


def _attackers(table: dict) -> np.ndarray:
    """The attacker column, with PGD's empty cells (which may read back as NaN) as ''."""
    return np.array([a if isinstance(a, str) else "" for a in table["attacker"]])


def _rows(table: dict, **where) -> np.ndarray:
    sel = np.ones(len(next(iter(table.values()))), bool)
    for k, v in where.items():
        sel &= table[k] == v
    return sel


def test_the_table_has_the_issues_columns_and_the_worst_case_recomputes(run):
    folder, _ = run
    table = artifacts.read_table(folder / "adaptive.csv")
    assert set(ISSUE_COLUMNS) <= table.keys() and {"evasion_fpr01", "evasion_fpr10"} <= table.keys()
    assert set(table["attack"]) == {"pgd", "cascade", "worst-case"} and set(table["tail"]) == {"upper", "two-sided"}
    assert set(table["predictor"]) == {"mc"}
    cfg = suite.SuiteConfig(layout=None, measures=("predictive_entropy", "mutual_information"))
    assert cfg.measures_of("ensemble") == ("mutual_information",)  # the ensemble is attacked against MI only
    images = artifacts.read_table(folder / "adaptive_images.csv")
    for i in np.flatnonzero(np.isin(table["attack"], ["pgd", "worst-case"])):
        key = {k: table[k][i] for k in ("eps", "predictor", "measure", "tail")}
        attacker = "" if table["attack"][i] == "pgd" else table["attacker"][i]
        who = _attackers(images)
        mine, pgd = _rows(images, **key) & (who == attacker), _rows(images, **key) & (who == "")
        assert mine.sum() == table["n"][i] == 30
        np.testing.assert_array_equal(images["index"][mine], images["index"][pgd])  # the same source images
        assert table["success_rate"][i] == pytest.approx(images["success"][mine].mean())
        assert table["evasion_rate"][i] == pytest.approx(images["evaded_fpr05"][mine].mean())
        assert table["evasion_fpr01"][i] == pytest.approx(images["evaded_fpr01"][mine].mean())
        gain = images["evaded_fpr05"][mine].mean() - images["evaded_fpr05"][pgd].mean()
        assert table["evasion_gain"][i] == pytest.approx(gain, abs=1e-7)
        assert table["evasion_gain_lo"][i] <= table["evasion_gain"][i] <= table["evasion_gain_hi"][i]


def test_the_evaluator_re_judges_the_chosen_images(run):
    folder, _ = run
    from uncertadv import io

    x, y = data.load_mnist("test")
    model = io.load_model(folder / "models" / "cnn.keras")
    for attacker in suite.ATTACKERS:
        stem = suite.stem("worst-case", attacker, 76.0, "mc", "mutual_information", "upper")
        with np.load(folder / "attacks" / f"{stem}.npz") as npz:
            index, images, evaded = npz["adversarial_index"], npz["x_adv"], npz["evaded"]
        probs = predictors.predict([model], images, predictor="mc", samples=4, seed=1_000_000)
        clean = predictors.predict([model], x[index], predictor="mc", samples=4, seed=1_000_000)
        success = (clean.mean(axis=0).argmax(-1) == y[index]) & (probs.mean(axis=0).argmax(-1) != y[index])
        images_csv = artifacts.read_table(folder / "adaptive_images.csv")
        mine = (_rows(images_csv, eps=76.0, predictor="mc", measure="mutual_information", tail="upper")
                & (_attackers(images_csv) == attacker))  # fmt: skip
        np.testing.assert_array_equal(images_csv["success"][mine].astype(bool), success)
        np.testing.assert_allclose(images_csv["value"][mine], measures.mutual_information(probs), rtol=1e-5, atol=1e-9)
        np.testing.assert_array_equal(images_csv["evaded_fpr05"][mine].astype(bool), evaded)


def test_the_cascade_attacks_only_the_images_no_earlier_stage_made_evade(run):
    folder, _ = run
    for attacker in suite.ATTACKERS:
        previous = None
        for name in suite.OBJECTIVES:
            stem = suite.stem(name, attacker, 76.0, "mc", "mutual_information", "two-sided")
            with np.load(folder / "attacks" / f"{stem}.npz") as npz:
                index, evaded, restarts = npz["index"], npz["evaded"], npz["restarts"]
            if previous is not None:
                np.testing.assert_array_equal(index, previous[0][~previous[1]])
            # a failing image takes every restart (2 here), an evading one stops at the run that made it evade
            assert np.all(restarts <= 3) and np.all(evaded | (restarts == 3))
            previous = (index, evaded)
    table = artifacts.read_table(folder / "adaptive.csv")
    cascade = _rows(table, attack="cascade", predictor="mc", measure="mutual_information", tail="two-sided")
    assert list(table["objective"][cascade][:4]) == list(suite.OBJECTIVES)
    assert np.all(np.diff(table["n_attacked"][cascade][:4]) <= 0)


def test_a_configuration_where_pgd_already_evades_is_skipped_and_said_so(run, tmp_path):
    folder, args = run
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    result = invoke(*[a if a != str(folder) else copy for a in map(str, args) if a != "--all-configs"])
    assert result.exit_code == 0, result.output
    table = artifacts.read_table(copy / "adaptive.csv")
    skipped = artifacts.read_json(copy / "adaptive.json")["skipped"]
    images = artifacts.read_table(copy / "adaptive_images.csv")
    for note in skipped:
        key = {k: note[k] for k in ("eps", "predictor", "measure", "tail")}
        assert set(table["attack"][_rows(table, **key)]) == {"pgd"}
        pgd = _rows(images, **key)
        np.testing.assert_array_equal(images["evaded_fpr05"][pgd], images["success"][pgd])
    assert skipped and "pgd already evades wherever it succeeds" in (copy / "adaptive.md").read_text()


def test_the_attackers_choice_is_the_first_evading_then_the_first_misclassified():
    everyone = np.arange(4)
    pgd = (everyone, np.zeros((4, 1)), np.array([True, False, False, False]), np.array([False, False, False, False]))
    hinge = (np.array([0, 1, 2]), np.ones((3, 1)), np.array([True, True, False]), np.array([False, True, False]))
    ortho = (np.array([0, 2, 3]), 2 * np.ones((3, 1)), np.array([True, True, False]), np.array([True, True, False]))
    images, chosen = suite.select([pgd, hinge, ortho], 4)
    np.testing.assert_array_equal(chosen, [2, 1, 2, 0])  # 0: evades only with orthogonal; 3: nothing fools
    np.testing.assert_array_equal(images[:, 0], [2, 1, 2, 0])
    with pytest.raises(ValueError, match="every image"):
        suite.select([hinge], 4)


def test_calibration_records_its_grid_and_chooses_the_first_best(run):
    folder, _ = run
    for objective in suite.OBJECTIVES:
        name = suite.stem("calibration", objective, 76.0, "mc", "mutual_information", "upper")
        record = artifacts.read_json(folder / "adaptive" / f"{name}.json")
        rates = record["rates"]
        assert len(rates) == len(suite.grid(objective)) == len(record["config"]["grid"])
        assert record["setting"] == suite.grid(objective)[int(np.argmax(rates))]
        assert record["config"]["steps"] == 2  # half the suite's 4
    assert json.loads((folder / "adaptive.json").read_text())["versions"]["cpu"]
    c_values = {s["c"] for s in suite.grid("hinge")}
    assert c_values == set(suite.C_GRID) and {s["kappa"] for s in suite.grid("hinge")} == set(suite.KAPPA_GRID)


class _Cut(Exception):
    """A session's end, in the middle of a calibration."""


def test_a_calibration_cut_short_resumes_at_the_next_setting_with_the_same_rates(run, tmp_path, monkeypatch):
    folder, args = run
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    name = suite.stem("calibration", "hinge", 76.0, "mc", "mutual_information", "upper")
    whole = artifacts.read_json(copy / "adaptive" / f"{name}.json")
    (copy / "adaptive" / f"{name}.json").unlink()
    attack_once, calls = suite._attack, []

    def cut_at_the_third(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise _Cut
        return attack_once(*a, **k)

    monkeypatch.setattr(suite, "_attack", cut_at_the_third)
    rerun = [a if a != str(folder) else copy for a in map(str, args)]
    assert isinstance(invoke(*rerun).exception, _Cut)
    partial = artifacts.read_json(copy / "adaptive" / f"{name}.partial.json")
    assert partial["rates"] == whole["rates"][:2] and partial["config"] == whole["config"]
    monkeypatch.setattr(suite, "_attack", attack_once)
    result = invoke(*rerun)
    assert result.exit_code == 0, result.output
    resumed = artifacts.read_json(copy / "adaptive" / f"{name}.json")
    assert resumed["rates"] == whole["rates"] and resumed["setting"] == whole["setting"]
    assert resumed["resumed_after"] == 2 and not (copy / "adaptive" / f"{name}.partial.json").exists()
    assert (copy / "adaptive.csv").read_bytes() == (folder / "adaptive.csv").read_bytes()


def test_the_other_measures_get_the_two_best_objectives_on_mi(run):
    folder, _ = run
    calibration = artifacts.read_json(folder / "adaptive.json")["calibration"]
    for tail in suite.TAILS:
        mi = calibration[f"eps76_mc_mutual_information_{tail}"]
        best = sorted(mi, key=lambda n: (-max(mi[n]["rates"]), suite.OBJECTIVES.index(n)))[:2]
        entropy = calibration.get(f"eps76_mc_predictive_entropy_{tail}")
        if entropy is not None:  # absent when PGD already evades wherever it succeeds
            assert sorted(entropy) == sorted(best)


def test_a_rerun_reuses_every_set_and_writes_the_same_table(run):
    folder, args = run
    npz = folder / "attacks" / f"{suite.stem('hinge', 'fresh', 76.0, 'mc', 'mutual_information', 'upper')}.npz"
    grid = folder / "adaptive" / "latent_grid_mc.npz"  # the hole grid's per-point scores
    before = npz.stat().st_mtime_ns, grid.stat().st_mtime_ns, (folder / "adaptive.csv").read_bytes()
    assert invoke(*args).exit_code == 0
    assert (npz.stat().st_mtime_ns, grid.stat().st_mtime_ns, (folder / "adaptive.csv").read_bytes()) == before
    rendered = adaptive_report.rendered_markdown(adaptive_report.Layout("mnist", folder))
    assert rendered == (folder / "adaptive.md").read_text()


def test_another_vae_recomputes_the_latent_grid_and_nothing_else(run, tmp_path):
    folder, args = run
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    npz = copy / "attacks" / f"{suite.stem('hinge', 'fresh', 76.0, 'mc', 'mutual_information', 'upper')}.npz"
    grid = copy / "adaptive" / "latent_grid_mc.npz"
    attack_before, grid_before = npz.stat().st_mtime_ns, artifacts.read_json(artifacts.sidecar_path(grid))
    vae = copy / "models" / "vae.json"
    assert invoke("train", "vae", "--epochs", "1", "--limit-train", "400", "--seed", "1", "--out", vae).exit_code == 0
    result = invoke(*[a if a != str(folder) else copy for a in map(str, args)])
    assert result.exit_code == 0, result.output
    grid_after = artifacts.read_json(artifacts.sidecar_path(grid))
    assert grid_after["config"]["vae"] != grid_before["config"]["vae"]  # same path, other contents: recomputed
    assert grid_after["config"]["weights"] == grid_before["config"]["weights"]
    assert npz.stat().st_mtime_ns == attack_before  # the attack sets do not depend on the VAE


def test_the_sanity_checks_draw_the_thresholds_in_and_apply_their_rule(run):
    folder, _ = run
    checks = artifacts.read_table(folder / "adaptive_sanity.csv")
    pairs = {(c, t) for c, t in zip(checks["check"], checks["tail"], strict=True)}
    assert pairs == {(c, t) for c in ("thresholds drawn in", "eps 255") for t in suite.TAILS}
    assert set(np.asarray(checks["eps"], float)) == {76.0, adaptive_report.SANITY_EPS}
    fit = np.asarray(artifacts.read_table(folder / "adaptive" / "fit_scores_mc.csv")["mutual_information"], float)
    for i in np.flatnonzero(checks["check"] == "thresholds drawn in"):
        two = checks["tail"][i] == "two-sided"
        assert checks["threshold"][i] == pytest.approx(np.quantile(fit, 0.75 if two else 0.5), rel=1e-6)
    success, evasion = np.asarray(checks["success_rate"], float), np.asarray(checks["evasion_rate"], float)
    assert np.all(evasion <= success + 1e-12) and np.all(checks["n"] == 30)
    np.testing.assert_array_equal(checks["passes"], (evasion >= success - 0.01).astype(int))


def test_the_latent_grid_counts_holes_per_class(run):
    folder, _ = run
    holes = artifacts.read_table(folder / "hole_grid.csv")
    for predictor in ("mc",):
        mine = holes["predictor"] == predictor
        every = mine & (holes["class"].astype(str) == "all")
        assert every.sum() == 4  # MI and entropy, upper and two-sided
        assert np.all(holes["n_points"][every] == 150 * 150)
        for i in np.flatnonzero(every):
            same = mine & (holes["measure"] == holes["measure"][i]) & (holes["tail"] == holes["tail"][i]) & ~every
            assert holes["n_holes"][same].sum() == holes["n_holes"][i] <= holes["n_far"][i]


def test_pooled_gain_averages_rows_per_image():
    key = {"eps": [76.0] * 4, "predictor": ["mc"] * 4, "tail": ["upper"] * 4}
    rows = [
        {**key, "measure": ["a"] * 4, "attacker": [""] * 4, "evaded_fpr05": [0, 0, 1, 1], "index": [0, 1, 2, 3]},
        {**key, "measure": ["b"] * 4, "attacker": [""] * 4, "evaded_fpr05": [0, 0, 0, 1], "index": [0, 1, 2, 3]},
        {**key, "measure": ["a"] * 4, "attacker": ["known"] * 4, "evaded_fpr05": [1, 0, 1, 1], "index": [0, 1, 2, 3]},
        {**key, "measure": ["b"] * 4, "attacker": ["known"] * 4, "evaded_fpr05": [1, 1, 1, 1], "index": [0, 1, 2, 3]},
    ]
    pooled = adaptive_report.pooled_gain(rows, "known", bootstrap=200, seed=0)
    assert pooled["rows"] == 2 and pooled["images"] == 4
    assert pooled["gain"] == pytest.approx(np.mean([1.0, 0.5, 0.5, 0.0]))
    assert pooled["lo"] <= pooled["gain"] <= pooled["hi"]


def test_bad_tails_and_measures_are_one_line_errors(run):
    folder, _ = run
    assert_one_line_error(invoke("report", "--adaptive", "--tails", "upper,sideways", "--results", folder), "tail")
    # expected entropy is differentiable but outside the suite's grid: refused, not a traceback in fit_scores
    bad = invoke("report", "--adaptive", "--measures", "expected_entropy", "--results", folder)
    assert_one_line_error(bad, "measure")


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
    stem = folder / "attacks" / "pgd-adaptive_eps76_mc_mutual_information_n15_T2"
    result = invoke("attack", "--method", "pgd-adaptive", "--eps", "76", *COMMON, "--results", folder)
    assert result.exit_code == 0, result.output
    protocol_set = stem.with_suffix(".npz").read_bytes()
    result = invoke("attack", "--method", "pgd-adaptive", "--eps", "76", "--detector", other, *COMMON,
                    "--results", folder)  # fmt: skip
    assert result.exit_code == 0, result.output
    (given,) = (folder / "attacks").glob("pgd-adaptive_eps76_mc_mutual_information_n15_T2_det*.json")
    assert artifacts.read_json(given)["config"]["detector"]["seed"] == 5
    result = invoke("attack", "--method", "pgd-adaptive", "--eps", "76", *COMMON, "--results", folder)
    assert "reused attack set" in result.stderr and stem.with_suffix(".npz").read_bytes() == protocol_set
    set_record = artifacts.read_json(stem.with_suffix(".json"))
    assert set_record["config"]["c_grid"] == list(protocol.C_GRID) and 0.0 in protocol.C_GRID


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
    adaptive_set = folder / "attacks" / "pgd-adaptive_eps76_mc_mutual_information_n15_T2.npz"
    assert_one_line_error(invoke("score", "--attack", adaptive_set), "report --adaptive")


def test_the_same_seeds_give_the_same_adaptive_set(run):
    folder, _ = run
    npz = folder / "attacks" / "pgd-adaptive_eps76_mc_mutual_information_n15_T2.npz"
    before = npz.read_bytes()
    result = invoke("attack", "--method", "pgd-adaptive", "--eps", "76", *COMMON, "--force", "--results", folder)
    assert result.exit_code == 0, result.output
    assert npz.read_bytes() == before


def test_the_protocols_detectors_work_with_detect_run(run, tmp_path):
    folder, _ = run
    x, y = data.load_mnist("test")
    np.savez(tmp_path / "digits.npz", x=(x[:40] * 255).round().astype(np.uint8), y=y[:40])
    for name in ("mc_mutual_information.json", "mc_mutual_information_two-sided.json"):
        record = artifacts.read_json(folder / "detectors" / name)
        assert record["model"] == "../models/cnn.keras"  # relative to itself
        result = invoke("detect", "run", "--detector", folder / "detectors" / name, "--data", tmp_path / "digits.npz",
                        "--out", tmp_path / "flags.csv")  # fmt: skip
        assert result.exit_code == 0 and "of 40 inputs" in result.stdout, result.output


def test_the_readme_blocks_render_from_the_suites_files(run):
    folder, _ = run
    table = artifacts.read_table(folder / "adaptive.csv")
    block = adaptive_report.findings(folder, "worst-case")
    assert block.count("\n") == 2 + int((table["attack"] == "pgd").sum())
    first = np.flatnonzero((table["attack"] == "worst-case") & (table["attacker"] == "known"))[0]
    flagged = int(table["n_successful"][first] - table["n_evading"][first])
    assert f"{flagged / table['n_successful'][first]:.3f}" in block
    holes = adaptive_report.findings(folder, "holes")
    assert holes.count("\n") == 2 + 4  # MI and entropy, upper and two-sided, mc only
    assert adaptive_report.findings(folder, "ensemble").count("\n") == 2  # no ensemble rows in this run
    with pytest.raises(ValueError, match="unknown adaptive block"):
        adaptive_report.findings(folder, "other")


def test_the_gallery_shows_the_upper_tail_or_the_two_sided_one_where_the_upper_was_skipped(run, tmp_path):
    folder, _ = run
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    for tail in ("upper", "two-sided"):
        if tail == "two-sided":  # as on cats vs dogs: the upper tail skipped, so no worst case there
            table = artifacts.read_table(copy / "adaptive.csv")
            keep = (table["tail"] != "upper") | (table["attack"] == "pgd")
            artifacts.write_csv(copy / "adaptive.csv", {k: v[keep] for k, v in table.items()})
            for path in (copy / "attacks").glob("suite_worst-case_*_upper.npz"):
                path.unlink()
        result = invoke("plot", "adaptive", "--dataset", "mnist", "--results", copy)
        assert result.exit_code == 0 and "gallery skipped" not in result.output, result.output
        record = artifacts.read_json(copy / "adaptive_gallery.json")
        assert record["config"]["tail"] == tail
        drawn = [name for name in record["inputs"] if "worst-case" in name]
        assert len(drawn) == len(suite.ATTACKERS) and all(name.endswith(f"_{tail}.npz") for name in drawn)
