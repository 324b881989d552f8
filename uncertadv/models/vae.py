"""The paper's MNIST VAE with a 2-D latent space (for latent maps and interpolations).

Encoder 784 -> Dense 400 ELU -> Dense 256 ELU -> (z_mean, z_log_var) in 2-D; the decoder
mirrors it and ends in a sigmoid. Loss: 784 x binary cross-entropy (the mean over pixels
times the pixel count, i.e. the summed BCE) + KL to N(0, I).
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops


@keras.saving.register_keras_serializable(package="uncertadv")
class Sampling(keras.layers.Layer):
    """Reparameterised draw z = z_mean + exp(z_log_var / 2) * eps, eps ~ N(0, I)."""

    def __init__(self, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs):
        z_mean, z_log_var = inputs
        eps = keras.random.normal(ops.shape(z_mean), seed=self.seed_generator)
        return z_mean + ops.exp(0.5 * z_log_var) * eps

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


def build_encoder(image_shape=(28, 28, 1), latent_dim: int = 2, hidden=(400, 256)) -> keras.Model:
    """``[N, 28, 28, 1] -> (z_mean [N, 2], z_log_var [N, 2])``."""
    inputs = keras.Input(image_shape, name="image")
    x = keras.layers.Flatten()(inputs)
    for i, units in enumerate(hidden):
        x = keras.layers.Dense(units, activation="elu", name=f"enc_dense{i + 1}")(x)
    z_mean = keras.layers.Dense(latent_dim, name="z_mean")(x)
    z_log_var = keras.layers.Dense(latent_dim, name="z_log_var")(x)
    return keras.Model(inputs, [z_mean, z_log_var], name="encoder")


def build_decoder(image_shape=(28, 28, 1), latent_dim: int = 2, hidden=(256, 400)) -> keras.Model:
    """``z [N, 2] -> images [N, 28, 28, 1]`` in (0, 1)."""
    inputs = keras.Input((latent_dim,), name="z")
    x = inputs
    for i, units in enumerate(hidden):
        x = keras.layers.Dense(units, activation="elu", name=f"dec_dense{i + 1}")(x)
    size = int(image_shape[0] * image_shape[1] * image_shape[2])
    x = keras.layers.Dense(size, activation="sigmoid", name="pixels")(x)
    return keras.Model(inputs, keras.layers.Reshape(image_shape)(x), name="decoder")


@keras.saving.register_keras_serializable(package="uncertadv")
class VAE(keras.Model):
    """Encoder + decoder trained with a custom ``train_step`` on the negative ELBO."""

    def __init__(self, encoder: keras.Model, decoder: keras.Model, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.encoder, self.decoder = encoder, decoder
        self.seed = seed
        self.sampling = Sampling(seed)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction")
        self.kl_tracker = keras.metrics.Mean(name="kl")

    def build(self, input_shape=None):
        # encoder and decoder are built Functional models; the sampler has no weights
        self.built = True

    @property
    def metrics(self):
        return [self.loss_tracker, self.reconstruction_tracker, self.kl_tracker]

    def call(self, images):
        z_mean, _ = self.encoder(images)
        return self.decoder(z_mean)

    def losses_for(self, images):
        """(reconstruction [N], kl [N]) per image."""
        z_mean, z_log_var = self.encoder(images)
        recon = self.decoder(self.sampling([z_mean, z_log_var]))
        pixels = ops.prod(ops.shape(images)[1:])
        bce = keras.losses.binary_crossentropy(ops.reshape(images, (-1, pixels)), ops.reshape(recon, (-1, pixels)))
        reconstruction = ops.cast(pixels, bce.dtype) * bce  # mean BCE x 784 = summed BCE
        kl = -0.5 * ops.sum(1 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var), axis=1)
        return reconstruction, kl

    def train_step(self, data):
        images = data[0] if isinstance(data, tuple) else data
        with tf.GradientTape() as tape:
            reconstruction, kl = self.losses_for(images)
            loss = ops.mean(reconstruction + kl)
        grads = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
        self.loss_tracker.update_state(loss)
        self.reconstruction_tracker.update_state(ops.mean(reconstruction))
        self.kl_tracker.update_state(ops.mean(kl))
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        images = data[0] if isinstance(data, tuple) else data
        reconstruction, kl = self.losses_for(images)
        self.loss_tracker.update_state(ops.mean(reconstruction + kl))
        self.reconstruction_tracker.update_state(ops.mean(reconstruction))
        self.kl_tracker.update_state(ops.mean(kl))
        return {m.name: m.result() for m in self.metrics}

    def get_config(self):
        return {
            **super().get_config(),
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "decoder": keras.saving.serialize_keras_object(self.decoder),
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        encoder = keras.saving.deserialize_keras_object(config.pop("encoder"))
        decoder = keras.saving.deserialize_keras_object(config.pop("decoder"))
        return cls(encoder, decoder, **config)


def build_vae(image_shape=(28, 28, 1), latent_dim: int = 2, seed: int | None = None) -> VAE:
    """The paper's VAE, built (so that saving sees every weight)."""
    vae = VAE(build_encoder(image_shape, latent_dim), build_decoder(image_shape, latent_dim), seed=seed, name="vae")
    vae(ops.zeros((1, *image_shape)))  # build, so that saving sees every weight
    return vae
