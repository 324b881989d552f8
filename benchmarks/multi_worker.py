"""mc_predict on one process with 2 threads against two MultiWorkerMirroredStrategy workers with 1 thread each.

    python benchmarks/multi_worker.py [--samples 50] [--n 1000] [--rounds 7] [--calls 3]

On one machine the two workers share its cores, so this measures what the collectives cost, not a
speed-up: with the cores split between the workers, the best the two can do is the one process's
time. Each round starts one single process and one pair of workers (in that order), each timing the
median of ``--calls`` calls after a warm-up; the ratio is the median over rounds of each round's
ratio. Writes the ``multi_worker`` section of benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

WEIGHTS = "random: an untrained paper CNN (the weights do not change the cost)"

WORKER = """
import json, os, statistics, sys, time
import tensorflow as tf
threads = int(os.environ["BENCH_THREADS"])
tf.config.threading.set_intra_op_parallelism_threads(threads)
tf.config.threading.set_inter_op_parallelism_threads(threads)
strategy = None
if "TF_CONFIG" in os.environ:
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=300)
    strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
import keras
from uncertadv import data, mc
from uncertadv.models.cnn import build_cnn
keras.utils.set_random_seed(0)
model = build_cnn()
x = data.load_mnist("test")[0][: int(os.environ["BENCH_N"])]
T, calls = int(os.environ["BENCH_T"]), int(os.environ["BENCH_CALLS"])
run = lambda: mc.mc_predict(model, x, samples=T, seed=0, strategy=strategy)
out = run()
times = []
for _ in range(calls):
    start = time.perf_counter()
    run()
    times.append(time.perf_counter() - start)
print(json.dumps({"seconds": statistics.median(times), "shape": list(out.shape)}))
"""


def _start(env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WORKER], env={**os.environ, **env}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


def _result(process: subprocess.Popen) -> dict:
    try:
        out, err = process.communicate(timeout=900)
    finally:
        process.kill()
    if process.returncode:
        raise SystemExit(f"error: a benchmark process failed:\n{err[-2000:]}")
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=3)
    args = parser.parse_args()
    from _record import provenance, write_section

    from uncertadv import distribute

    common = {"BENCH_T": str(args.samples), "BENCH_N": str(args.n), "BENCH_CALLS": str(args.calls)}
    single, pair = [], []
    for r in range(args.rounds):
        single.append(_result(_start({**common, "BENCH_THREADS": "2"}))["seconds"])
        configs = distribute.local_tf_configs(2)
        workers = [_start({**common, "BENCH_THREADS": "1", "TF_CONFIG": config}) for config in configs]
        results = [_result(w) for w in workers]
        assert all(res["shape"] == [args.samples, args.n, 10] for res in results)  # every worker has every row
        pair.append(max(res["seconds"] for res in results))  # the call ends when the slower worker has its rows
        print(f"round {r + 1}: one process {single[-1]:.3f} s, two workers {pair[-1]:.3f} s", flush=True)
    ratio = statistics.median(p / s for p, s in zip(pair, single))
    body = (
        f"## Two workers on one machine (`mc_predict`, paper's MNIST CNN, T = {args.samples}, N = {args.n})\n\n"
        "| run | seconds per call (median over rounds) |\n|---|---|\n"
        f"| one process, 2 threads | {statistics.median(single):.3f} |\n"
        f"| two MultiWorkerMirroredStrategy workers on localhost, 1 thread each | {statistics.median(pair):.3f} |\n\n"
        f"Two workers / one process: **{ratio:.2f}x** (median of {args.rounds} rounds' ratios). Both share this "
        "machine's two cores, so this is the collectives' overhead, not a speed-up; on two hosts each worker "
        "would bring its own cores.\n\n"
        + provenance(" ".join(["python", "benchmarks/multi_worker.py"] + sys.argv[1:]), WEIGHTS)
    )
    write_section("multi_worker", body, weights=WEIGHTS, single_seconds=single, two_worker_seconds=pair,
                  ratio=round(ratio, 3))  # fmt: skip
    print(body)


if __name__ == "__main__":
    main()
