"""A user's ordinary mistakes with their own model (issue 16): each gets a one-line error or a stated
warning, never a silently wrong number. One test per numbered defect, each failing on the code
before the fix; then the detector file's format, deployment and the migration of protocol-2 records.

The user's model is not the other tests' model: 16x16 grayscale, BatchNorm and Dropout, 10 classes,
inputs in 0-255 for one copy (a Rescaling layer inside) and [0, 1] for the other."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from conftest import assert_one_line_error
from typer.testing import CliRunner

import uncertadv as ua
from uncertadv import artifacts
from uncertadv.cli import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def _model(scale: float, dropout: float = 0.3, softmax: bool = True, seed: int = 0, channels: int = 1):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((16, 16, channels))
    h = keras.layers.Rescaling(1.0 / scale)(inputs)
    h = keras.layers.Conv2D(6, 3, activation="relu")(h)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    if dropout:
        h = keras.layers.Dropout(dropout)(h)
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax" if softmax else None)(h))


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    root = tmp_path_factory.mktemp("user")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 300)
    x = np.clip(rng.normal(20 + 22 * y[:, None, None, None], 25, (300, 16, 16, 1)), 0, 255).astype(np.uint8)
    model = _model(1.0)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x / 255.0, y, epochs=8, verbose=0)
    model.save(root / "mine.keras")
    big = _model(255.0)  # the same network on 0-255 inputs
    big.set_weights(model.get_weights())
    big.save(root / "mine255.keras")
    _model(1.0, dropout=0).save(root / "nodrop.keras")
    _model(1.0, channels=3).save(root / "rgb.keras")  # untrained: for what folders load, not for accuracy
    np.savez(root / "t.npz", x=x, y=y)
    return root, model, x, y


# ------------------------------------------------------------------ 1. reuse keyed on contents


def test_1_score_and_attack_reuse_follow_the_data_contents_not_the_path(user, tmp_path):
    root, _, x, y = user
    np.savez(tmp_path / "t2.npz", x=x[:100], y=y[:100])
    score = ["score", "--model", root / "mine.keras", "--data", tmp_path / "t2.npz", "--samples", "2",
             "--out", tmp_path / "s2.csv"]  # fmt: skip
    assert run(*score).exit_code == 0
    again = run(*score)
    assert "reused" in again.stderr
    np.savez(tmp_path / "t2.npz", x=x[150:200], y=y[150:200])  # the same path, 50 other images
    result = run(*score)
    assert result.exit_code == 0 and "reused" not in result.stderr, result.stderr
    assert len(artifacts.read_table(tmp_path / "s2.csv")["index"]) == 50 and "50 images" in result.stdout

    np.savez(tmp_path / "t3.npz", x=x[:60], y=y[:60])
    attack = ["attack", "--model", root / "mine.keras", "--data", tmp_path / "t3.npz", "--method", "fgm", "--eps",
              "8", "--n", "10", "--samples", "2", "--results", tmp_path / "out"]  # fmt: skip
    assert run(*attack).exit_code == 0
    first = artifacts.read_json(tmp_path / "out" / "attacks" / "fgm_eps8_mc_n10_T2.json")["config"]["data_sha256"]
    assert "reused attack set" in run(*attack).stderr
    np.savez(tmp_path / "t3.npz", x=x[100:160], y=y[100:160])
    result = run(*attack)
    assert result.exit_code == 0 and "wrote attack set" in result.stderr, result.stderr
    made = tmp_path / "out" / "attacks" / "fgm_eps8_mc_n10_T2.json"
    assert artifacts.read_json(made)["config"]["data_sha256"] != first


def test_1_a_set_is_never_scored_against_other_data(user, tmp_path):
    root, model, x, y = user
    from uncertadv.experiments import attack_sets
    from uncertadv.experiments.layout import own_layout

    layout = own_layout(tmp_path)
    config = ua.AttackConfig(method="fgm", eps=8, samples=2)
    x = x / np.float32(255)
    attack_sets.build([model], [root / "mine.keras"], x[:60], y[:60], config, n=10, layout=layout,
                      model=root / "mine.keras")  # fmt: skip
    with pytest.raises(ValueError, match="other data"):
        attack_sets.cached_scores(layout, "fgm_eps8_mc_n10_T2", [model], x[100:160], y[100:160])


# ------------------------------------------------------------------ 2. detectors carry their contract


def test_2_a_detector_records_and_applies_its_input_contract(user, tmp_path):
    root, _, x, _ = user
    np.savez(tmp_path / "f255.npz", x=x.astype(np.float32))  # floats in 0-255, for a model that takes 0-255
    result = run("detect", "fit", "--model", root / "mine255.keras", "--data", tmp_path / "f255.npz", "--pixel-max",
                 "255", "--samples", "4", "--out", tmp_path / "det.json")  # fmt: skip
    assert result.exit_code == 0, result.output
    record = artifacts.read_json(tmp_path / "det.json")
    assert record["input"] == {"shape": [16, 16, 1], "dtype": "float32", "pixel_max": 255.0, "range": [0.0, 255.0]}
    assert record["format"] == 2 and record["tail"] == "upper" and record["rule"] == "empirical"
    assert {"command", "versions", "wall_seconds", "config_sha256"} <= set(record)
    assert record["versions"]["cpu"] and record["model"] == os.path.relpath(root / "mine255.keras", tmp_path)
    result = run(
        "detect",
        "run",
        "--detector",
        tmp_path / "det.json",
        "--data",
        tmp_path / "f255.npz",
        "--out",
        tmp_path / "flags.csv",
    )  # fmt: skip  (no --pixel-max: the detector's applies)
    assert result.exit_code == 0, result.output
    assert artifacts.read_table(tmp_path / "flags.csv")["flagged"].mean() == pytest.approx(record["fit_fpr"])
    contradict = run("detect", "run", "--detector", tmp_path / "det.json", "--data", tmp_path / "f255.npz",
                     "--pixel-max", "1", "--out", tmp_path / "flags2.csv")  # fmt: skip
    assert_one_line_error(contradict, "contradicts the detector")


# ------------------------------------------------------------------ 3. the API checks the range


def test_3_the_api_refuses_0_255_floats_and_scales_uint8_by_its_rule(user):
    _, model, x, _ = user
    det = ua.Detector(model, "mutual_information", samples=4).fit(x[:200] / 255.0)
    with pytest.raises(ValueError, match="divide by 255"):
        det.predict(x[200:].astype(np.float32))
    for call in (lambda: ua.mc_predict(model, x.astype(np.float32), samples=2, seed=0),
                 lambda: ua.predict([model], x.astype(np.float32), predictor="mc", samples=2, seed=0),
                 lambda: det.fit(x.astype(np.float32))):  # fmt: skip
        with pytest.raises(ValueError, match=r"model takes \[0, 1\]"):
            call()
    np.testing.assert_allclose(det.score(x[200:]), det.score(x[200:] / 255.0), rtol=1e-4, atol=1e-8)
    assert det.predict(x[200:]).mean() < 0.2  # uint8 is 0-255, scaled into [0, 1]: about the fitted 5%


# ------------------------------------------------------------------ 4. folder labels


def _folder(root, names, x, per=3):
    for k, name in enumerate(names):
        (root / name).mkdir(parents=True)
        for i in range(per):
            tf.io.write_file(str(root / name / f"{i}.png"), tf.io.encode_png(x[k * per + i]))


def test_4_integer_folders_are_their_labels_and_names_follow_classes(user, tmp_path):
    root, _, x, _ = user
    _folder(tmp_path / "ints", ["0", "2", "9"], x)
    score = ["score", "--model", root / "rgb.keras", "--image-size", "16", "--samples", "2"]
    result = run(*score, "--data", tmp_path / "ints", "--out", tmp_path / "a.csv")
    assert result.exit_code == 0, result.output
    assert list(artifacts.read_table(tmp_path / "a.csv")["label"]) == [0] * 3 + [2] * 3 + [9] * 3
    assert "'2' -> 2" in result.stderr


def test_4_named_folders_take_their_order_from_classes(user, tmp_path):
    root, _, x, _ = user
    _folder(tmp_path / "colours", ["blue", "green", "red"], x)
    score = ["score", "--model", root / "rgb.keras", "--image-size", "16", "--samples", "2",
             "--data", tmp_path / "colours"]  # fmt: skip
    result = run(*score, "--classes", "red,green,blue", "--out", tmp_path / "c.csv")
    assert result.exit_code == 0, result.output
    assert sorted(artifacts.read_table(tmp_path / "c.csv")["label"]) == [0] * 3 + [1] * 3 + [2] * 3
    from uncertadv import own_data

    images, labels, _ = own_data.load_data(str(tmp_path / "colours"), 255.0, 16, classes=["red", "green", "blue"])
    for label, k in ((0, 2), (1, 1), (2, 0)):  # red holds x[6:9], green x[3:6], blue x[0:3]
        np.testing.assert_array_equal(images[labels == label][..., :1], x[3 * k : 3 * k + 3])
    assert artifacts.read_json(tmp_path / "c.json")["config"]["class_labels"] == {"red": 0, "green": 1, "blue": 2}
    assert "'red' -> 0" in result.stderr
    assert_one_line_error(run(*score, "--classes", "red,green", "--out", tmp_path / "d.csv"), "each subfolder")


# ------------------------------------------------------------------ 5. --from-logits on a softmax model


def test_5_from_logits_on_a_softmax_model_is_refused(user, tmp_path):
    root, model, x, _ = user
    result = run("score", "--model", root / "mine.keras", "--data", root / "t.npz", "--from-logits",
                 "--out", tmp_path / "s.csv")  # fmt: skip
    assert_one_line_error(result, "softmax would be applied twice")
    with pytest.raises(ValueError, match="applied twice"):
        ua.mc_predict(model, x[:5], samples=2, seed=0, from_logits=True)


# ------------------------------------------------------------------ 6. models without dropout


def test_6_no_dropout_no_sample_measure_detector_and_a_warning_in_score(user, tmp_path):
    root, _, x, _ = user
    nodrop = ua.load_model(root / "nodrop.keras")
    for measure in ("mutual_information", "softmax_variance", "variation_ratio"):
        with pytest.raises(ValueError, match="no dropout layer"):
            ua.Detector(nodrop, measure)
    ua.Detector(nodrop, "predictive_entropy")  # defined without dropout
    fit = run("detect", "fit", "--model", root / "nodrop.keras", "--data", root / "t.npz", "--out", tmp_path / "d.json")
    assert_one_line_error(fit, "no dropout layer")
    result = run("score", "--model", root / "nodrop.keras", "--data", root / "t.npz", "--samples", "2",
                 "--out", tmp_path / "s.csv")  # fmt: skip
    assert result.exit_code == 0 and "warning:" in result.stderr and "no dropout" in result.stderr
    table = artifacts.read_table(tmp_path / "s.csv")
    assert np.isnan(table["mutual_information"]).all() and not np.isnan(table["predictive_entropy"]).any()
    assert "n/a" in result.stdout


# ------------------------------------------------------------------ 7. budget units


def test_7_eps_below_1_is_warned_above_255_refused_and_l2_printed_in_255_units(user, tmp_path):
    root, model, x, y = user
    attack = ["attack", "--model", root / "mine.keras", "--data", root / "t.npz", "--method", "fgm", "--n", "5",
              "--samples", "2", "--results", tmp_path]  # fmt: skip
    assert_one_line_error(run(*attack, "--eps", "300"), "255")
    result = run(*attack, "--eps", "0.3")
    assert result.exit_code == 0 and "warning:" in result.stderr and "Did you mean 76.5" in result.stderr
    result = run(*attack, "--eps", "8")
    record = artifacts.read_json(tmp_path / "attacks" / "fgm_eps8_mc_n5_T2.json")
    assert f"mean L2 {record['mean_l2'] * 255:.2f}" in result.stdout and "0-255 pixel units" in result.stdout
    with pytest.raises(ValueError, match="255"):
        ua.attack(model, x[:5] / 255.0, y[:5], method="fgm", eps=300)
    with pytest.warns(UserWarning, match="Did you mean"):
        ua.attack(model, x[:5] / 255.0, y[:5], method="fgm", eps=0.3)


# ------------------------------------------------------------------ 8. one validation path


def test_8_mistakes_every_entry_refuses_the_same_way(user, tmp_path):
    root, model, x, y = user
    np.savez(tmp_path / "labels14.npz", x=x[:50], y=np.full(50, 14))
    score = ["score", "--model", root / "mine.keras", "--samples", "2", "--out", tmp_path / "s.csv"]
    assert_one_line_error(run(*score, "--data", tmp_path / "labels14.npz"), "model has 10 classes")
    with pytest.raises(ValueError, match="one-hot"):
        ua.attack(model, x[:5] / 255.0, np.eye(10)[y[:5]], method="fgm", eps=8)
    np.savez(tmp_path / "onehot.npz", x=x[:50], y=np.eye(10, dtype=np.int64)[y[:50]])
    assert_one_line_error(run(*score, "--data", tmp_path / "onehot.npz"), "one-hot")
    (tmp_path / "script.py").write_text("print('hello')\n")
    assert_one_line_error(run(*score, "--data", tmp_path / "script.py"), "not an .npz")
    np.savez(tmp_path / "ten.npz", x=x[:10])
    fit = run("detect", "fit", "--model", root / "mine.keras", "--data", tmp_path / "ten.npz", "--fpr", "0.01",
              "--out", tmp_path / "d.json")  # fmt: skip
    assert_one_line_error(fit, "needs at least 100 clean inputs")
    _folder(tmp_path / "imgs", ["0", "1"], x)
    (tmp_path / "imgs" / "1" / "broken.png").write_bytes(b"not a png")
    result = run(*score, "--data", tmp_path / "imgs", "--image-size", "16")
    assert_one_line_error(result, "broken.png")


# ------------------------------------------------------------------ the detector file


def test_the_detector_is_bound_to_its_configuration_not_only_its_weights(user, tmp_path):
    _, model, x, _ = user
    det = ua.Detector(model, samples=3).fit(x[:100] / 255.0)
    det.save(tmp_path / "d.json")
    other_rate = _model(1.0, dropout=0.6)
    other_rate.set_weights(model.get_weights())  # the same weights, another dropout rate
    with pytest.raises(ValueError, match="other configuration"):
        ua.Detector.load(tmp_path / "d.json", other_rate)
    with pytest.raises(ValueError, match="not the detector's"):
        ua.attack(other_rate, x[:5] / 255.0, method="pgd-adaptive", eps=8, c=1, detector=det)


def test_the_conformal_rule_is_opt_in_and_recorded(user, tmp_path):
    _, model, _, _ = user
    scores = np.arange(1, 100, dtype=float)  # M = 99 distinct scores
    det = ua.Detector(model, "predictive_entropy")
    assert det.fit_scores(scores, 0.05).threshold == 95.0  # ceil(0.95 * 99) = 95th smallest
    assert det.fit_scores(scores, 0.05, rule="conformal").threshold == 95.0  # ceil(0.95 * 100) = 95
    assert det.fit_scores(scores[:59], 0.05, rule="conformal").threshold == 57.0  # ceil(0.95 * 60) = 57
    assert det.fit_scores(scores[:59], 0.05).threshold == 57.0  # ceil(0.95 * 59) = 57
    assert det.fit_scores(scores[:39], 0.1, rule="conformal").threshold == 36.0  # ceil(0.9 * 40) = 36 vs 36
    assert det.fit_scores(scores[:29], 0.1, rule="conformal").threshold == 27.0  # ceil(0.9 * 30) = 27
    assert det.fit_scores(scores[:29], 0.1).threshold == 27.0  # ceil(26.1) = 27
    assert det.fit_scores(scores[:24], 0.1, rule="conformal").threshold == 23.0  # ceil(22.5) = 23
    assert det.fit_scores(scores[:24], 0.1).threshold == 22.0  # ceil(21.6) = 22: the rules differ here
    det.save(tmp_path / "d.json")
    assert artifacts.read_json(tmp_path / "d.json")["rule"] == "empirical"
    det.fit_scores(scores[:24], 0.1, rule="conformal").save(tmp_path / "c.json")
    assert ua.Detector.load(tmp_path / "c.json", model).fit_record["rule"] == "conformal"


def test_old_detector_files_load_or_say_how_to_refit(user, tmp_path):
    root, model, x, _ = user
    det = ua.Detector(model, samples=3).fit(x[:100] / 255.0)
    det.save(tmp_path / "new.json")
    new = artifacts.read_json(tmp_path / "new.json")
    old = {k: new[k] for k in ("measure", "predictor", "samples", "seed", "from_logits", "threshold", "target_fpr",
                               "fit_fpr", "n_fit", "weights_sha256")}  # fmt: skip
    (tmp_path / "api.json").write_text(json.dumps(old))  # written by Detector.save before format 2
    with pytest.warns(UserWarning, match="did not record the input scale"):
        loaded = ua.Detector.load(tmp_path / "api.json", model)
    assert loaded.pixel_max == 1.0 and loaded.threshold == det.threshold
    (tmp_path / "cli.json").write_text(json.dumps({**old, "model": str(root / "mine.keras")}))  # by `detect fit`
    with pytest.raises(ValueError, match="uncertadv detect fit"):
        ua.Detector.load(tmp_path / "cli.json", model)
    result = run(
        "detect", "run", "--detector", tmp_path / "cli.json", "--data", root / "t.npz", "--out", tmp_path / "f.csv"
    )
    assert_one_line_error(result, "refit it")


# ------------------------------------------------------------------ deployment


def test_detect_run_follows_a_moved_folder_takes_model_attack_sets_and_grayscale_folders(user, tmp_path):
    root, model, x, y = user
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "mine.keras").write_bytes((root / "mine.keras").read_bytes())
    fit = run("detect", "fit", "--model", tmp_path / "a" / "mine.keras", "--data", root / "t.npz", "--samples", "3",
              "--out", tmp_path / "a" / "det.json")  # fmt: skip
    assert fit.exit_code == 0, fit.output
    (tmp_path / "a").rename(tmp_path / "moved")
    flags = ["--out", tmp_path / "f.csv"]
    result = run("detect", "run", "--detector", tmp_path / "moved" / "det.json", "--data", root / "t.npz", *flags)
    assert result.exit_code == 0, result.output
    # a detector saved by the API names no model: --model gives it
    ua.Detector(model, samples=3).fit(x[:100] / 255.0).save(tmp_path / "api.json")
    result = run("detect", "run", "--detector", tmp_path / "api.json", "--data", root / "t.npz", *flags)
    assert_one_line_error(result, "--model")
    result = run("detect", "run", "--detector", tmp_path / "api.json", "--model", root / "mine.keras",
                 "--data", root / "t.npz", *flags)  # fmt: skip
    assert result.exit_code == 0, result.output
    # an attack set's adversarial images
    attack = run("attack", "--model", root / "mine.keras", "--data", root / "t.npz", "--method", "fgm", "--eps", "8",
                 "--n", "10", "--samples", "2", "--results", tmp_path / "out")  # fmt: skip
    assert attack.exit_code == 0, attack.output
    result = run("detect", "run", "--detector", tmp_path / "moved" / "det.json",
                 "--data", tmp_path / "out" / "attacks" / "fgm_eps8_mc_n10_T2.npz", *flags)  # fmt: skip
    assert result.exit_code == 0 and "x_adv" in result.stderr and "of 10 inputs" in result.stdout, result.output
    # a grayscale folder for a one-channel model, and tfds
    _folder(tmp_path / "gray", ["0", "1"], x, per=12)
    for data in (tmp_path / "gray",):
        result = run("detect", "fit", "--model", root / "mine.keras", "--data", data, "--image-size", "16",
                     "--samples", "2", "--out", tmp_path / "g.json")  # fmt: skip
        assert result.exit_code == 0, result.output
    with tfds.testing.mock_data(num_examples=30, data_dir=str(tmp_path / "tfds")):
        result = run("detect", "run", "--detector", tmp_path / "g.json", "--data", "tfds:mnist:test",
                     "--image-size", "16", *flags)  # fmt: skip
    assert result.exit_code == 0 and "of 30 inputs" in result.stdout, result.output


def test_adaptive_attack_with_a_given_detector_of_any_seed_needs_no_fitting_images(user, tmp_path):
    root, model, x, y = user
    np.savez(tmp_path / "small.npz", x=x[:80], y=y[:80])  # 3 x 10 + 50 calibration images: no 1,000 to fit
    ua.Detector(model, samples=3, seed=7).fit(x[100:] / 255.0).save(
        tmp_path / "det.json", model_file=root / "mine.keras"
    )
    result = run("attack", "--model", root / "mine.keras", "--data", tmp_path / "small.npz", "--method",
                 "pgd-adaptive-known", "--eps", "16", "--n", "10", "--samples", "3",
                 "--detector", tmp_path / "det.json", "--results", tmp_path / "out")  # fmt: skip
    assert result.exit_code == 0, result.output
    (path,) = (tmp_path / "out" / "attacks").glob("pgd-adaptive-known_eps16_mc_mutual_information_n10_T3_det*.json")
    record = artifacts.read_json(path)  # named apart from the protocol's set, which it never overwrites
    assert record["config"]["detector"]["seed"] == 7 and record["config"]["n_fit_held_out"] == 0


def test_version():
    result = run("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"uncertadv {ua.__version__}"


# ------------------------------------------------------------------ migration of protocol-2 records


def test_protocol_2_records_migrate_when_their_data_checks_out(user, tmp_path):
    root, model, x, y = user
    from uncertadv.experiments import attack_sets, migrate
    from uncertadv.experiments.layout import own_layout

    layout = own_layout(tmp_path)
    xs, ys = x[:60] / np.float32(255), y[:60]
    config = ua.AttackConfig(method="fgm", eps=8, samples=2)
    made = attack_sets.build([model], [root / "mine.keras"], xs, ys, config, n=10, layout=layout,
                             model=root / "mine.keras")  # fmt: skip
    path = tmp_path / "attacks" / "fgm_eps8_mc_n10_T2.json"
    want = made["config"]["data_sha256"]
    old = artifacts.read_json(path)
    old["config"]["protocol"] = 2
    del old["config"]["data_sha256"]
    artifacts.write_json(path, old)
    lines = migrate.migrate(tmp_path, load=lambda record: (xs, ys))
    migrated = "migrated fgm_eps8_mc_n10_T2.json: labels and mean L2 of its 10 adversarial images; noise L2 ratio"
    assert lines == [migrated]
    record = artifacts.read_json(path)
    assert record["config"]["protocol"] == 3 and record["config"]["data_sha256"] == want
    assert record["migrated"]["from_protocol"] == 2
    again = attack_sets.build([model], [root / "mine.keras"], xs, ys, config, n=10, layout=layout,
                              model=root / "mine.keras")  # fmt: skip
    assert again.get("reused") is True  # nothing is remade
    # other data under the same name is not migrated: the set is remade on its next use
    artifacts.write_json(path, old)
    brighter = (np.clip(xs + np.float32(0.05), 0, 1), ys)  # the same labels, other pixels
    lines = migrate.migrate(tmp_path, load=lambda record: brighter)
    assert "mean L2" in lines[0] and lines[0].startswith("kept fgm_eps8_mc_n10_T2.json")
    other = (x[100:160] / np.float32(255), y[100:160])
    lines = migrate.migrate(tmp_path, load=lambda record: other)
    assert lines[0].startswith("kept fgm_eps8_mc_n10_T2.json") and artifacts.read_json(path)["config"]["protocol"] == 2


# ------------------------------------------------------------------ found by a newcomer's run of other models


def test_report_on_a_model_without_dropout_leaves_the_sample_measures_na(user, tmp_path):
    root, _, x, _ = user
    result = run("report", "--model", root / "nodrop.keras", "--data", root / "t.npz", "--methods", "fgm", "--eps",
                 "8", "--n", "10", "--samples", "3", "--bootstrap", "10", "--results", tmp_path)  # fmt: skip
    assert result.exit_code == 0, result.output
    table = artifacts.read_table(tmp_path / "table1.csv")
    assert np.isnan(table["mi_auc"]).all() and not np.isnan(table["entropy_auc"]).any()
    scores = artifacts.read_table(tmp_path / "scores.csv")
    assert np.isnan(scores["mutual_information"]).all() and np.isnan(scores["variation_ratio"]).all()
    with pytest.warns(UserWarning, match="no dropout layer"):
        ua.mc_predict(ua.load_model(root / "nodrop.keras"), x[:4], samples=2, seed=0)
    with pytest.raises(ValueError, match="no dropout layer"):
        ua.Detector(ua.load_model(root / "nodrop.keras"), "expected_entropy")


def test_the_wrong_scale_for_a_model_that_rescales_by_1_255_is_warned(user, tmp_path):
    root, _, x, _ = user
    result = run("score", "--model", root / "mine255.keras", "--data", root / "t.npz", "--samples", "2",
                 "--out", tmp_path / "s.csv")  # fmt: skip
    assert result.exit_code == 0 and "warning:" in result.stderr and "--pixel-max 255" in result.stderr
    det = tmp_path / "d.json"
    np.savez(tmp_path / "f255.npz", x=x.astype(np.float32))
    fit = run("detect", "fit", "--model", root / "mine255.keras", "--data", tmp_path / "f255.npz", "--pixel-max", "255",
              "--samples", "2", "--out", det)  # fmt: skip
    assert fit.exit_code == 0, fit.output
    np.savez(tmp_path / "f01.npz", x=x.astype(np.float32) / 255)  # [0, 1] floats for a 0-255 detector
    result = run("detect", "run", "--detector", det, "--data", tmp_path / "f01.npz", "--out", tmp_path / "f.csv")
    assert "warning:" in result.stderr and "multiply them by 255" in result.stderr, result.stderr


def test_score_never_overwrites_a_json_that_is_not_its_record(user, tmp_path):
    root, model, x, _ = user
    ua.Detector(model, samples=2).fit(x[:100] / 255.0).save(tmp_path / "det.json")
    before = (tmp_path / "det.json").read_bytes()
    result = run("score", "--model", root / "mine.keras", "--data", root / "t.npz", "--out", tmp_path / "det.csv")
    assert_one_line_error(result, "which `uncertadv score` did not write")
    fit = run("detect", "fit", "--model", root / "mine.keras", "--data", root / "t.npz", "--out", tmp_path / "new.json")
    assert (tmp_path / "det.json").read_bytes() == before and fit.exit_code == 0, fit.output  # a new name is fine
    (tmp_path / "notes.json").write_text('{"mine": 1}')
    fit = run(
        "detect", "fit", "--model", root / "mine.keras", "--data", root / "t.npz", "--out", tmp_path / "notes.json"
    )
    assert_one_line_error(fit, "not a detector file")


def test_the_api_takes_a_bare_model_and_says_what_eps_is(user):
    _, model, x, y = user
    assert ua.predict(model, x[:3], predictor="mc", samples=2, seed=0).shape == (2, 3, 10)
    with pytest.raises(ValueError, match="must be a number"):
        ua.attack(model, x[:3] / 255.0, y[:3], method="fgm", eps="8")
    with pytest.raises(ValueError, match="image range"):
        ua.attack(model, x[:3] / 255.0, y[:3], method="fgm", eps=8, pixel_max=None)


def test_folders_default_to_the_models_size_and_ambiguous_names_are_refused(user, tmp_path):
    root, _, x, _ = user
    _folder(tmp_path / "f", ["0", "3"], x)
    score = ["score", "--model", root / "mine.keras", "--samples", "2", "--out", tmp_path / "s.csv"]
    result = run(*score, "--data", tmp_path / "f")  # 16x16 without --image-size: the model's own size
    assert result.exit_code == 0, result.output
    (tmp_path / "f" / "empty").mkdir()
    assert_one_line_error(run(*score, "--data", tmp_path / "f"), "mixes integer subfolders")
    (tmp_path / "f" / "empty").rmdir()
    (tmp_path / "f" / ".ipynb_checkpoints").mkdir()
    assert_one_line_error(run(*score, "--data", tmp_path / "f"), "hidden subfolder")
    np.savez(tmp_path / "rgb.npz", x=np.repeat(x[:5], 3, axis=-1))
    result = run(*score, "--data", tmp_path / "rgb.npz")
    assert_one_line_error(result, "does not fit model input")
    assert "--color-mode" not in result.stderr  # an npz has no color mode to choose


def test_a_given_detector_of_another_t_attacks_its_own_networks(user, tmp_path, monkeypatch):
    root, model, x, y = user
    from uncertadv.experiments.adaptive import protocol

    seen = []
    real = protocol.attack
    monkeypatch.setattr(protocol, "attack", lambda *a, **k: seen.append(a[3]) or real(*a, **k))
    np.savez(tmp_path / "small.npz", x=x[:80], y=y[:80])
    ua.Detector(model, samples=4, seed=7).fit(x[100:] / 255.0).save(tmp_path / "det.json")
    result = run("attack", "--model", root / "mine.keras", "--data", tmp_path / "small.npz", "--method",
                 "pgd-adaptive-known", "--eps", "16", "--n", "10", "--samples", "2",
                 "--detector", tmp_path / "det.json", "--results", tmp_path / "out")  # fmt: skip
    assert result.exit_code == 0, result.output
    (path,) = (tmp_path / "out" / "attacks").glob("pgd-adaptive-known_eps16_mc_mutual_information_n10_T2_det*.json")
    assert artifacts.read_json(path)["config"]["detector"]["samples"] == 4
    assert seen and all(c.samples == 4 and c.detector_seed == 7 for c in seen)  # the detector's own T networks


def test_more_ambiguities_are_refused(user, tmp_path):
    root, model, x, y = user
    _folder(tmp_path / "f", ["1", "01"], x)
    score = ["score", "--model", root / "mine.keras", "--samples", "2", "--out", tmp_path / "s.csv"]
    assert_one_line_error(run(*score, "--data", tmp_path / "f"), "two subfolders for one label")
    assert_one_line_error(run(*score, "--data", "tfds:mnist", "--classes", "a,b"), "tfds")
    det = ua.Detector(model, samples=2).fit(x[:100] / 255.0)
    with pytest.raises(ValueError, match="clip_min"):
        ua.attack(model, x[:3] / 255.0 - 0.5, y[:3], method="pgd-adaptive", eps=8, c=1, detector=det,
                  clip_min=-0.5, clip_max=0.5)  # fmt: skip
    from uncertadv.experiments.table1 import detection

    rows = {"kind": np.array(["clean"] * 5 + ["noise"] * 5 + ["adversarial"] * 5), "pair": np.r_[[np.nan] * 5,
            np.arange(5), np.arange(5)], "l2": np.ones(15), "success": np.ones(15), "label_changed": np.ones(15),
            "clean_pred": np.zeros(15), "label": np.zeros(15),
            **{m: np.linspace(0, 1, 15) for m in ua.MEASURES}}  # fmt: skip
    row = detection.table_row(rows, bootstrap_rounds=10)
    assert np.isnan(row["mi_tpr_at_5fpr"]) and row["mi_auc"] == 1.0  # 10 negatives cannot set a 5% FPR
