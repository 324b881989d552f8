import keras
import numpy as np

from uncertadv.models.vae import VAE, build_vae


def test_shapes_and_loss_terms():
    vae = build_vae(seed=0)
    x = np.random.default_rng(0).random((8, 28, 28, 1), dtype=np.float32)
    z_mean, z_log_var = vae.encoder(x)
    assert z_mean.shape == (8, 2) and z_log_var.shape == (8, 2)
    assert vae.decoder(z_mean).shape == (8, 28, 28, 1)
    reconstruction, kl = vae.losses_for(x)
    assert reconstruction.shape == (8,) and (np.asarray(kl) >= 0).all()
    # 784 x mean BCE: a uniform 0.5 decoder output would give 784 * ln 2 per image
    assert 100 < float(np.mean(reconstruction)) < 2000


def test_train_step_lowers_the_loss_and_the_model_round_trips(tmp_path):
    keras.utils.set_random_seed(0)
    x = (np.random.default_rng(1).random((256, 28, 28, 1)) > 0.7).astype(np.float32)
    vae = build_vae(seed=0)
    vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = vae.fit(x, epochs=4, batch_size=64, verbose=0).history["loss"]
    assert history[-1] < history[0]
    path = tmp_path / "vae.keras"
    vae.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, VAE)
    np.testing.assert_allclose(loaded.encoder(x[:4])[0], vae.encoder(x[:4])[0], atol=1e-6)
