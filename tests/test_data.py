import numpy as np
import pytest
import tensorflow_datasets as tfds

from uncertadv import data


def test_bundled_mnist_matches_its_provenance():
    x, y = data.load_mnist("test")
    assert x.shape == (10000, 28, 28, 1) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() == 1.0
    assert y.tolist()[:10] == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    x_train, y_train = data.load_mnist("train", source="bundled")
    assert x_train.shape == (60000, 28, 28, 1) and y_train.tolist()[:10] == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]


def test_tfds_source_calls_tfds_load(tmp_path):
    with tfds.testing.mock_data(num_examples=12, data_dir=str(tmp_path)):
        x, y = data.load_mnist("test", source="tfds")
    assert x.shape == (12, 28, 28, 1) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0 and y.dtype == np.int64


def test_unknown_dataset_and_source_are_value_errors():
    with pytest.raises(ValueError, match="unknown dataset"):
        data.load("svhn")
    with pytest.raises(ValueError):
        data.load_mnist("test", source="internet")
