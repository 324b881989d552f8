"""The paper's MNIST CNN (Keras's classic mnist_cnn), with dropout for MC sampling."""

from __future__ import annotations

import keras


def build_cnn(
    input_shape: tuple[int, int, int] = (28, 28, 1),
    num_classes: int = 10,
    *,
    filters: tuple[int, int] = (32, 64),
    dense_units: int = 128,
    name: str = "mnist_cnn",
) -> keras.Model:
    """Conv 32 3x3 ReLU -> Conv 64 3x3 ReLU -> MaxPool 2 -> Dropout 0.25 -> Flatten
    -> Dense 128 ReLU -> Dropout 0.5 -> Dense C softmax.

    ``[N, 28, 28, 1] -> [N, C]`` probabilities. ``filters`` and ``dense_units``
    shrink it for tests; the defaults are the paper's."""
    inputs = keras.Input(shape=input_shape, name="image")
    x = keras.layers.Conv2D(filters[0], 3, activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(filters[1], 3, activation="relu", name="conv2")(x)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    x = keras.layers.Dropout(0.25, name="dropout1")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(dense_units, activation="relu", name="dense")(x)
    x = keras.layers.Dropout(0.5, name="dropout2")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name=name)
