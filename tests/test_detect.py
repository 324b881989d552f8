"""`uncertadv detect fit|run` and `ua.Detector` on a model that is not MNIST-shaped:
32x32x3 with BatchNorm and SpatialDropout2D, and data the test makes itself."""

import json

import keras
import numpy as np
import pytest
from conftest import assert_one_line_error
from typer.testing import CliRunner

import uncertadv as ua
from uncertadv import artifacts
from uncertadv.cli import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("own")
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.SpatialDropout2D(0.3)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.5)(x)
    model = keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(x))
    model.save(root / "m.keras")
    rng = np.random.default_rng(0)
    np.savez(root / "clean.npz", x=rng.integers(0, 256, (60, 32, 32, 3), dtype=np.uint8), y=rng.integers(0, 4, 60))
    np.savez(root / "suspicious.npz", x=rng.random((25, 32, 32, 3), dtype=np.float32))
    return root, model


def test_fit_then_run_flags_and_records_what_it_was_fitted_with(files):
    root, _ = files
    result = run("detect", "fit", "--model", root / "m.keras", "--data", root / "clean.npz", "--measure",
                 "mutual_information", "--fpr", "0.05", "--samples", "4", "--out", root / "det.json")  # fmt: skip
    assert result.exit_code == 0, result.output
    record = json.loads((root / "det.json").read_text())
    assert record["measure"] == "mutual_information" and record["samples"] == 4 and record["seed"] == 0
    assert record["fit_fpr"] <= 0.05 and record["n_fit"] == 60 and len(record["weights_sha256"]) == 64
    assert record["model_sha256"] == artifacts.file_sha256(root / "m.keras")
    result = run("detect", "run", "--detector", root / "det.json", "--data", root / "suspicious.npz",
                 "--out", root / "flags.csv")  # fmt: skip
    assert result.exit_code == 0, result.output
    flags = artifacts.read_table(root / "flags.csv")
    assert list(flags) == ["index", "prediction", "score", "flagged"] and len(flags["index"]) == 25
    np.testing.assert_array_equal(flags["flagged"], flags["score"] > record["threshold"])
    assert f"flagged {flags['flagged'].mean():.3f} of 25" in result.stdout


def test_the_api_fits_at_the_target_rate_and_is_bound_to_its_model(files, tmp_path):
    root, model = files
    x = np.load(root / "clean.npz")["x"].astype(np.float32) / 255.0
    det = ua.Detector(model, measure="predictive_entropy", samples=3, seed=1).fit(x, fpr=0.1)
    assert det.predict(x).mean() <= 0.1 and det.score(x).shape == (60,)
    det.save(tmp_path / "d.json")
    again = ua.Detector.load(tmp_path / "d.json", model)
    np.testing.assert_array_equal(again.predict(x), det.predict(x))
    other = keras.models.clone_model(model)  # same architecture, other weights
    with pytest.raises(ValueError, match="another model"):
        ua.Detector.load(tmp_path / "d.json", other)


def test_bad_input_is_one_line(files, tmp_path):
    root, _ = files
    fit = ["detect", "fit", "--model", root / "m.keras", "--samples", "2", "--out", tmp_path / "d.json"]
    np.savez(tmp_path / "nox.npz", images=np.zeros((2, 32, 32, 3), np.uint8))
    assert_one_line_error(run(*fit, "--data", tmp_path / "nox.npz"), "no array 'x'")
    bad = np.zeros((2, 32, 32, 3), np.float32)
    bad[0, 0, 0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", x=bad)
    assert_one_line_error(run(*fit, "--data", tmp_path / "nan.npz"), "NaN")
    np.savez(tmp_path / "range.npz", x=np.full((2, 32, 32, 3), 200.0, np.float32))
    assert_one_line_error(run(*fit, "--data", tmp_path / "range.npz"), "--pixel-max")
    np.savez(tmp_path / "shape.npz", x=np.zeros((2, 28, 28, 1), np.uint8))
    assert_one_line_error(run(*fit, "--data", tmp_path / "shape.npz"), "does not fit model input")
    assert_one_line_error(run(*fit, "--data", root / "clean.npz", "--fpr", "1.5"), "--fpr must be in (0, 1)")
    assert_one_line_error(run(*fit, "--data", root / "clean.npz", "--measure", "vibes"), "is not one of")
    assert not (tmp_path / "d.json").exists()  # nothing half-written


def test_a_detector_whose_model_changed_is_refused(files, tmp_path):
    root, model = files
    (tmp_path / "m.keras").write_bytes((root / "m.keras").read_bytes())
    result = run("detect", "fit", "--model", tmp_path / "m.keras", "--data", root / "clean.npz", "--samples", "2",
                 "--out", tmp_path / "d.json")  # fmt: skip
    assert result.exit_code == 0, result.output
    retrained = keras.models.clone_model(model)
    retrained.save(tmp_path / "m.keras")  # the same file name, other weights
    result = run("detect", "run", "--detector", tmp_path / "d.json", "--data", root / "suspicious.npz",
                 "--out", tmp_path / "f.csv")  # fmt: skip
    assert_one_line_error(result, "fitted on another model")
    assert not (tmp_path / "f.csv").exists()


def test_two_sided_thresholds_spend_half_the_rate_on_each_tail():
    """M = 99 clean scores 1..99, α = 0.1, conformal: the upper threshold is the ceil(0.95 * 100) = 95th
    smallest, the lower the floor(0.05 * 100) = 5th; one tail at α: the ceil(0.9 * 100) = 90th, or the
    floor(0.1 * 100) = 10th."""
    from uncertadv.detector import thresholds

    scores = np.arange(1.0, 100.0)
    assert thresholds(scores, 0.1, "conformal", "two-sided") == (95.0, 5.0)
    assert thresholds(scores, 0.1, "conformal", "upper") == (90.0, None)
    assert thresholds(scores, 0.1, "conformal", "lower") == (None, 10.0)
    assert thresholds(scores, 0.1, "empirical", "two-sided") == (95.0, 4.0)  # floor(0.05 * 99) = 4
    with pytest.raises(ValueError, match="flags nothing"):  # floor(0.025 * 20) = 0
        thresholds(scores[:19], 0.05, "conformal", "two-sided")


def test_a_two_sided_detector_flags_both_tails_and_round_trips(files, tmp_path):
    root, model = files
    x = np.load(root / "clean.npz")["x"]
    detector = ua.Detector([model], "mutual_information", samples=4, tail="two-sided").fit(x, 0.2, rule="conformal")
    scores = detector.score(x)
    flags = detector.predict(x)
    np.testing.assert_array_equal(flags, (scores > detector.threshold) | (scores < detector.lower_threshold))
    assert (scores < detector.lower_threshold).any() and (scores > detector.threshold).any()
    detector.save(tmp_path / "two.json")
    again = ua.Detector.load(tmp_path / "two.json", [model])
    assert (again.tail, again.threshold, again.lower_threshold) == ("two-sided", detector.threshold,
                                                                    detector.lower_threshold)  # fmt: skip
    np.testing.assert_array_equal(again.predict(x), flags)
    with pytest.raises(ValueError, match="tail"):
        ua.Detector([model], tail="both")


def test_detect_fit_takes_a_tail(files):
    root, _ = files
    result = run("detect", "fit", "--model", root / "m.keras", "--data", root / "clean.npz", "--samples", "4",
                 "--fpr", "0.2", "--rule", "conformal", "--tail", "lower", "--out", root / "low.json")  # fmt: skip
    assert result.exit_code == 0, result.output
    record = json.loads((root / "low.json").read_text())
    assert record["tail"] == "lower" and record["threshold"] is None and record["lower_threshold"] > 0
    assert "flags mutual_information <" in result.stdout
    result = run("detect", "run", "--detector", root / "low.json", "--data", root / "suspicious.npz",
                 "--out", root / "low_flags.csv")  # fmt: skip
    assert result.exit_code == 0, result.output
    flags = artifacts.read_table(root / "low_flags.csv")
    np.testing.assert_array_equal(flags["flagged"], flags["score"] < record["lower_threshold"])
