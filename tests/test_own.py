"""score, attack and report on your own model and data: 32x32x3 with BatchNorm and
SpatialDropout2D, data the test makes itself (npz, an image folder, tfds under mock_data)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from conftest import assert_one_line_error
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from uncertadv import artifacts
from uncertadv.cli import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    root = tmp_path_factory.mktemp("own")
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 120)
    x = np.clip(rng.normal(60 + 60 * y[:, None, None, None], 30, (120, 32, 32, 3)), 0, 255).astype(np.uint8)
    inputs = keras.Input((32, 32, 3))
    h = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.SpatialDropout2D(0.2)(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    h = keras.layers.Dropout(0.3)(h)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(h))
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x / 255.0, y, epochs=3, verbose=0)
    model.save(root / "m.keras")
    np.savez(root / "x.npz", x=x, y=y)
    np.savez(root / "unlabelled.npz", x=x[:20])
    return root


def test_score_writes_one_row_per_input_with_and_without_labels(own):
    result = run("score", "--model", own / "m.keras", "--data", own / "x.npz", "--samples", "4", "--out", own / "s.csv")
    assert result.exit_code == 0, result.output
    table = artifacts.read_table(own / "s.csv")
    assert len(table["index"]) == 120 and "accuracy: deterministic" in result.stdout
    result = run("score", "--model", own / "m.keras", "--data", own / "unlabelled.npz", "--out", own / "u.csv")
    assert result.exit_code == 0, result.output
    assert "accuracy: n/a" in result.stdout and np.isnan(artifacts.read_table(own / "u.csv")["label"]).all()


def test_attack_and_report_on_your_own_model(own):
    results = own / "out"
    result = run("attack", "--model", own / "m.keras", "--data", own / "x.npz", "--method", "bim", "--eps", "8",
                 "--n", "10", "--samples", "2", "--results", results)  # fmt: skip
    assert result.exit_code == 0, result.output
    record = artifacts.read_json(results / "attacks" / "bim_eps8_mc_n10_T2.json")
    assert record["config"]["dataset"] == "own" and record["config"]["data_options"]["spec"] == str(own / "x.npz")
    result = run("report", "--model", own / "m.keras", "--data", own / "x.npz", "--methods", "fgm,bim", "--eps", "4,8",
                 "--n", "10", "--samples", "2", "--bootstrap", "10", "--results", results)  # fmt: skip
    assert result.exit_code == 0, result.output
    table = artifacts.read_table(results / "table1.csv")
    assert list(table["predictor"]) == ["deterministic", "mc"] * 4  # a single model: no ensemble
    assert artifacts.read_json(results / "table1.json")["attack_sets_reused"] == 1  # the bim eps 8 mc set above
    scores = artifacts.read_table(results / "scores.csv")
    for i in range(len(table["attack"])):
        sel = (scores["attack"] == table["attack"][i]) & (scores["eps"] == table["eps"][i])
        sel &= scores["predictor"] == table["predictor"][i]
        auc = roc_auc_score(scores["kind"][sel] == "adversarial", scores["predictive_entropy"][sel])
        assert table["entropy_auc"][i] == pytest.approx(auc, abs=1e-7)
    assert "m.keras" in (results / "table1.md").read_text()


def test_an_image_folder_is_data_too(own, tmp_path):
    x = np.load(own / "x.npz")["x"]
    for label, name in enumerate(("a", "b")):
        (tmp_path / "images" / name).mkdir(parents=True)
        for i in range(3):
            tf.io.write_file(str(tmp_path / "images" / name / f"{i}.png"), tf.io.encode_png(x[label * 3 + i]))
    result = run("score", "--model", own / "m.keras", "--data", tmp_path / "images", "--image-size", "32",
                 "--samples", "2", "--out", tmp_path / "s.csv")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert list(artifacts.read_table(tmp_path / "s.csv")["label"]) == [0, 0, 0, 1, 1, 1]  # sorted folder names


def test_tfds_data_is_real_tfds_load(tiny_models, tmp_path):
    with tfds.testing.mock_data(num_examples=12, data_dir=str(tmp_path)):
        result = run("score", "--model", tiny_models / "cnn.keras", "--data", "tfds:mnist:test",
                      "--samples", "2", "--out", tmp_path / "s.csv")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(artifacts.read_table(tmp_path / "s.csv")["index"]) == 12  # mock_data ignores the slice


def test_tfds_specs_split_on_the_first_two_colons_only(monkeypatch):
    from uncertadv import own_data

    seen = {}

    def load(name, split, as_supervised):
        seen.update(name=name, split=split)
        return tf.data.Dataset.from_tensor_slices((np.zeros((2, 4, 4, 1), np.uint8), np.zeros(2, np.int64)))

    monkeypatch.setattr(tfds, "load", load)
    x, y = own_data.load_spec("tfds:mnist:test[:10%]")
    assert seen == {"name": "mnist", "split": "test[:10%]"} and x.shape == (2, 4, 4, 1) and y.tolist() == [0, 0]
    own_data.load_spec("tfds:cifar10")
    assert seen["split"] == "test"


def test_bad_own_input_is_one_line(own, tmp_path):
    np.savez(tmp_path / "labels.npz", x=np.zeros((30, 32, 32, 3), np.uint8), y=np.full(30, 7))
    attack = ["attack", "--model", own / "m.keras", "--method", "fgm", "--eps", "4", "--n", "5", "--results", tmp_path]
    assert_one_line_error(run(*attack, "--data", tmp_path / "labels.npz"), "model has 3 classes")
    assert_one_line_error(run(*attack), "--model and --data go together")
    (tmp_path / "empty" / "a").mkdir(parents=True)
    assert_one_line_error(run(*attack, "--data", tmp_path / "empty"), "empty")
    assert_one_line_error(run(*attack, "--data", own / "x.npz", "--predictor", "ensemble"), "not ensemble")


def test_logits_models_and_the_label_source_are_recorded(own, tmp_path):
    keras.utils.set_random_seed(1)
    inputs = keras.Input((32, 32, 3))
    h = keras.layers.Dropout(0.2)(keras.layers.GlobalAveragePooling2D()(inputs))
    keras.Model(inputs, keras.layers.Dense(3)(h)).save(tmp_path / "logits.keras")  # no softmax: logits
    args = ["report", "--model", tmp_path / "logits.keras", "--methods", "fgm", "--eps", "8", "--n", "5",
            "--samples", "2", "--bootstrap", "10", "--results", tmp_path / "out"]  # fmt: skip
    assert_one_line_error(run(*args, "--data", own / "unlabelled.npz"), "--from-logits")
    result = run(*args, "--data", own / "unlabelled.npz", "--from-logits")
    assert result.exit_code == 0, result.output
    record = artifacts.read_json(tmp_path / "out" / "attacks" / "fgm_eps8_mc_n5_T2.json")
    assert record["config"]["data_options"]["labels"] == "predictor"  # no y in the data
    assert record["config"]["data_options"]["from_logits"] is True
    scores = artifacts.read_table(tmp_path / "out" / "scores.csv")
    assert np.nanmax(scores["predictive_entropy"]) <= np.log(3) + 1e-6  # probabilities, not raw logits
