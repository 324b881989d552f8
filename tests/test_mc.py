import keras
import numpy as np
import pytest
import tensorflow as tf

from uncertadv import mc
from uncertadv.models.cnn import build_cnn


def key(seed=0):
    return tf.constant([seed, 0], tf.int64)


def passthrough(layer, shape):
    """A model that outputs its dropout layer's output, to look at the masks."""
    inputs = keras.Input(shape)
    return keras.Model(inputs, layer(inputs))


@pytest.fixture(scope="module")
def tiny_cnn():
    keras.utils.set_random_seed(0)
    return build_cnn((12, 12, 1), 4, filters=(4, 8), dense_units=16)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).random((40, 12, 12, 1), dtype=np.float32)


def test_shapes_and_probabilities(tiny_cnn, images):
    probs = mc.mc_predict(tiny_cnn, images, samples=7, seed=0)
    assert probs.shape == (7, 40, 4) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    assert mc.deterministic_predict(tiny_cnn, images).shape == (1, 40, 4)


def test_same_seed_same_networks_other_seed_other_networks(tiny_cnn, images):
    a = mc.mc_predict(tiny_cnn, images, samples=5, seed=3)
    np.testing.assert_array_equal(a, mc.mc_predict(tiny_cnn, images, samples=5, seed=3))
    assert np.abs(a - mc.mc_predict(tiny_cnn, images, samples=5, seed=4)).max() > 1e-3
    assert np.abs(a[0] - a[1]).max() > 1e-3  # samples differ from each other


def test_scores_depend_on_batch_or_chunking_only_by_float32_rounding(tiny_cnn, images):
    """The stated guarantee: the same networks for every input, so an input's probabilities
    differ between batches only by rounding (TensorFlow picks other kernels for other batch
    sizes): within 1e-5. The same batch gives the same bytes."""
    whole = mc.mc_predict(tiny_cnn, images, samples=6, seed=1)
    chunked = mc.mc_predict(tiny_cnn, images, samples=6, seed=1, batch_size=7)
    alone = mc.mc_predict(tiny_cnn, images[13:14], samples=6, seed=1)
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-5)
    np.testing.assert_allclose(alone[:, 0], whole[:, 13], rtol=0, atol=1e-5)
    np.testing.assert_array_equal(whole, mc.mc_predict(tiny_cnn, images, samples=6, seed=1))
    # another network for input 13 would move it far more than rounding does
    assert np.abs(mc.mc_predict(tiny_cnn, images[13:14], samples=6, seed=2)[:, 0] - whole[:, 13]).max() > 1e-3


def test_sample_t_is_the_same_network_whatever_T(tiny_cnn, images):
    """Keys are (seed, layer, t), so the first samples of a larger T are the same networks."""
    small = mc.mc_predict(tiny_cnn, images, samples=3, seed=2)
    large = mc.mc_predict(tiny_cnn, images, samples=9, seed=2)
    np.testing.assert_allclose(large[:3], small, atol=1e-6)


def test_masks_are_shared_by_every_input_of_a_sample():
    probs = mc.sample_probs(
        passthrough(keras.layers.Dropout(0.5), (200,)), np.ones((3, 200), np.float32), samples=4, key=key()
    )
    values = probs.numpy()  # [T, N, D]
    np.testing.assert_array_equal(values[:, 0], values[:, 1])
    np.testing.assert_array_equal(values[:, 0], values[:, 2])
    assert set(np.unique(values)) == {0.0, 2.0}  # kept units are scaled by 1 / (1 - rate)
    assert 0.35 < (values[:, 0] == 0).mean() < 0.65
    assert not np.array_equal(values[0, 0], values[1, 0])


def test_spatial_dropout_drops_whole_channels():
    model = passthrough(keras.layers.SpatialDropout2D(0.5), (5, 5, 64))
    out = mc.sample_probs(model, np.ones((2, 5, 5, 64), np.float32), samples=3, key=key()).numpy()
    per_channel = out.reshape(3, 2, 25, 64)
    assert (per_channel == per_channel[:, :, :1]).all()  # constant over positions
    assert 0 < (per_channel[..., 0, :] == 0).mean() < 1


def test_gaussian_dropout_noise_has_the_keras_scale():
    model = passthrough(keras.layers.GaussianDropout(0.2), (5000,))
    out = mc.sample_probs(model, np.ones((1, 5000), np.float32), samples=2, key=key()).numpy()
    assert abs(out.mean() - 1.0) < 0.02 and abs(out.std() - np.sqrt(0.2 / 0.8)) < 0.02


def test_alpha_dropout_matches_keras_affine_form():
    rate, alpha_p = 0.3, -1.6732632423543772 * 1.0507009873554805
    a = ((1 - rate) * (1 + rate * alpha_p**2)) ** -0.5
    b = -a * alpha_p * rate
    model = passthrough(keras.layers.AlphaDropout(rate), (2000,))
    out = mc.sample_probs(model, np.full((1, 2000), 0.7, np.float32), samples=2, key=key()).numpy()
    np.testing.assert_allclose(np.unique(out), sorted([a * alpha_p + b, a * 0.7 + b]), rtol=1e-5)


def test_dropout_dense_shortcut_gives_the_same_values():
    inputs = keras.Input((6, 6, 3))
    x = keras.layers.Dropout(0.3)(inputs)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(8, activation="relu")(x)
    x = keras.layers.Dropout(0.5)(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    x = np.random.default_rng(1).random((10, 6, 6, 3), dtype=np.float32)
    fused = mc.sample_probs(model, x, samples=5, key=key(), fuse=True)
    plain = mc.sample_probs(model, x, samples=5, key=key(), fuse=False)
    np.testing.assert_allclose(fused.numpy(), plain.numpy(), atol=1e-6)


def test_batchnorm_stays_in_inference_mode():
    inputs = keras.Input((4,))
    bn = keras.layers.BatchNormalization()
    x = keras.layers.Dropout(0.0)(bn(inputs))  # no noise: every sample must equal inference
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    bn.moving_mean.assign([5.0, -5.0, 2.0, 0.0])
    bn.moving_variance.assign([4.0, 0.5, 1.0, 9.0])
    x = np.random.default_rng(2).normal(size=(16, 4)).astype(np.float32)
    probs = mc.mc_predict(model, x, samples=3, seed=0, pixel_max=None)  # features, not images
    expected = model(x, training=False).numpy()
    np.testing.assert_allclose(probs, np.broadcast_to(expected, probs.shape), atol=1e-6)
    assert np.abs(model(x, training=True).numpy() - expected).max() > 1e-3  # training mode would differ


def test_nested_functional_model_with_batchnorm_and_dropout():
    block_in = keras.Input((8,))
    block = keras.Model(block_in, keras.layers.Dropout(0.5)(keras.layers.BatchNormalization()(block_in)), name="block")
    inputs = keras.Input((8,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(block(inputs)))
    x = np.random.default_rng(3).normal(size=(5, 8)).astype(np.float32)
    probs = mc.mc_predict(model, x, samples=4, seed=0, pixel_max=None)
    assert probs.shape == (4, 5, 2) and np.abs(probs[0] - probs[1]).max() > 1e-4
    assert len(mc.stochastic_layers(model)) == 1


def test_ensemble_stacks_members_and_uses_distinct_keys(tiny_cnn, images):
    probs = mc.mc_predict([tiny_cnn, tiny_cnn], images, samples=3, seed=0)
    assert probs.shape == (6, 40, 4)
    assert np.abs(probs[:3] - probs[3:]).max() > 1e-3  # member index enters the key
    assert mc.deterministic_predict([tiny_cnn, tiny_cnn], images).shape == (2, 40, 4)


def test_log_predictive_is_differentiable_inside_tf_function(tiny_cnn, images):
    @tf.function
    def grad(x, seed):
        with tf.GradientTape() as tape:
            tape.watch(x)
            logits = mc.mc_log_predictive(tiny_cnn, x, samples=4, seed=seed)
            loss = tf.reduce_sum(logits[:, 0])
        return logits, tape.gradient(loss, x)

    x = tf.constant(images[:6])
    logits, g = grad(x, tf.constant(5, tf.int64))
    np.testing.assert_allclose(tf.reduce_logsumexp(logits, -1).numpy(), 0.0, atol=1e-5)
    expected = np.log(mc.mc_predict(tiny_cnn, images[:6], samples=4, seed=5).mean(0))
    np.testing.assert_allclose(logits.numpy(), expected, atol=1e-5)
    assert np.isfinite(g.numpy()).all() and np.abs(g.numpy()).max() > 0
    other, _ = grad(x, tf.constant(6, tf.int64))
    assert np.abs(other.numpy() - logits.numpy()).max() > 1e-4  # a new seed draws new networks


def test_from_logits_applies_softmax():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Dropout(0.2)(inputs)))
    with pytest.raises(ValueError, match="no softmax output"):
        mc.mc_predict(model, np.ones((2, 3), np.float32), samples=2, seed=0)
    probs = mc.mc_predict(model, np.ones((2, 3), np.float32), samples=2, seed=0, from_logits=True)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-6)


def test_bad_arguments_are_value_errors(tiny_cnn, images):
    with pytest.raises(ValueError, match="samples"):
        mc.mc_predict(tiny_cnn, images, samples=0, seed=0)
    with pytest.raises(ValueError, match="does not fit"):
        mc.mc_predict(tiny_cnn, images[..., 0], samples=2, seed=0)
    with pytest.raises(ValueError, match="does not fit"):
        mc.mc_predict(tiny_cnn, np.zeros((2, 28, 28, 1), np.float32), samples=2, seed=0)


def test_sequential_models_work_and_subclassed_dropout_is_refused():
    seq = keras.Sequential(
        [
            keras.Input((5,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    probs = mc.mc_predict(seq, np.ones((4, 5), np.float32), samples=3, seed=0)
    assert probs.shape == (3, 4, 3) and np.abs(probs[0] - probs[1]).max() > 0

    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.drop, self.out = keras.layers.Dropout(0.5), keras.layers.Dense(3, activation="softmax")

        def call(self, x, training=False):
            return self.out(self.drop(x, training=training))

    inputs = keras.Input((5,))
    wrapped = keras.Model(inputs, Sub()(inputs))
    with pytest.raises(ValueError, match="subclassed"):
        mc.mc_predict(wrapped, np.ones((2, 5), np.float32), samples=2, seed=0)


def test_log_predictive_runs_the_same_model_checks():
    """Defect: a logits model without from_logits gave 'log-probabilities' whose rows did not sum to 1."""
    inputs = keras.Input((3,))
    logits = keras.Model(inputs, keras.layers.Dense(4)(keras.layers.Dropout(0.5)(inputs)))
    x = tf.ones((2, 3))
    with pytest.raises(ValueError, match="no softmax output"):
        mc.mc_log_predictive(logits, x, samples=2, seed=0)
    logp = mc.mc_log_predictive(logits, x, samples=2, seed=0, from_logits=True)
    np.testing.assert_allclose(tf.reduce_sum(tf.exp(logp), -1).numpy(), 1.0, rtol=1e-5)


def test_bare_subclassed_and_unbuilt_sequential_models_are_refused_in_one_line():
    """Defect: both ended in AttributeError: ... has no attribute 'inputs'."""

    class Bare(keras.Model):
        def __init__(self):
            super().__init__()
            self.out = keras.layers.Dense(3, activation="softmax")

        def call(self, x):
            return self.out(x)

    bare = Bare()
    bare(np.ones((1, 5), np.float32))  # called, so built: still no .inputs in Keras 3
    unbuilt = keras.Sequential([keras.layers.Dense(3, activation="softmax")])
    x = np.ones((2, 5), np.float32)
    for model, hint in ((bare, "Functional"), (unbuilt, "keras.Input")):
        for call in (
            lambda m: mc.mc_predict(m, x, samples=2, seed=0),
            lambda m: mc.deterministic_predict(m, x),
            lambda m: mc.mc_log_predictive(m, tf.constant(x), samples=2, seed=0),
        ):
            with pytest.raises(ValueError, match=hint) as err:
                call(model)
            assert "\n" not in str(err.value)


def test_compiled_functions_do_not_keep_a_model_alive():
    import gc
    import weakref

    model = build_cnn(filters=(2, 2), dense_units=4)
    mc.mc_predict(model, np.zeros((2, 28, 28, 1), np.float32), samples=2, seed=0)
    mc.deterministic_predict(model, np.zeros((2, 28, 28, 1), np.float32))
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None


def test_heads_on_one_trunk_run_the_trunk_once_for_the_whole_ensemble():
    class CountingTrunk(keras.layers.Layer):
        calls = 0

        def call(self, x):
            CountingTrunk.calls += 1  # counts traces: one per compiled graph that calls it
            return x * 2.0

    inputs = keras.Input((4,))
    trunk = keras.Model(inputs, CountingTrunk()(inputs), name="trunk")
    members = []
    for k in range(3):
        keras.utils.set_random_seed(k)
        head_in = keras.Input((4,))
        dropped = keras.layers.Dropout(0.5)(head_in)
        head = keras.Model(head_in, keras.layers.Dense(2, activation="softmax")(dropped), name=f"head{k}")
        image = keras.Input((4,))
        members.append(keras.Model(image, head(trunk(image))))
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    CountingTrunk.calls = 0
    joint = mc.mc_predict(members, x, samples=3, seed=7, pixel_max=None)
    # one trace in the graph that draws the masks (on an empty batch), one in the graph that scores
    assert CountingTrunk.calls == 2 and joint.shape == (9, 5, 2)
    for k, member in enumerate(members):  # the same networks as each member alone, with its member key
        alone = mc.sample_probs(member, tf.constant(x), samples=3, key=mc._key(7, k)).numpy()
        np.testing.assert_allclose(joint[3 * k : 3 * k + 3], alone, rtol=1e-6)
    CountingTrunk.calls = 0
    mc.mc_log_predictive(members, tf.constant(x), samples=3, seed=1)
    assert CountingTrunk.calls == 1


def _dropout_zoo() -> keras.Model:
    """Every kind of stochastic layer, a nested model, dropout on sampled and on unsampled tensors, and one
    Dropout layer shared by tensors of different shapes."""
    keras.utils.set_random_seed(1)
    inputs = keras.Input((8, 8, 2))
    flat = keras.layers.Flatten()(inputs)  # unsampled
    shared = keras.layers.Dropout(0.3)
    a = keras.layers.Dense(6, activation="relu")(shared(flat))  # fused: Dropout -> Dense on an unsampled input
    b = shared(keras.layers.Dense(4, activation="relu")(flat))  # the same layer on another shape, multiplied out
    spatial = keras.layers.SpatialDropout2D(0.2)(inputs)
    c = shared(keras.layers.Dense(4)(keras.layers.Flatten()(keras.layers.Conv2D(3, 3)(spatial))))  # on samples
    x = keras.layers.Concatenate()([a, b, c])
    x = keras.layers.AlphaDropout(0.1)(keras.layers.GaussianDropout(0.2)(x))
    x = keras.layers.Dropout(0.7)(x)  # above 0.5: multiplied out, not fused
    inner_in = keras.Input((14,))
    inner = keras.Model(inner_in, keras.layers.Dropout(0.5)(keras.layers.Dense(5)(inner_in)), name="inner")
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inner(x)))


def test_masks_drawn_once_per_call_give_the_bytes_of_masks_drawn_in_every_batch(tiny_cnn, images, monkeypatch):
    """mc_predict draws the masks once (mask_state) and reuses them for every batch: the same values,
    bit for bit, as drawing them inside each batch's graph (states=None), for the CNN, an ensemble and a
    model with every kind of stochastic layer."""
    prepared, given = [], []
    compiled = mc._compiled_sampled

    def spy(*args):  # counts the draws, and whether every batch's graph is given them
        prepare, run_for = compiled(*args)
        counted = lambda *a: prepared.append(1) or prepare(*a)  # noqa: E731
        return counted, lambda st, dtype: given.append(st is not None) or run_for(st, dtype)

    monkeypatch.setattr(mc, "_compiled_sampled", spy)
    zoo = _dropout_zoo()
    zoo_images = np.random.default_rng(1).random((40, 8, 8, 2), dtype=np.float32)
    ensemble = [tiny_cnn, build_cnn((12, 12, 1), 4, filters=(4, 8), dense_units=16)]
    for models, x in (([tiny_cnn], images), (ensemble, images), ([zoo], zoo_images)):
        prepared.clear(), given.clear()
        hoisted = mc.mc_predict(models if len(models) > 1 else models[0], x, samples=7, seed=5, batch_size=9)
        assert prepared == [1] and given == [True]  # drawn once for the 5 batches, and used by them
        _, run_for = compiled(models, 7, False)
        run, seed = run_for(None, tf.float32), tf.constant(5, tf.int64)
        drawn = np.concatenate([run(x[i : i + 9], seed).numpy() for i in range(0, len(x), 9)], axis=1)
        np.testing.assert_array_equal(hoisted, drawn)
