"""The adaptive attacks in the library: ua.attack with a detector, and the metrics they report."""

import keras
import numpy as np
import pytest

from uncertadv import measures, metrics, predictors
from uncertadv.attacks import AttackConfig, _step, attack
from uncertadv.detector import Detector
from uncertadv.models.cnn import build_cnn


@pytest.fixture(scope="module")
def trained():
    """A tiny dropout CNN fitted on 800 MNIST digits, and an MI detector fitted on 200 other digits."""
    from uncertadv import data

    keras.utils.set_random_seed(0)
    x, y = data.load_mnist("train")
    model = build_cnn(filters=(8, 16), dense_units=32)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x[:800], y[:800], epochs=4, batch_size=64, verbose=0)
    x_test, y_test = data.load_mnist("test")
    detector = Detector([model], "mutual_information", samples=4, seed=11).fit(x_test[100:300])
    return model, x_test[:40], y_test[:40], detector


def test_with_c_zero_the_adaptive_attack_is_pgd(trained):
    """Same networks, same random start, and a penalty of 0: the very same images."""
    model, x, y, detector = trained
    pgd = attack([model], x, y, method="pgd", eps=30, predictor="mc", samples=4, iterations=3)
    adaptive = attack([model], x, y, method="pgd-adaptive", eps=30, iterations=3, c=0.0, detector=detector)
    np.testing.assert_array_equal(adaptive, pgd)


def test_the_penalty_lowers_the_detectors_measure(trained):
    """Against the detector's own networks, a large c keeps MI lower than PGD leaves it."""
    model, x, y, detector = trained
    pgd = attack([model], x, y, method="pgd", eps=76, predictor="mc", samples=4)
    known = attack([model], x, y, method="pgd-adaptive-known", eps=76, c=100.0, detector=detector)
    assert np.abs(known - x).max() <= 76 / 255 + 1e-6 and known.min() >= 0 and known.max() <= 1
    mi_pgd, mi_known = detector.score(pgd), detector.score(known)
    assert mi_known.mean() < 0.8 * mi_pgd.mean(), (mi_known.mean(), mi_pgd.mean())
    assert (mi_known > detector.threshold).mean() < (mi_pgd > detector.threshold).mean()


def test_known_networks_follow_the_detectors_seed_and_fresh_ones_do_not(trained):
    model, x, y, detector = trained
    other = Detector([model], "mutual_information", samples=4, seed=12)
    other.threshold = detector.threshold
    settings = dict(eps=30, iterations=3, c=10.0)
    known = [attack([model], x, y, method="pgd-adaptive-known", detector=d, **settings) for d in (detector, other)]
    fresh = [attack([model], x, y, method="pgd-adaptive", detector=d, **settings) for d in (detector, other)]
    assert not np.array_equal(known[0], known[1])
    np.testing.assert_array_equal(fresh[0], fresh[1])
    np.testing.assert_array_equal(known[0], attack([model], x, y, method="pgd-adaptive-known", detector=detector,
                                                   **settings))  # fmt: skip


def test_one_compiled_step_serves_every_penalty(trained):
    model, x, y, detector = trained
    for c in (0.1, 1.0, 10.0):
        attack([model], x, y, method="pgd-adaptive", eps=30, iterations=2, c=c, detector=detector)
    config = AttackConfig(method="pgd-adaptive", eps=30, iterations=2, samples=4, measure="mutual_information",
                          threshold=detector.threshold, c=1.0)  # fmt: skip
    _, run = _step([model], config, False)
    assert run.experimental_get_tracing_count() == 1


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(method="pgd-adaptive", predictor="deterministic"), "sampled networks"),
        (dict(method="pgd-adaptive", measure="variation_ratio"), "differentiable"),
        (dict(method="pgd-adaptive", threshold=None), "threshold"),
        (dict(method="pgd-adaptive", c=-1.0), "c must be"),
        (dict(method="pgd-adaptive-known"), "detector_seed"),
        (dict(method="pgd-adaptive", detector_seed=3), "detector_seed"),
        (dict(method="pgd"), "ignores the detector"),
    ],
)
def test_bad_adaptive_configs_say_why(bad, message):
    settings = {"eps": 8, "predictor": "mc", "measure": "mutual_information", "threshold": 0.1, **bad}
    with pytest.raises(ValueError, match=message):
        AttackConfig(**settings)


def test_the_detector_fills_in_its_settings_and_refuses_conflicts(trained):
    model, x, y, detector = trained
    with pytest.raises(ValueError, match="conflicts"):
        attack([model], x, y, method="pgd-adaptive", eps=8, predictor="ensemble", detector=detector)
    with pytest.raises(ValueError, match="untargeted"):
        attack([model], x, y, method="pgd-adaptive", eps=8, targeted=True, detector=detector)
    config = AttackConfig(method="pgd", eps=8)
    with pytest.raises(ValueError, match="keyword settings"):
        attack([model], x, y, config, detector=detector)
    unfitted = Detector([model], "mutual_information")
    with pytest.raises(ValueError, match="no threshold"):
        attack([model], x, y, method="pgd-adaptive", eps=8, detector=unfitted)


def test_the_differentiable_measures_equal_the_numpy_ones(trained):
    """The attack's U is the detector's U: the tf path of the measures agrees with the float64 one."""
    model, x, _, _ = trained
    probs = predictors.predict([model], x, predictor="mc", samples=4, seed=3)
    for name in ("predictive_entropy", "mutual_information", "softmax_variance"):
        tf_value = getattr(measures, name)(np.maximum(probs, np.finfo(np.float32).tiny).astype(np.float32))
        np.testing.assert_allclose(tf_value, getattr(measures, name)(probs), atol=2e-6)


def test_wilson_interval_matches_the_closed_form():
    lo, hi = metrics.wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    assert metrics.wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert np.isnan(metrics.wilson_interval(0, 0)[0])


def test_paired_mean_difference_and_its_interval():
    a, b = np.ones(50), np.zeros(50)
    assert metrics.paired_bootstrap_mean_difference(a, b) == (1.0, 1.0, 1.0)
    assert metrics.paired_bootstrap_mean_difference(a, a) == (0.0, 0.0, 0.0)
    rng = np.random.default_rng(0)
    c = rng.random(200) < 0.5
    diff, lo, hi = metrics.paired_bootstrap_mean_difference(c, c.copy() & (rng.random(200) < 0.5))
    assert lo <= diff <= hi and lo > 0
    with pytest.raises(ValueError, match="same"):
        metrics.paired_bootstrap_mean_difference(a, b[:10])
