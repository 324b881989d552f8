"""tf.distribute: mc_predict, deterministic_predict, Detector.score and ua.attack on this CPU split into two
logical devices give the single-device results. Logical devices must be set before TensorFlow
starts, so the check runs in a fresh process."""

import subprocess
import sys

SCRIPT = """
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, numpy as np
import uncertadv as ua
from uncertadv.models.cnn import build_cnn
keras.utils.set_random_seed(0)
models = [build_cnn(filters=(4, 8), dense_units=16) for _ in range(2)]
x = np.random.default_rng(0).random((37, 28, 28, 1), dtype=np.float32)  # 37: uneven across replicas
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
assert strategy.num_replicas_in_sync == 2
for m in (models[0], models):  # one model, and an ensemble of two
    one = ua.mc_predict(m, x, samples=5, seed=3, batch_size=16)
    two = ua.mc_predict(m, x, samples=5, seed=3, batch_size=16, strategy=strategy)
    np.testing.assert_allclose(two, one, rtol=0, atol=1e-5)
one = ua.deterministic_predict(models, x)
np.testing.assert_allclose(ua.deterministic_predict(models, x, strategy=strategy), one, rtol=0, atol=1e-5)
det = ua.Detector(models[0], samples=4).fit(x, fpr=0.1)
np.testing.assert_allclose(det.score(x, strategy=strategy), det.score(x), rtol=0, atol=1e-5)
y = np.arange(37) % 10
for method in ("mim", "pgd"):
    for predictor in ("mc", "ensemble"):
        kwargs = dict(method=method, eps=10, predictor=predictor, samples=3, iterations=3, seed=1, batch_size=16)
        one = ua.attack(models, x, y, **kwargs)
        two = ua.attack(models, x, y, strategy=strategy, **kwargs)
        # The same networks on every replica: rounding that differs with the split can flip the sign
        # of a near-zero gradient, which moves that pixel by one step; other networks would move most.
        diff = np.abs(two - one)
        assert diff.max() <= 1.2 / 255 + 1e-6 and np.mean(diff > 1e-6) < 1e-3, (method, predictor)
print("equal on", strategy.num_replicas_in_sync, "replicas")
"""


def test_two_logical_cpu_devices_give_the_single_device_results():
    run = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "equal on 2 replicas" in run.stdout
