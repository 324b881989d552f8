"""tf.distribute: mc_predict, deterministic_predict, Detector.score and ua.attack give the single-device
results on this CPU split into two logical devices (MirroredStrategy), and on two worker processes
(MultiWorkerMirroredStrategy, as two hosts would run them). A strategy must be set up before
TensorFlow runs any op, so each check runs in fresh processes.

The attacks' bound, derived. A split changes the order of floating-point sums, so a gradient
component near zero can take the other sign. A sign attack then moves that pixel the other way,
and MIM's momentum carries the flipped sign into later steps, so the pixel can end anywhere in its
budget: on one 2-core AMD EPYC it moved by 2.4/255 at eps 10/255. What the algorithm does allow is
that both runs stay in the L-inf ball of radius eps around x, so no pixel differs by more than
2 eps. What a split bug (other networks, other masks, a lost replica's rows) would do is move most
pixels; a flipped rounding sign moves few (7e-5 of them there). So the test bounds both: no pixel
by more than 2 eps, and fewer than 1e-3 of the pixels at all. The first bound holds for any attack
that keeps to its ball (a check that the split run does too); the share of pixels moved is the check
that catches a split bug."""

import os
import subprocess
import sys

import pytest

LOGICAL = """
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
COMBINATIONS = [(m, p) for m in ("mim", "pgd") for p in ("mc", "ensemble")]
"""

# Each worker: one thread, and a collective timeout, so that a dead peer fails the run instead of hanging it
# (the test also kills both processes at its end).
MULTI_WORKER = """
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=300)
strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
# each method and each predictor once (all four pairs run on logical devices, which share this code path)
COMBINATIONS = [("mim", "mc"), ("pgd", "ensemble")]
"""

CHECKS = """
import keras, numpy as np
import uncertadv as ua
from uncertadv.models.cnn import build_cnn
keras.utils.set_random_seed(0)
models = [build_cnn(filters=(4, 8), dense_units=16) for _ in range(2)]
x = np.random.default_rng(0).random((37, 28, 28, 1), dtype=np.float32)  # 37: uneven across replicas
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
for method, predictor in COMBINATIONS:
    kwargs = dict(method=method, eps=10, predictor=predictor, samples=3, iterations=3, seed=1, batch_size=16)
    one = ua.attack(models, x, y, **kwargs)
    two = ua.attack(models, x, y, strategy=strategy, **kwargs)
    # Both runs stay in the eps ball around x, so no pixel can differ by more than 2 eps; a real
    # split bug (other networks, other masks) would move most pixels, a flipped rounding sign few.
    diff = np.abs(two - one)
    assert diff.max() <= 2 * 10 / 255 + 1e-6 and np.mean(diff > 1e-6) < 1e-3, (method, predictor)
print("equal on", strategy.num_replicas_in_sync, "replicas")
"""


def test_two_logical_cpu_devices_give_the_single_device_results():
    run = subprocess.run([sys.executable, "-c", LOGICAL + CHECKS], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "equal on 2 replicas" in run.stdout


# Then, on the two workers: only the chief writes, every worker reads its file after the write's barrier, and
# workers whose inputs differ are refused (each gathers rows split from its own inputs).
WRITES = """
import json, os
from pathlib import Path
from uncertadv import artifacts, distribute
index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
shared = Path(os.environ["SHARED_FOLDER"])
with distribute.active(strategy):
    artifacts.write_json(shared / "out.json", {"writer": index})
    assert artifacts.read_json(shared / "out.json") == {"writer": 0}
    try:
        ua.mc_predict(models[0], x * 0.5 + 0.1 * index, samples=2, seed=0)
    except ValueError as err:
        assert "different inputs" in str(err), err
    else:
        raise AssertionError("workers with different inputs were not refused")
print("the chief wrote")
"""


def test_two_worker_processes_give_the_single_device_results(tmp_path):
    """Every worker gets the whole result (strategy.gather), equal to its own single-process run."""
    from uncertadv import distribute

    workers, logs = [], []
    for index, tf_config in enumerate(distribute.local_tf_configs(2)):
        env = {**os.environ, "TF_CONFIG": tf_config, "SHARED_FOLDER": str(tmp_path)}
        logs.append((open(tmp_path / f"out{index}", "w+"), open(tmp_path / f"err{index}", "w+")))
        # output to files, not pipes: a worker blocked on a full pipe would stall the other at a collective
        workers.append(subprocess.Popen([sys.executable, "-c", MULTI_WORKER + CHECKS + WRITES], env=env, text=True,
                                        stdout=logs[-1][0], stderr=logs[-1][1]))  # fmt: skip
    try:
        for worker in workers:
            worker.wait(timeout=600)
    finally:
        for worker in workers:  # a worker left waiting on a dead peer must not outlive the test
            worker.kill()
    for worker, (out, err) in zip(workers, logs):
        out.seek(0), err.seek(0)
        text, errors = out.read(), err.read()
        out.close(), err.close()
        assert worker.returncode == 0, errors[-3000:]
        assert "equal on 2 replicas" in text and "the chief wrote" in text


class _FakeStrategy:
    """Stands in for a worker's strategy: counts the barriers (run + reduce) it is asked for."""

    def __init__(self):
        self.barriers = 0

    def run(self, fn):
        return fn()

    def reduce(self, op, value, axis):
        self.barriers += 1
        return value


def test_only_the_chief_writes_and_every_worker_waits_for_the_file(tmp_path):
    from uncertadv import artifacts, distribute

    for chief in (True, False):
        strategy, path = _FakeStrategy(), tmp_path / f"chief-{chief}" / "out.json"
        with distribute.active(strategy, chief=chief):
            artifacts.write_json(path, {"a": 1})
        assert path.is_file() == chief and path.parent.is_dir() == chief
        assert strategy.barriers == 1
    assert distribute.current() is None and distribute.writes()  # the block's end restores one worker


@pytest.mark.parametrize(
    "tf_config, message",
    [
        (None, "TF_CONFIG, which is not set"),
        ("{not json", "is not a cluster and a task"),
        ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}', "is not in its cluster"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}', "needs two or more"),
    ],
)
def test_multi_worker_refuses_a_missing_or_wrong_tf_config_in_one_line(tmp_path, monkeypatch, tf_config, message):
    from typer.testing import CliRunner

    from uncertadv.cli import app

    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    for command in (["score", "--model", str(tmp_path / "m.keras"), "--out", str(tmp_path / "s.csv")],
                    ["attack", "--method", "fgm", "--eps", "5", "--results", str(tmp_path)],
                    ["report", "--results", str(tmp_path)]):  # fmt: skip
        result = CliRunner().invoke(app, [*command, "--distribute", "multi-worker"])
        assert result.exit_code == 2, result.output
        assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())


def test_the_chief_is_the_chief_task_else_worker_0():
    from uncertadv import distribute

    workers = {"worker": ["a:1", "b:2"]}
    assert distribute.is_chief({"cluster": workers, "task": {"type": "worker", "index": 0}})
    assert not distribute.is_chief({"cluster": workers, "task": {"type": "worker", "index": 1}})
    with_chief = {**workers, "chief": ["c:3"]}
    assert not distribute.is_chief({"cluster": with_chief, "task": {"type": "worker", "index": 0}})
    assert distribute.is_chief({"cluster": with_chief, "task": {"type": "chief", "index": 0}})


def test_what_runs_on_one_worker_is_refused_with_distribute(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from uncertadv import distribute
    from uncertadv.cli import app
    from uncertadv.experiments.layout import Layout, ensure_classifiers

    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}}')
    for command, message in ((["report", "--adaptive"], "run on one worker"),
                             (["attack", "--method", "pgd-adaptive", "--eps", "5"], "runs on one worker")):  # fmt: skip
        result = CliRunner().invoke(app, [*command, "--results", str(tmp_path), "--distribute", "multi-worker"])
        assert result.exit_code == 2 and message in result.output, result.output
    with distribute.active(_FakeStrategy(), chief=True), pytest.raises(ValueError, match="train it on one worker"):
        ensure_classifiers(Layout.of("mnist", tmp_path), ("mc",))
    assert not any(tmp_path.iterdir())
