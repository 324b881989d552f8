"""Cost of one MIM step against the MC model (T samples) and the ensemble, relative to the
deterministic model (the whole-table time is benchmarks/table1_speed.py).

    python benchmarks/attack_speed.py [--n 200] [--samples 20] [--members 5]

One step is timed as (time of 11 iterations - time of 1 iteration) / 10, which removes
tracing and set-up. Untrained paper CNNs (weights do not change the cost). Writes the
``attack_speed`` section of results/benchmarks.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras  # noqa: E402
from _record import provenance, write_section  # noqa: E402

from uncertadv import data  # noqa: E402
from uncertadv.attacks import AttackConfig, attack  # noqa: E402
from uncertadv.models.cnn import build_cnn  # noqa: E402

WEIGHTS = "random: untrained paper CNNs (the weights do not change the cost)"


def step_seconds(models, x, y, predictor: str, samples: int) -> float:
    def run(iterations):
        config = AttackConfig(method="mim", eps=10, predictor=predictor, samples=samples, iterations=iterations)
        attack(models, x, y, config)  # warm-up: traces this iteration count
        start = time.perf_counter()
        attack(models, x, y, config)
        return time.perf_counter() - start

    return (run(11) - run(1)) / 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--members", type=int, default=5)
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    models = [build_cnn() for _ in range(args.members)]
    x, y = data.load_mnist("test")
    x, y = x[: args.n], y[: args.n]
    det = step_seconds(models, x, y, "deterministic", args.samples)
    mc = step_seconds(models, x, y, "mc", args.samples)
    ens = step_seconds(models, x, y, "ensemble", args.samples)
    body = (
        f"## One MIM step on the paper's CNN (N = {args.n} images)\n\n"
        "| attacked predictor | seconds per step | relative to deterministic |\n|---|---|---|\n"
        f"| deterministic | {det:.3f} | 1.0x |\n"
        f"| MC, T = {args.samples} (fresh networks every step) | {mc:.3f} | {mc / det:.1f}x |\n"
        f"| ensemble, {args.members} x {args.samples} | {ens:.3f} | {ens / det:.1f}x |\n"
        + "\n"
        + provenance(" ".join(["python", "benchmarks/attack_speed.py"] + sys.argv[1:]), WEIGHTS)
    )
    write_section("attack_speed", body, weights=WEIGHTS)
    print(body)


if __name__ == "__main__":
    main()
