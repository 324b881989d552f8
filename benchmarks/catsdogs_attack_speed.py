"""Cost of one MIM step against the cats-vs-dogs predictors on EfficientNet-Lite0 at 224 px:
the MC predictor (T = 20) and the ensemble of K heads on one trunk (K x T networks), each
relative to the deterministic predictor. The bar: each at most 1.5x the deterministic step.

    python benchmarks/catsdogs_attack_speed.py [--n 50] [--samples 20] [--heads 5]

One step is timed as (time of 6 iterations - time of 1 iteration) / 5, after a warm-up that
traces; medians of 3 repeats. Random weights (the cost does not depend on them). Writes the
``catsdogs_attack_speed`` section of results/benchmarks.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from _record import provenance, write_section  # noqa: E402

from uncertadv.attacks import AttackConfig, attack  # noqa: E402
from uncertadv.models import catsdogs as cd  # noqa: E402

WEIGHTS = "random: EfficientNet-Lite0 with weights=None (the weights do not change the cost)"


def step_seconds(models, x, y, predictor: str, samples: int, repeats: int = 3) -> float:
    def run(iterations):
        config = AttackConfig(method="mim", eps=10, predictor=predictor, samples=samples, iterations=iterations)
        attack(models, x, y, config, batch_size=len(x))  # warm-up: traces this iteration count
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            attack(models, x, y, config, batch_size=len(x))
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    return (run(6) - run(1)) / 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--heads", type=int, default=5)
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    trunk = cd.efficientnet_trunk(224, weights=None)
    members = []
    for k in range(args.heads):  # K heads on one trunk, as io.load_classifier builds them
        head = cd.head(trunk.output_shape[-1], name=f"head{k}")
        image = keras.Input((224, 224, 3))
        members.append(keras.Model(image, head(trunk(image))))
    rng = np.random.default_rng(0)
    x = rng.random((args.n, 224, 224, 3), dtype=np.float32)
    y = rng.integers(0, 2, args.n)
    det = step_seconds(members, x, y, "deterministic", args.samples)
    mc = step_seconds(members, x, y, "mc", args.samples)
    ens = step_seconds(members, x, y, "ensemble", args.samples)
    body = (
        f"## One MIM step on cats vs dogs, EfficientNet-Lite0 trunk at 224 px (N = {args.n} images)\n\n"
        "| attacked predictor | seconds per step | relative to deterministic | bar |\n|---|---|---|---|\n"
        f"| deterministic | {det:.3f} | 1.00x | |\n"
        f"| MC, T = {args.samples} (fresh networks every step) | {mc:.3f} | {mc / det:.2f}x | <= 1.5x |\n"
        f"| ensemble, {args.heads} heads x {args.samples} on one trunk | {ens:.3f} | {ens / det:.2f}x | <= 1.5x |\n"
        "\nThe trunk is deterministic and shared, so each step runs it (and its backward pass) once; "
        "the T or K x T sampled networks differ only in the Dropout -> Dense(2) head.\n\n"
        + provenance(" ".join(["python", "benchmarks/catsdogs_attack_speed.py"] + sys.argv[1:]), WEIGHTS)
    )
    write_section("catsdogs_attack_speed", body, weights=WEIGHTS)
    print(body)


if __name__ == "__main__":
    main()
