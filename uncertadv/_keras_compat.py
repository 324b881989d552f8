"""The private Keras hooks that the MC engine needs, in one place.

``mc.py`` walks a model's graph itself (so that only dropout is sampled and the trunk runs
once), and Keras 3 has no public API for that walk. Every private name the engine touches
is used here and nowhere else. ``tests/test_keras_compat.py`` exercises each hook on a real
model, so a Keras upgrade that breaks one fails loudly there instead of changing results.
"""

from __future__ import annotations

import warnings

import keras

TESTED = ((3, 15),)  # Keras (major, minor) releases these hooks were checked against


def keras_version() -> tuple[int, int]:
    major, minor = keras.__version__.split(".")[:2]
    return int(major), int(minor)


def check_version() -> None:
    """Warn once if this Keras release is one the hooks were not tested on."""
    if keras_version() not in TESTED:
        tested = ", ".join(f"{a}.{b}" for a, b in TESTED)
        warnings.warn(
            f"uncertadv's MC engine was tested with Keras {tested}, not {keras.__version__}; "
            "run tests/test_keras_compat.py before trusting its samples",
            stacklevel=2,
        )


def is_graph_model(model) -> bool:
    """Functional (or a Sequential built with an Input): a graph the engine can walk."""
    return isinstance(model, keras.Sequential) or hasattr(model, "_run_through_graph")


def run_graph(model, inputs: list, call_fn):
    """Run a Functional model node by node, with ``call_fn(op, *args, **kwargs)`` per layer."""
    return model._run_through_graph(inputs, call_fn=call_fn)


def producing_layer(tensor):
    """The layer (operation) that produced a symbolic Keras tensor."""
    return tensor._keras_history.operation


def all_layers(layer, include_self: bool = True):
    """Every layer inside ``layer``, recursively (nested models included)."""
    return list(layer._flatten_layers(include_self=include_self))


def spatial_noise_shape(layer, probe) -> list:
    """Noise shape a SpatialDropout layer uses for the input ``probe``."""
    return list(layer._get_noise_shape(probe))


def is_spatial_dropout(layer) -> bool:
    return hasattr(layer, "_get_noise_shape")


def takes_training(op) -> bool:
    """Whether a layer's ``call`` accepts ``training=``."""
    return "training" in getattr(op, "_call_context_args", ())
