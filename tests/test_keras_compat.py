"""Each private Keras hook of the MC engine on a real model: a Keras upgrade that breaks one fails here."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from uncertadv import _keras_compat as compat


@pytest.fixture(scope="module")
def model():
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.SpatialDropout2D(0.5, name="spatial")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    inner_in = keras.Input((72,))
    inner = keras.Model(inner_in, keras.layers.Dropout(0.5, name="inner_drop")(inner_in), name="inner")
    x = inner(keras.layers.Flatten(name="flatten")(x))
    outputs = keras.layers.Dense(3, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs)


def test_the_tested_keras_release_is_installed():
    assert compat.keras_version() in compat.TESTED, (
        f"Keras {keras.__version__} is not in {compat.TESTED}: check every hook below, then add it"
    )


def test_graph_detection_and_output_layer(model):
    assert compat.is_graph_model(model)
    assert compat.is_graph_model(keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)]))
    assert compat.producing_layer(model.outputs[0]).name == "probs"


def test_all_layers_reaches_nested_models(model):
    names = {layer.name for layer in compat.all_layers(model)}
    assert {"spatial", "bn", "inner", "inner_drop", "probs", model.name} <= names
    assert model.name not in {layer.name for layer in compat.all_layers(model, include_self=False)}


def test_run_graph_calls_back_once_per_layer_and_gives_the_model_output(model):
    seen = []

    def call(op, *args, **kwargs):
        seen.append(op.name)
        return op(*args, **kwargs)

    x = tf.ones((2, 6, 6, 2))
    out = compat.run_graph(model, [x], call)
    out = out[0] if isinstance(out, (list, tuple)) else out
    np.testing.assert_allclose(out.numpy(), model(x, training=False).numpy(), rtol=1e-6)
    assert seen == ["spatial", "bn", "flatten", "inner", "probs"]


def test_spatial_noise_shape_and_training_argument(model):
    spatial = model.get_layer("spatial")
    assert compat.is_spatial_dropout(spatial) and not compat.is_spatial_dropout(model.get_layer("bn"))
    assert [int(d) for d in compat.spatial_noise_shape(spatial, tf.zeros((1, 6, 6, 2)))] == [1, 1, 1, 2]
    assert compat.takes_training(model.get_layer("bn")) and compat.takes_training(spatial)
