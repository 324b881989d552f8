"""The same seeds give the same bytes: a tiny train -> attack -> score pipeline, run twice in
fresh processes through the console entry point (which also must print no TensorFlow noise)."""

import os
import subprocess
import sys

import numpy as np

from uncertadv import artifacts

NOISE = ("oneDNN", "cuda", "cpu_feature_guard", "rebuild TensorFlow", "retracing", "Traceback")


def pipeline(folder):
    folder.mkdir()
    env = {**os.environ, "UNCERTADV_RESULTS": str(folder)}
    env.pop("UNCERTADV_DEBUG", None)
    steps = (
        ["train", "cnn", "--epochs", "1", "--limit-train", "300", "--limit-test", "30", "--samples", "2"],
        ["attack", "--method", "pgd", "--eps", "10", "--n", "6", "--samples", "2", "--iterations", "3"],
        ["score", "--attack", folder / "mnist" / "attacks" / "pgd_eps10_mc_n6_T2_it3.npz"],
    )
    for step in steps:
        run = subprocess.run(
            [sys.executable, "-m", "uncertadv", *map(str, step)],
            env=env,
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert run.returncode == 0, run.stderr
        assert not [word for word in NOISE if word in run.stderr], run.stderr
    return folder / "mnist"


def test_two_fresh_runs_give_identical_bytes(tmp_path):
    first, second = pipeline(tmp_path / "a"), pipeline(tmp_path / "b")
    for name in ("scores.csv", "scores/pgd_eps10_mc_n6_T2_it3.csv"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    name = "pgd_eps10_mc_n6_T2_it3.npz"  # n 6, T 2, 3 iterations: not the default settings
    with np.load(first / "attacks" / name) as a, np.load(second / "attacks" / name) as b:
        assert a.files == b.files
        for key in a.files:
            assert a[key].tobytes() == b[key].tobytes(), key
    one, two = (artifacts.read_json(f / "models" / "cnn.json") for f in (first, second))
    assert one["metrics"]["test_accuracy_mc"] == two["metrics"]["test_accuracy_mc"]
    assert one["versions"]["cpu"] and one["versions"]["threads"]["cpus"] >= 1
