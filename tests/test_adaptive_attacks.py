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


def test_with_c_zero_the_detector_term_is_inert(trained):
    """c = 0 with the sum rule: the images depend neither on the threshold nor on the hinge's margin."""
    model, x, y, detector = trained
    settings = dict(method="pgd-adaptive-known", eps=30, iterations=3, c=0.0, predictor="mc", samples=4,
                    measure="mutual_information", detector_seed=detector.seed)  # fmt: skip
    one = attack([model], x, y, threshold=detector.threshold, **settings)
    other = attack([model], x, y, threshold=10 * detector.threshold, margin=0.2, **settings)
    np.testing.assert_array_equal(one, other)
    assert not np.array_equal(one, attack([model], x, y, threshold=detector.threshold, **{**settings, "c": 10.0}))


def test_the_fresh_attacker_draws_from_its_own_stream(trained):
    """Fresh step k used to draw exactly Detector(seed=k)'s networks; now every key is negative, and no
    detector takes a negative seed."""
    model, x, y, detector = trained
    from uncertadv.attacks import _LogPredictive

    target = _LogPredictive([model], "mc", 4, False, measure="mutual_information")
    target.base.assign(-1 - 5 * 1_000_003)  # what attack() assigns for seed 5
    target.calls.assign(0)
    _, u = target(x[:8])
    np.testing.assert_allclose(u.numpy(), measures.mutual_information(
        predictors.predict([model], x[:8], predictor="mc", samples=4, seed=-2 - 5 * 1_000_003)), atol=2e-6)  # fmt: skip
    with pytest.raises(ValueError, match="seed"):
        Detector([model], "mutual_information", seed=-1)


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


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(loss="hinge"), "unknown loss"),
        (dict(update="orthogonal-ish"), "unknown update"),
        (dict(kappa=-1.0), "kappa"),
        (dict(margin=1.0), "margin"),
        (dict(penalty="u-matching"), "u_target"),
        (dict(lower_threshold=0.2), "lower threshold"),
        (dict(restarts=0), "restarts"),
        (dict(method="pgd-adaptive-known", detector_seed=3, eot=4), "eot"),
        (dict(method="pgd", measure=None, threshold=None, best_iterate=True), "ignores the detector"),
    ],
)
def test_bad_objective_settings_say_why(bad, message):
    settings = {"method": "pgd-adaptive", "eps": 8, "measure": "mutual_information", "threshold": 0.1, **bad}
    with pytest.raises(ValueError, match=message):
        AttackConfig(**settings)


def test_the_records_of_older_sets_keep_their_keys():
    """New settings at their defaults are left out of the record, so sets made before them are reused."""
    old = AttackConfig(method="pgd", eps=8).as_record()
    assert "loss" not in old and AttackConfig(**old) == AttackConfig(method="pgd", eps=8)
    new = AttackConfig(method="pgd-adaptive", eps=8, measure="mutual_information", threshold=0.1, update="selective")
    assert new.as_record()["update"] == "selective" and AttackConfig(**new.as_record()) == new


def test_the_known_attackers_estimate_is_the_detectors_verdict(trained):
    """Against the detector's own networks, the attacker's estimate of evasion is the detector's verdict,
    and the best iterate evades at least as often as the last one."""
    model, x, y, detector = trained
    settings = dict(method="pgd-adaptive-known", eps=76, iterations=20, c=1.0, detector=detector, return_trace=True)
    last, last_trace = attack([model], x, y, **settings)
    best, trace = attack([model], x, y, best_iterate=True, **settings)
    probs = predictors.predict([model], best, predictor="mc", samples=4, seed=detector.seed)
    verdict = (probs.mean(axis=0).argmax(axis=-1) != y) & ~detector.predict(best)
    assert (verdict == trace.evaded).mean() >= 0.95, (verdict.mean(), trace.evaded.mean())
    assert trace.evaded.sum() >= last_trace.evaded.sum()
    assert np.all((trace.first >= 0) == trace.evaded)  # with the best iterate: evaded once = evades now
    assert np.all(trace.restarts == 1)


def test_restarts_rerun_only_the_images_that_still_fail(trained):
    model, x, y, detector = trained
    settings = dict(method="pgd-adaptive", eps=30, iterations=5, c=1.0, detector=detector, best_iterate=True,
                    return_trace=True)  # fmt: skip
    _, once = attack([model], x, y, **settings)
    _, twice = attack([model], x, y, restarts=2, **settings)
    np.testing.assert_array_equal(twice.restarts, np.where(once.evaded, 1, 2))
    assert twice.evaded.sum() >= once.evaded.sum() and np.all(twice.evaded[once.evaded])
    assert np.all(twice.first[~once.evaded & twice.evaded] >= 6)  # counted after restart 0's 6 iterates


def test_eot_averages_fresh_draws_and_changes_the_images(trained):
    model, x, y, detector = trained
    settings = dict(method="pgd-adaptive", eps=30, iterations=3, c=1.0, detector=detector)
    one, again = attack([model], x, y, **settings), attack([model], x, y, **settings)
    np.testing.assert_array_equal(one, again)  # the same keys: the same images
    assert not np.array_equal(one, attack([model], x, y, eot=4, **settings))


def test_on_a_detector_that_flags_pgd_the_adaptive_objectives_beat_pgd(trained):
    """The sanity check a stronger attack must pass: where PGD is caught, the detector-aware
    objectives evade more often (judged by the detector itself). Here the threshold is the clean
    median (FPR 0.5), which flags about half of PGD's images on this tiny model; at 5% it flags none."""
    model, x, y, _ = trained
    from uncertadv import data

    detector = Detector([model], "mutual_information", samples=4, seed=11).fit(data.load_mnist("test")[0][100:300], 0.5)

    def evasion(images):
        probs = predictors.predict([model], images, predictor="mc", samples=4, seed=detector.seed)
        return float(((probs.mean(axis=0).argmax(axis=-1) != y) & ~detector.predict(images)).mean())

    pgd = attack([model], x, y, method="pgd", eps=30, predictor="mc", samples=4, iterations=40)
    assert detector.predict(pgd).mean() > 0.3  # the detector does catch PGD here
    common = dict(method="pgd-adaptive-known", eps=30, iterations=40, detector=detector, best_iterate=True,
                  schedule="decay")  # fmt: skip
    for objective in (dict(c=10.0, loss="cw", kappa=5.0, margin=0.2), dict(update="orthogonal", loss="cw", kappa=5.0),
                      dict(update="selective", margin=0.2)):  # fmt: skip
        assert evasion(attack([model], x, y, **common, **objective)) > evasion(pgd) + 0.1, objective


def test_a_two_sided_detector_gives_its_lower_threshold_and_u_matching_lands_inside(trained):
    model, x, y, detector = trained
    from uncertadv import data

    x_test, _ = data.load_mnist("test")
    two = Detector([model], "mutual_information", samples=4, seed=11, tail="two-sided")
    two.fit(x_test[100:300], 0.1, rule="conformal")
    clean = two.score(x_test[100:300])
    target = float(np.median(clean))
    images, trace = attack([model], x, y, method="pgd-adaptive-known", eps=76, iterations=30, penalty="u-matching",
                           u_target=target, c=1.0, loss="cw", best_iterate=True, detector=two,
                           return_trace=True)  # fmt: skip
    with pytest.raises(ValueError, match="conflicts"):
        attack([model], x, y, method="pgd-adaptive", eps=8, lower_threshold=0.0, detector=two)
    inside = ~two.predict(images)
    assert inside.mean() > 0.5 and trace.evaded.mean() > 0


def test_the_fresh_attackers_verdict_is_the_majority_of_its_draws_each_judged_alone(trained):
    """The evaluator judges one draw of T networks, so the fresh attacker judges each of its eot draws
    the same way and keeps the majority; the verdict on U averaged over draws is biased by U's skew."""
    from uncertadv.experiments.adaptive import suite

    model, x, y, detector = trained
    images = attack([model], x, y, method="pgd", eps=30, predictor="mc", samples=4, iterations=5)
    misclassified, evades = suite.attacker_estimate(None, detector, images, y, "fresh", eot=4, seed=0)
    votes_wrong, votes_evading = [], []
    for k in range(4):
        probs = predictors.predict([model], images, predictor="mc", samples=4, seed=-(suite._ESTIMATE_BASE + k))
        wrong = probs.mean(axis=0).argmax(axis=-1) != y
        votes_wrong.append(wrong)
        votes_evading.append(wrong & ~detector.flags(np.asarray(measures.mutual_information(probs))))
    np.testing.assert_array_equal(misclassified, np.sum(votes_wrong, axis=0) >= 3)  # more than half of 4
    np.testing.assert_array_equal(evades, np.sum(votes_evading, axis=0) >= 3)
    known = suite.attacker_estimate(None, detector, images, y, "known", eot=4, seed=0)[1]
    probs = predictors.predict([model], images, predictor="mc", samples=4, seed=detector.seed)
    np.testing.assert_array_equal(known, (probs.mean(axis=0).argmax(axis=-1) != y) & ~detector.predict(images))


@pytest.mark.parametrize(("draws", "evading"), [((0.1, 0.1, 10.0), True), ((0.6, 0.6, 0.1), False)])
def test_inside_the_attack_each_eot_draw_is_judged_alone_and_the_majority_kept(draws, evading):
    """A scripted target whose U cycles through ``draws`` (τ = 0.5), misclassified throughout: two low
    draws of three evade although their mean is above τ; two high ones do not although their mean is
    below it. The returned score says which."""
    import tensorflow as tf

    from uncertadv import objectives
    from uncertadv.attacks import _build_detector_step

    calls = tf.Variable(0, dtype=tf.int64)
    cycle = tf.constant(draws, tf.float32)

    def target(x):
        k = calls.assign_add(1) - 1
        zero = 0.0 * tf.reduce_sum(x, axis=1)  # [N]: the gradients exist and are 0
        logits = tf.stack([zero - 5.0, zero + 5.0], axis=1)  # class 1 against the true 0
        return tf.nn.log_softmax(logits), zero + tf.gather(cycle, k % 3)

    config = AttackConfig(method="pgd-adaptive", eps=5, measure="mutual_information", threshold=0.5, iterations=1,
                          eot=3, loss="cw", best_iterate=True)  # fmt: skip
    run = _build_detector_step(target, config)
    settings = tf.constant([1.0, 0.5, -1.0, 0.0, 0.0, 0.0, 0.0])
    x = tf.zeros([2, 3])
    _, score, _ = run(x, tf.zeros([2], tf.int64), 0.02, 0.01, tf.constant([0, 0], tf.int64), settings)
    assert np.all((score.numpy() > objectives.EVADING_SCORE) == evading)
    assert np.mean(draws) > 0.5 if evading else np.mean(draws) < 0.5  # the mean would judge the other way
