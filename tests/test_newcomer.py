"""What a newcomer with their own model still met (issue 29), one test per section, each failing on the
code before its fix. The model and data are test_user_mistakes' (16x16 grayscale, Dropout, 10 classes)."""

import os

import numpy as np
import pytest
from conftest import assert_one_line_error
from test_user_mistakes import _model, run, user  # noqa: F401 (a fixture)

import uncertadv as ua
from uncertadv import artifacts
from uncertadv.cli import app
from uncertadv.detector import SAMPLE_MEASURES

# ------------------------------------------------------------------ 1. one distinct network


def test_1_fewer_than_two_networks_refuse_the_sample_measures_and_write_na(user, tmp_path):  # noqa: F811
    root, model, x, y = user
    for measure in SAMPLE_MEASURES:  # mc at T = 1 draws one network: MI is 0 by construction, not a finding
        with pytest.raises(ValueError, match="draws one network"):
            ua.Detector(model, measure, samples=1)
    ua.Detector(model, "predictive_entropy", samples=1)
    ua.Detector([model, _model(1.0, seed=1)], "mutual_information", predictor="ensemble", samples=1)  # K networks
    fit = run("detect", "fit", "--model", root / "mine.keras", "--data", root / "t.npz", "--samples", "1",
              "--out", tmp_path / "d.json")  # fmt: skip
    assert_one_line_error(fit, "--samples 1 draws one network")
    assert not (tmp_path / "d.json").exists()
    result = run("report", "--model", root / "mine.keras", "--data", root / "t.npz", "--methods", "fgm", "--eps",
                 "8", "--n", "10", "--samples", "1", "--bootstrap", "10", "--results", tmp_path / "r")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "warning: the mc predictor at --samples 1 draws one network" in result.stderr
    table = artifacts.read_table(tmp_path / "r" / "table1.csv")
    assert np.isnan(table["mi_auc"]).all() and not np.isnan(table["entropy_auc"]).any()
    score = run("score", "--model", root / "mine.keras", "--data", root / "t.npz", "--samples", "1",
                "--out", tmp_path / "s.csv")  # fmt: skip
    assert score.exit_code == 0 and "draws one network" in score.stderr
    scores = artifacts.read_table(tmp_path / "s.csv")
    assert all(np.isnan(scores[m]).all() for m in SAMPLE_MEASURES)
    help_text = " ".join(run("detect", "fit", "--help").output.replace("│", " ").split())
    assert "need two distinct networks (T >= 2 with dropout, or an ensemble)" in help_text


# ------------------------------------------------------------------ 2. your model's labels


def _report_from(folder, out):
    """``report --model mine.keras --data t.npz`` at n = 10, T = 2, run from ``folder`` (relative paths)."""
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        return run("report", "--model", "mine.keras", "--data", "t.npz", "--methods", "fgm,pgd", "--eps", "8",
                   "--n", "10", "--samples", "2", "--bootstrap", "10", "--results", out)  # fmt: skip
    finally:
        os.chdir(cwd)


@pytest.fixture(scope="module")
def own_report(user, tmp_path_factory):  # noqa: F811
    """``report --model --data`` at n = 10, run from the data's folder as a user would (relative paths)."""
    root = user[0]
    out = tmp_path_factory.mktemp("own") / "out"
    result = _report_from(root, out)
    assert result.exit_code == 0, result.output
    return root, out


def test_2_figures_and_records_name_your_model_and_data_never_mnist(own_report, tmp_path):
    from uncertadv.experiments.layout import Layout
    from uncertadv.experiments.table1 import figures

    root, out = own_report
    assert figures.model_title(Layout("mnist", out)) == "your model mine.keras on t.npz"  # plot's default dataset
    assert "# Table 1 on t.npz (your model mine.keras)" in (out / "table1.md").read_text()
    cwd = os.getcwd()
    os.chdir(root)
    try:
        drawn = run("plot", "adversarial-examples", "--results", out, "--method", "pgd", "--eps", "8")
        np.savez(tmp_path / "t.npz", x=np.zeros((300, 16, 16, 1), np.uint8), y=np.zeros(300))
        os.chdir(tmp_path)  # another t.npz here: not the images the set was made from
        moved = run("plot", "adversarial-examples", "--results", out, "--method", "pgd", "--eps", "8")
    finally:
        os.chdir(cwd)
    assert drawn.exit_code == 0, drawn.output
    assert (out / "adversarial_examples_pgd_eps8.png").is_file()
    assert_one_line_error(moved, "other images than the attack set was made from")
    score = run("score", "--model", root / "mine.keras", "--data", root / "t.npz", "--samples", "2",
                "--out", tmp_path / "s.csv")  # fmt: skip
    assert score.exit_code == 0
    config = artifacts.read_json(tmp_path / "s.json")["config"]
    assert config["dataset"] is None and config["source"] is None and config["data"]["spec"].endswith("t.npz")


# ------------------------------------------------------------------ 3. attack and report share no file


def test_3_sets_of_other_settings_never_share_a_file_and_the_defaults_keep_their_names(own_report):
    from uncertadv.experiments.layout import set_name

    root, out = own_report
    default = ua.AttackConfig(method="pgd", eps=8)
    assert set_name("pgd", 8, "mc", default, 200) == "pgd_eps8_mc"  # the committed sets' names
    other = ua.AttackConfig(method="pgd", eps=8, samples=5, iterations=40, step=1.5, seed=3)
    assert set_name("pgd", 8, "mc", other, 10) == "pgd_eps8_mc_n10_T5_it40_step1.5_seed3"
    made = out / "attacks" / "pgd_eps8_mc_n10_T2.npz"
    before = made.read_bytes()
    common = ["--model", root / "mine.keras", "--data", root / "t.npz", "--eps", "8", "--results", out]
    for n, samples in (("5", "2"), ("10", "3")):  # other n, then other T at report's n
        result = run("attack", *common, "--method", "pgd", "--n", n, "--samples", samples)
        assert result.exit_code == 0, result.output
        assert f"pgd_eps8_mc_n{n}_T{samples}.npz" in result.stderr
    assert made.read_bytes() == before
    again = _report_from(root, out)  # the same settings as the fixture's: every set is reused
    assert again.exit_code == 0 and "0 made" in again.stderr, again.output


# ------------------------------------------------------------------ 4. small data


def test_4_the_five_commands_take_the_largest_n_that_fits_and_an_explicit_n_that_does_not_is_named(user, tmp_path):  # noqa: F811
    root, model, x, y = user
    small = tmp_path / "small.npz"
    np.savez(small, x=x[:80], y=y[:80])
    common = ["--model", root / "mine.keras", "--data", small, "--samples", "2"]
    result = run("report", *common, "--methods", "fgm", "--eps", "8", "--bootstrap", "10", "--results", tmp_path / "r")
    assert result.exit_code == 0, result.output
    assert "--n 26: the largest n up to 200 for which 3 x n fits the 80 images of --data" in result.stderr
    assert artifacts.read_json(tmp_path / "r" / "table1.json")["config"]["n"] == 26
    too_many = run("report", *common, "--methods", "fgm", "--eps", "8", "--n", "30", "--results", tmp_path / "r")
    assert_one_line_error(too_many, "--n 30 needs 90 images (3 x n), --data holds 80: the largest n that fits is 26")
    ua.Detector(model, samples=2, seed=7).fit(x[100:] / 255.0).save(tmp_path / "det.json")
    adaptive = ["attack", *common, "--method", "pgd-adaptive-known", "--eps", "8", "--detector", tmp_path / "det.json",
                "--iterations", "2", "--results", tmp_path / "r"]  # fmt: skip
    assert_one_line_error(run(*adaptive, "--n", "20"), "the largest n that fits is 10 (50 held out to calibrate")
    without = run("attack", *common, "--method", "pgd-adaptive-known", "--eps", "8", "--n", "20", "--results",
                  tmp_path / "r")  # no --detector: the protocol fits one on 1,000 held-out images  # fmt: skip
    assert_one_line_error(without, "1000 to fit its detector")
    made = run(*adaptive)
    assert made.exit_code == 0 and "--n 10: the largest n" in made.stderr, made.output


# ------------------------------------------------------------------ 5. detect run on real incoming data


def test_5_detect_run_reads_a_flat_folder_names_each_file_and_overwrites_only_its_own_files(user, tmp_path):  # noqa: F811
    from PIL import Image

    root, _, x, _ = user
    rgb = ua.load_model(root / "rgb.keras")
    rng = np.random.default_rng(0)
    incoming = tmp_path / "incoming"
    (incoming / "later").mkdir(parents=True)
    for name in ("b.png", "a.png", "later/c.png"):  # flat, and one subfolder: no labels are read
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(incoming / name)
    ua.Detector(rgb, samples=2).fit(rng.random((40, 16, 16, 3), dtype=np.float32)).save(
        tmp_path / "det.json", model_file=root / "rgb.keras"
    )
    flags = tmp_path / "flags.csv"
    result = run("detect", "run", "--detector", tmp_path / "det.json", "--data", incoming, "--out", flags)
    assert result.exit_code == 0, result.output
    table = artifacts.read_csv(flags)
    assert table["file"] == ["a.png", "b.png", "later/c.png"] and "index" not in table
    record = artifacts.read_json(tmp_path / "flags.json")
    assert record["writer"] == "detect run" and record["config"]["n"] == 3
    assert record["config"]["detector_sha256"] == artifacts.file_sha256(tmp_path / "det.json")
    assert len(record["config"]["data_sha256"]) == 64
    assert run("detect", "run", "--detector", tmp_path / "det.json", "--data", incoming, "--out", flags).exit_code == 0
    # an .npz: the index; never over a detector, a score table, or a CSV with no record
    np.savez(tmp_path / "in.npz", x=rng.integers(0, 256, (5, 16, 16, 3), dtype=np.uint8))
    detector = (tmp_path / "det.json").read_bytes()
    for out, text in ((tmp_path / "det.csv", "det.json"), (tmp_path / "orphan.csv", "no record")):
        if out.name == "orphan.csv":
            out.write_text("mine\n")
        refused = run("detect", "run", "--detector", tmp_path / "det.json", "--data", tmp_path / "in.npz", "--out", out)
        assert_one_line_error(refused, text)
    assert (tmp_path / "det.json").read_bytes() == detector and (tmp_path / "orphan.csv").read_text() == "mine\n"
    ok = run("detect", "run", "--detector", tmp_path / "det.json", "--data", tmp_path / "in.npz", "--out",
             tmp_path / "npz.csv")  # fmt: skip
    assert ok.exit_code == 0 and artifacts.read_csv(tmp_path / "npz.csv")["index"] == ["0", "1", "2", "3", "4"]
    score = run("score", "--model", root / "rgb.keras", "--data", tmp_path / "in.npz", "--samples", "2", "--out",
                flags)  # a detect run table: not score's to replace  # fmt: skip
    assert_one_line_error(score, "flags.json")
    assert artifacts.read_json(tmp_path / "flags.json")["writer"] == "detect run"


# ------------------------------------------------------------------ 6. smaller things


def test_6_scale_hints_once_and_in_detect_run_and_help_without_bool_types(user, tmp_path):  # noqa: F811
    import keras

    root, model, x, y = user
    np.savez(tmp_path / "f255.npz", x=x[:20].astype(np.float32))  # 0-255 floats for a [0, 1] model
    ua.Detector(model, samples=2).fit(x[100:140] / 255.0).save(tmp_path / "det.json", model_file=root / "mine.keras")
    refused = run("detect", "run", "--detector", tmp_path / "det.json", "--data", tmp_path / "f255.npz", "--out",
                  tmp_path / "f.csv")  # fmt: skip
    assert_one_line_error(refused, "divide the images by 255, or fit a detector with --pixel-max 255")
    keras.utils.set_random_seed(0)
    plain = keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Flatten(), keras.layers.Dropout(0.5),
                              keras.layers.Dense(10, activation="softmax")])  # fmt: skip
    plain.save(tmp_path / "plain.keras")
    result = run("score", "--model", tmp_path / "plain.keras", "--data", root / "t.npz", "--pixel-max", "255",
                 "--samples", "2", "--out", tmp_path / "s.csv")  # fmt: skip
    assert result.exit_code == 0, result.output
    hint = "has no rescaling layer at its input: with --pixel-max 255 it must have been trained on 0-255 inputs"
    assert result.stderr.count(hint) == 1
    np.savez(tmp_path / "f01.npz", x=x[:60] / np.float32(255), y=y[:60])  # [0, 1] floats for a 0-255 model
    report = run("report", "--model", root / "mine255.keras", "--data", tmp_path / "f01.npz", "--pixel-max", "255",
                 "--methods", "fgm", "--eps", "8", "--n", "5", "--samples", "2", "--bootstrap", "10", "--results",
                 tmp_path / "r")  # fmt: skip
    assert report.exit_code == 0, report.output
    assert report.stderr.count("but the model takes [0, 255]") == 1, report.stderr
    assert "has no rescaling layer" not in report.stderr  # mine255 rescales by 1/255 at its input
    assert "<bool>" not in run("--help").output and "<bool>" not in run("report", "--help").output
    from test_user_mistakes import runner

    wide = runner.invoke(app, ["detect", "fit", "--help"], env={"COLUMNS": "250", "TERMINAL_WIDTH": "250"}).output
    assert "|softmax_variance|variation_ratio>" in wide and "score and plot use 50" in wide
