import keras
import numpy as np
import pytest

from uncertadv.attacks import AttackConfig, attack
from uncertadv.models.cnn import build_cnn


@pytest.fixture(scope="module")
def trained():
    """A tiny CNN fitted on 800 MNIST digits: good enough for attacks to flip labels."""
    from uncertadv import data

    keras.utils.set_random_seed(0)
    x, y = data.load_mnist("train")
    x, y = x[:800], y[:800]
    model = build_cnn(filters=(8, 16), dense_units=32)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=4, batch_size=64, verbose=0)
    x_test, y_test = data.load_mnist("test")
    return model, x_test[:40], y_test[:40]


@pytest.mark.parametrize("method", ["fgm", "bim", "mim", "pgd"])
@pytest.mark.parametrize("predictor", ["deterministic", "mc"])
def test_perturbation_stays_in_budget_and_range(trained, method, predictor):
    model, x, y = trained
    config = AttackConfig(method=method, eps=10, predictor=predictor, samples=3, iterations=3)
    adv = attack([model], x, y, config)
    assert adv.shape == x.shape and adv.dtype == np.float32
    assert np.abs(adv - x).max() <= 10 / 255 + 1e-6
    assert adv.min() >= 0.0 and adv.max() <= 1.0
    moved = np.abs(adv - x).max()
    # FGM takes one full step of eps; the iterative ones take `iterations` steps of 1.2/255
    expected = 10 / 255 if method == "fgm" else 3 * 1.2 / 255
    assert moved == pytest.approx(expected, abs=1e-6) or (method == "pgd" and moved > expected)


def test_eps_zero_returns_x_and_x_is_not_modified(trained):
    model, x, y = trained
    before = x.copy()
    np.testing.assert_array_equal(attack([model], x, y, AttackConfig(method="bim", eps=0, predictor="mc")), x)
    attack([model], x, y, AttackConfig(method="mim", eps=5, predictor="mc", samples=2, iterations=2))
    np.testing.assert_array_equal(x, before)


def test_a_strong_attack_changes_labels(trained):
    model, x, y = trained
    before = model.predict(x, verbose=0).argmax(-1)
    adv = attack([model], x, y, AttackConfig(method="bim", eps=76, predictor="deterministic"))
    after = model.predict(adv, verbose=0).argmax(-1)
    assert (after != y).mean() > (before != y).mean() + 0.3


def test_paper_step_defaults_and_bad_configs():
    assert AttackConfig(method="bim", eps=5).step_size == 0.5
    assert AttackConfig(method="bim", eps=10).step_size == 1.2
    assert AttackConfig(method="bim", eps=76).step_size == pytest.approx(7.6)
    for bad in (dict(method="cw", eps=5), dict(method="fgm", eps=-1), dict(method="fgm", eps=5, predictor="bayes")):
        with pytest.raises(ValueError):
            AttackConfig(**bad)


def test_out_of_range_images_are_refused(trained):
    model, x, y = trained
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        attack([model], x * 255, y, AttackConfig(method="fgm", eps=5))


def test_one_compiled_step_serves_every_budget_and_batch(trained):
    """CleverHans's own functions retraced their gradient for every attack set; ours trace once
    per (models, predictor, method, shape), whatever eps, step or seed."""
    from uncertadv.attacks import _step

    model, x, y = trained
    for eps, seed in ((5, 0), (10, 1), (76, 2)):  # 40 images in batches of 15, 15 and 10
        config = AttackConfig(method="mim", eps=eps, predictor="mc", samples=2, iterations=2, seed=seed)
        attack([model], x, y, config, batch_size=15)
    _, run = _step([model], AttackConfig(method="mim", eps=5, predictor="mc", samples=2, iterations=2), False)
    assert run.experimental_get_tracing_count() == 2  # the first shape, then one relaxed to any batch size


def test_the_cache_of_compiled_steps_does_not_keep_a_model_alive(trained):
    import gc
    import weakref

    _, x, y = trained
    model = build_cnn(filters=(2, 2), dense_units=4)
    attack([model], x[:4], y[:4], AttackConfig(method="bim", eps=5, predictor="mc", samples=2, iterations=1))
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None


def test_same_seed_same_images_and_pgd_start_depends_on_the_seed(trained):
    model, x, y = trained
    config = AttackConfig(method="pgd", eps=10, predictor="mc", samples=2, iterations=2, seed=3)
    first = attack([model], x, y, config)
    np.testing.assert_array_equal(first, attack([model], x, y, config))
    other = attack([model], x, y, AttackConfig(method="pgd", eps=10, predictor="mc", samples=2, iterations=2, seed=4))
    assert np.abs(first - other).max() > 0


def test_cleverhans_style_keywords_and_labels_from_the_predictor(trained):
    model, x, y = trained
    by_config = attack([model], x, y, AttackConfig(method="pgd", eps=8, predictor="mc", samples=2, iterations=2))
    by_keywords = attack(model, x, y, method="pgd", eps=8, predictor="mc", samples=2, iterations=2)
    np.testing.assert_array_equal(by_config, by_keywords)
    own_labels = attack(model, x, method="fgm", eps=8, predictor="deterministic")  # y=None
    predicted = model.predict(x, verbose=0).argmax(-1)
    np.testing.assert_array_equal(
        own_labels, attack(model, x, predicted, method="fgm", eps=8, predictor="deterministic")
    )
    with pytest.raises(ValueError, match="not both"):
        attack(model, x, y, AttackConfig(method="fgm", eps=8), eps=4)


def test_targeted_attacks_move_towards_the_target(trained):
    model, x, y = trained
    target = (y + 1) % 10
    adv = attack(model, x, target, method="bim", eps=76, predictor="deterministic", targeted=True)
    hit = model.predict(adv, verbose=0).argmax(-1) == target
    untargeted = model.predict(attack(model, x, y, method="bim", eps=76, predictor="deterministic"), verbose=0)
    assert hit.mean() > 0.5 and hit.mean() > np.mean(untargeted.argmax(-1) == target)
    with pytest.raises(ValueError, match="target labels"):
        attack(model, x, method="fgm", eps=8, targeted=True)


def test_clip_min_and_clip_max_as_in_cleverhans(trained):
    model, x, y = trained
    plain = attack(model, x, y, method="fgm", eps=8, predictor="deterministic")
    same = attack(model, x, y, method="fgm", eps=8, predictor="deterministic", clip_min=0.0, clip_max=1.0)
    np.testing.assert_array_equal(plain, same)
    # the same model on inputs in [-1, 0]: the attack there is the attack above, shifted
    inputs = keras.Input((28, 28, 1))
    shifted_model = keras.Model(inputs, model(keras.layers.Rescaling(1.0, offset=1.0)(inputs)))
    moved = attack(shifted_model, x - 1.0, y, method="fgm", eps=8, predictor="deterministic", clip_min=-1.0,
                   clip_max=0.0)  # fmt: skip
    np.testing.assert_allclose(moved + 1.0, plain, atol=1e-6)
    assert moved.min() >= -1.0 and moved.max() <= 0.0
    with pytest.raises(ValueError, match="clip_min < clip_max"):
        attack(model, x, y, method="fgm", eps=8, clip_min=1.0, clip_max=0.0)
