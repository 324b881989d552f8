import numpy as np
import pytest

from uncertadv.experiments import interpolation, latent


def test_latent_grid_is_row_major_with_z2_outer():
    z, axis = latent.latent_grid(extent=2.0, size=5)
    assert z.shape == (25, 2) and axis[0] == -2.0 and axis[-1] == 2.0
    image = z[:, 1].reshape(5, 5)  # row i must be z2 = axis[i] for origin="lower"
    np.testing.assert_array_equal(image[:, 0], axis)
    np.testing.assert_array_equal(z[:, 0].reshape(5, 5)[0], axis)
    with pytest.raises(ValueError):
        latent.latent_grid(extent=0.0, size=5)


def test_path_runs_from_a_to_b():
    a, b = np.zeros((2, 2)), np.ones((2, 2))
    p = interpolation.path(a, b, 5)
    assert p.shape == (5, 2, 2)
    np.testing.assert_allclose(p[0], a), np.testing.assert_allclose(p[-1], b), np.testing.assert_allclose(p[2], 0.5)


def test_pairs_have_different_labels_and_depend_on_the_seed():
    labels = np.repeat(np.arange(10), 50)
    pairs = interpolation.different_class_pairs(labels, 300, seed=0)
    assert pairs.shape == (300, 2)
    assert (labels[pairs[:, 0]] != labels[pairs[:, 1]]).all()
    np.testing.assert_array_equal(pairs, interpolation.different_class_pairs(labels, 300, seed=0))
    assert not np.array_equal(pairs, interpolation.different_class_pairs(labels, 300, seed=1))


def identity_encoder(x, training=False):
    """Stand-in for 2-pixel 'images': z_mean = the image."""
    import tensorflow as tf

    return tf.convert_to_tensor(x), tf.zeros_like(x)


def identity_decoder(z, training=False):
    import tensorflow as tf

    return tf.convert_to_tensor(z)


def test_midpoints_do_not_modify_the_source_images():
    x = np.random.default_rng(0).random((6, 2)).astype(np.float32)
    before = x.copy()
    pixel, latent_mid = interpolation.midpoints(identity_encoder, identity_decoder, x, np.array([[0, 1], [2, 3]]))
    np.testing.assert_array_equal(x, before)
    np.testing.assert_allclose(pixel, [(x[0] + x[1]) / 2, (x[2] + x[3]) / 2], rtol=1e-6)
    np.testing.assert_allclose(latent_mid, pixel, rtol=1e-6)


def test_separation_auc():
    assert interpolation.separation_auc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 1.0
    assert interpolation.separation_auc(np.array([0.0, 1.0]), np.array([2.0, 3.0])) == 0.0
    assert np.isnan(interpolation.separation_auc(np.array([np.nan]), np.array([1.0])))


def test_distance_and_hole_mask():
    data_z = np.array([[0.0, 0.0]])
    z = np.array([[0.5, 0.0], [3.0, 4.0], [6.0, 8.0], [0.0, 9.0]])
    distance = latent.distance_to_data(z, data_z)
    np.testing.assert_allclose(distance, [0.5, 5.0, 10.0, 9.0])
    far, hole = latent.hole_mask(
        distance,
        np.array([0.99, 0.95, 0.5, 0.99]),
        np.array([0.0, 0.01, 0.0, 0.5]),
        far_distance=1.0,
        min_confidence=0.9,
        mi_threshold=0.1,
    )
    assert far.tolist() == [False, True, True, True]
    assert hole.tolist() == [False, True, False, False]  # far, confident and low MI
