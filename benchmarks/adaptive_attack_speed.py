"""Cost of one step of each attack of the adaptive suite, MC predictor (T = 20), and the suite's
projected wall time from it.

    python benchmarks/adaptive_attack_speed.py [--samples 20]

Two models: the paper's MNIST CNN (N = 200 images) and the cats-vs-dogs EfficientNet-Lite0 trunk
with a Dropout -> Dense(2) head at 224 px (N = 50). One step is timed as (time of 6 iterations -
time of 1 iteration) / 5, after a warm-up that traces; the attacks are timed in turn, medians of 3
repeats. Random weights (the cost does not depend on them). Writes the ``adaptive_attack_speed``
section of results/benchmarks.md.

The projection counts image-steps per attack of ``suite`` (PGD sets, calibration grids, cascades)
under a stated assumption on how many images each cascade stage still attacks, and prices them
at these step costs (the ensemble at 5 members' cost). It is an estimate for choosing the cuts the
issue orders (softmax variance, then the larger eps, then restarts), not a measurement.
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

from uncertadv.attacks import attack  # noqa: E402
from uncertadv.experiments.adaptive import suite  # noqa: E402
from uncertadv.models import catsdogs as cd  # noqa: E402
from uncertadv.models.cnn import build_cnn  # noqa: E402

WEIGHTS = "random: untrained models (the weights do not change the cost)"
DETECTOR = dict(measure="mutual_information", threshold=0.05, lower_threshold=0.001)
ATTACKS = {
    "pgd": dict(method="pgd"),
    "hinge (sum)": dict(method="pgd-adaptive-known", loss="cw", kappa=5.0, margin=0.2, c=1.0, best_iterate=True,
                        schedule="decay", detector_seed=1_000_000, **DETECTOR),
    "orthogonal": dict(method="pgd-adaptive-known", loss="cw", update="orthogonal", best_iterate=True,
                       schedule="decay", detector_seed=1_000_000, **DETECTOR),
    "selective": dict(method="pgd-adaptive-known", loss="cw", update="selective", best_iterate=True,
                      schedule="decay", detector_seed=1_000_000, **DETECTOR),
    "u-matching": dict(method="pgd-adaptive-known", loss="cw", penalty="u-matching", u_target=0.01, c=1.0,
                       best_iterate=True, schedule="decay", detector_seed=1_000_000, **DETECTOR),
    "hinge, fresh, EOT 4": dict(method="pgd-adaptive", loss="cw", c=1.0, best_iterate=True, schedule="decay", eot=4,
                                **DETECTOR),
}  # fmt: skip
# The projection's assumption: the share of the N images each cascade stage still attacks (stage 1 after
# PGD, then each later one), and the share of those that take the restarts.
STAGE_SHARE = (0.3, 0.15, 0.08, 0.04)
RESTART_SHARE = 0.5


def step_seconds(models, x, y, samples: int, repeats: int = 3) -> dict[str, float]:
    """Seconds per iteration of each attack; the repeats of the attacks are interleaved."""
    times = {(name, it): [] for name in ATTACKS for it in (1, 6)}

    def run(name, iterations):
        attack(models, x, y, predictor="mc", samples=samples, eps=10, iterations=iterations, batch_size=len(x),
               **ATTACKS[name])  # fmt: skip

    for key in times:  # warm-up: traces each (attack, iteration count)
        run(*key)
    for _ in range(repeats):
        for key in times:
            start = time.perf_counter()
            run(*key)
            times[key].append(time.perf_counter() - start)
    median = {k: statistics.median(v) for k, v in times.items()}
    return {name: (median[(name, 6)] - median[(name, 1)]) / 5 / len(x) for name in ATTACKS}


def projection(per_image_step: dict[str, float], n: int, eps: int, measures: int, ensemble: bool) -> dict:
    """Projected seconds of one dataset's suite: ``{"pgd", "calibration", "cascade", "total"}``."""
    known = {o: per_image_step["hinge (sum)" if o == "hinge" else o] for o in suite.OBJECTIVES}
    fresh_factor = per_image_step["hinge, fresh, EOT 4"] / per_image_step["hinge (sum)"]
    predictors = [("mc", 1.0, measures)] + ([("ensemble", 5.0, 1)] if ensemble else [])
    cfg = suite.SuiteConfig(layout=None)  # its defaults only
    out = {"pgd": 0.0, "calibration": 0.0, "cascade": 0.0}  # pgd: the evaluation's and calibration's PGD sets
    for _, members, n_measures in predictors:
        out["pgd"] += eps * (n + cfg.n_calibration) * cfg.steps * per_image_step["pgd"] * members
        for m in range(n_measures):
            objectives = suite.OBJECTIVES if m == 0 else ("hinge", "orthogonal")  # MI: all; others: two
            for _ in range(eps * len(suite.TAILS)):
                for o in objectives:  # calibration attacks the images PGD leaves, as the cascade's first stage
                    image_steps = len(suite.grid(o)) * STAGE_SHARE[0] * cfg.n_calibration * cfg.calibration_steps
                    out["calibration"] += image_steps * known[o] * members
                for share, o in zip(STAGE_SHARE, objectives):
                    runs = 1 + RESTART_SHARE * cfg.restarts
                    out["cascade"] += share * n * cfg.steps * runs * known[o] * members * (1 + fresh_factor)
    out["total"] = sum(out.values())
    return out


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
    rows, costs = [], {}
    for key, title, model, shape, n in (
        ("mnist", "MNIST CNN (the paper's)", build_cnn(), (28, 28, 1), 200),
        ("catsdogs", "cats vs dogs, EfficientNet-Lite0 + dropout head, 224 px", catsdogs_model(), (224, 224, 3), 50),
    ):
        x = rng.random((n, *shape), dtype=np.float32)
        y = rng.integers(0, int(model.outputs[0].shape[-1]), n)
        costs[key] = step_seconds([model], x, y, args.samples)
        for name, seconds in costs[key].items():
            ratio = seconds / costs[key]["pgd"]
            rows.append(f"| {title} | {n} | {name} | {1000 * seconds:.3f} | {ratio:.2f}x |")
    plans = {
        "make adaptive (MNIST: N 1000, eps 76 and 128, mc 3 measures + ensemble MI)": ("mnist", 1000, 2, 3, True),
        "... without softmax variance": ("mnist", 1000, 2, 2, True),
        "... and without eps 128": ("mnist", 1000, 1, 2, True),
        "make catsdogs-adaptive (N 200, eps 5 and 10, mc 3 measures)": ("catsdogs", 200, 2, 3, False),
        "... without softmax variance ": ("catsdogs", 200, 2, 2, False),
        "... and without eps 10": ("catsdogs", 200, 1, 2, False),
    }
    projected = []
    for label, (key, n, eps, n_measures, ensemble) in plans.items():
        p = projection(costs[key], n, eps, n_measures, ensemble)
        projected.append(f"| {label} | {p['pgd'] / 3600:.2f} | {p['calibration'] / 3600:.2f} | "
                         f"{p['cascade'] / 3600:.2f} | {p['total'] / 3600:.2f} |")  # fmt: skip
    body = (
        f"## One step of each attack of the adaptive suite, MC predictor (T = {args.samples}), and the projection\n\n"
        "| model | images | attack | ms per image-step | relative to pgd |\n|---|---|---|---|---|\n"
        + "\n".join(rows)
        + "\n\nThe detector terms take U from the same T sampled networks as the predictive; orthogonal and "
        "selective PGD need a second gradient; the fresh attacker with EOT 4 runs 4 draws of T networks per step."
        "\n\n### Projected hours (an estimate, not a measurement)\n\n"
        f"Assumed: cascade stages attack {', '.join(f'{s:.0%}' for s in STAGE_SHARE)} of the N images in turn "
        "(calibration the first share of its images), "
        f"{RESTART_SHARE:.0%} of those take the restarts, and the fresh attacker repeats every stage at its EOT "
        "cost; the ensemble costs 5 members. Entropy and softmax variance are priced with two objectives.\n\n"
        "| plan | PGD sets | calibration | cascades | total |\n|---|---|---|---|---|\n"
        + "\n".join(projected)
        + "\n\n"
        + provenance(" ".join(["python", "benchmarks/adaptive_attack_speed.py"] + sys.argv[1:]), WEIGHTS)
    )
    write_section("adaptive_attack_speed", body, weights=WEIGHTS)
    print(body)


if __name__ == "__main__":
    main()
