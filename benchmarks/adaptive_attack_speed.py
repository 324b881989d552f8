"""Cost of one adaptive PGD step (loss minus c * max(0, U/τ - 1), U from the same T networks)
relative to one standard PGD step, both on the MC predictor (T = 20). The bar: at most 1.5x.

    python benchmarks/adaptive_attack_speed.py [--samples 20]

Two models: the paper's MNIST CNN (N = 200 images) and the cats-vs-dogs EfficientNet-Lite0 trunk
with a Dropout -> Dense(2) head at 224 px (N = 50). One step is timed as (time of 6 iterations -
time of 1 iteration) / 5, after a warm-up that traces; pgd, pgd-adaptive and pgd-adaptive-known are
timed in turn, medians of 5 repeats. Random weights (the cost does not depend on them). Writes the
``adaptive_attack_speed`` section of results/benchmarks.md.
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
from uncertadv.models.cnn import build_cnn  # noqa: E402

METHODS = ("pgd", "pgd-adaptive", "pgd-adaptive-known")


WEIGHTS = "random: untrained models (the weights do not change the cost)"


def config(method: str, samples: int, iterations: int) -> AttackConfig:
    extra = {} if method == "pgd" else {"measure": "mutual_information", "threshold": 0.05, "c": 10.0}
    if method == "pgd-adaptive-known":
        extra["detector_seed"] = 1_000_000
    return AttackConfig(method=method, eps=10, predictor="mc", samples=samples, iterations=iterations, **extra)


def step_seconds(models, x, y, samples: int, repeats: int = 5) -> dict[str, float]:
    """Seconds per iteration of each method; the repeats of the methods are interleaved."""
    times = {(m, it): [] for m in METHODS for it in (1, 6)}
    for key in times:  # warm-up: traces each (method, iteration count)
        attack(models, x, y, config(key[0], samples, key[1]), batch_size=len(x))
    for _ in range(repeats):
        for method, iterations in times:
            start = time.perf_counter()
            attack(models, x, y, config(method, samples, iterations), batch_size=len(x))
            times[(method, iterations)].append(time.perf_counter() - start)
    median = {k: statistics.median(v) for k, v in times.items()}
    return {m: (median[(m, 6)] - median[(m, 1)]) / 5 for m in METHODS}


def catsdogs_model():
    trunk = cd.efficientnet_trunk(224, weights=None)
    image = keras.Input((224, 224, 3))
    return keras.Model(image, cd.head(trunk.output_shape[-1], name="head0")(trunk(image)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20)
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    rows = []
    for title, model, shape, n in (
        ("MNIST CNN (the paper's)", build_cnn(), (28, 28, 1), 200),
        ("cats vs dogs, EfficientNet-Lite0 + dropout head, 224 px", catsdogs_model(), (224, 224, 3), 50),
    ):
        x = rng.random((n, *shape), dtype=np.float32)
        y = rng.integers(0, int(model.outputs[0].shape[-1]), n)
        seconds = step_seconds([model], x, y, args.samples)
        base = seconds["pgd"]
        for method in METHODS:
            bar = "" if method == "pgd" else "<= 1.5x"
            rows.append(f"| {title} | {n} | {method} | {seconds[method]:.4f} | {seconds[method] / base:.2f}x | {bar} |")
    body = (
        f"## One adaptive PGD step vs one standard PGD step, MC predictor (T = {args.samples})\n\n"
        "| model | images | method | seconds per step | relative to pgd | bar |\n|---|---|---|---|---|---|\n"
        + "\n".join(rows)
        + "\n\nThe adaptive loss takes U (here MI) from the same T sampled networks as the MC-mean predictive, so a "
        "step adds only the measure's arithmetic and its gradient, not another forward pass.\n\n"
        + provenance(" ".join(["python", "benchmarks/adaptive_attack_speed.py"] + sys.argv[1:]), WEIGHTS)
    )
    write_section("adaptive_attack_speed", body, weights=WEIGHTS)
    print(body)


if __name__ == "__main__":
    main()
