"""Cost of the adaptive suite's attacks on the as-coded variant (issue 19): EfficientNet-Lite0 at
224 px with batch-statistics BatchNorm, a head on the 1000-way softmax, batches of 5, MC T = 20.
Per image-step for the suite's objectives (the hinge, orthogonal PGD, U-matching) with the known
attacker, and the hinge with the fresh attacker's EOT; then the projected hours of the suite on
as-coded, with its own calibration and with the features head's settings.

    python benchmarks/as_coded_suite_speed.py [--n 20] [--steps 3] [--samples 20]

Each attack is timed as the median over 3 repeats of ``as_coded_suite.attack_batches`` on N
images (N / 5 batches) for ``--steps`` steps, after a warm-up call that traces. Random weights
(the cost does not depend on them). Writes the ``as_coded_suite_speed`` section of
results/benchmarks.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from _record import provenance, timed, write_section  # noqa: E402

from uncertadv.experiments.adaptive import as_coded_suite, suite  # noqa: E402
from uncertadv.experiments.catsdogs.network import VariantNetwork  # noqa: E402
from uncertadv.models import catsdogs as cd  # noqa: E402

WEIGHTS = "random: EfficientNet-Lite0 with weights=None (the weights do not change the cost)"
N_SUITE, N_CALIBRATION, TAILS, ATTACKERS = 200, 200, 2, 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--samples", type=int, default=20)
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    trunk = cd.with_batch_statistics(cd.two_output_trunk("efficientnet-lite0", 224, weights=None))
    rng = np.random.default_rng(0)
    kernel, bias = rng.normal(0, 0.01, (1000, 2)).astype(np.float32), np.zeros(2, np.float32)
    network = VariantNetwork(trunk, kernel, bias, "probs", mean_as_logits=True)
    x = rng.random((args.n, 224, 224, 3), dtype=np.float32)
    labels = rng.integers(0, 2, args.n)
    det = as_coded_suite.Detector.fit(rng.random(1000) * 0.02, "two-sided")
    batches = np.arange(args.n // as_coded_suite.BATCH)
    last = {o: suite.grid(o)[-1] for o in suite.OBJECTIVES}  # the largest c and margins: the cost is the same
    cases = [("hinge", "known"), ("orthogonal", "known"), ("u-matching", "known"), ("hinge", "fresh")]
    ms, rows = {}, []
    for objective, attacker in cases:
        seconds = timed(lambda o=last[objective], a=attacker: as_coded_suite.attack_batches(
            network, x, labels, batches, det, o, attacker=a, eps=5.0, iterations=args.steps, samples=args.samples,
            seed=0, eot=4, u_target=0.01, stage=1), 3)  # fmt: skip
        ms[(objective, attacker)] = this = 1000 * seconds / (args.n * args.steps)
        who = f"{attacker}, EOT 4" if attacker == "fresh" else attacker
        rows.append(f"| {objective} | {who} | {this:.1f} | {this / ms[('hinge', 'known')]:.2f}x |")
    # a cascade stage attacks at most every batch; the stages cost hinge, orthogonal, selective (as orthogonal),
    # u-matching; the fresh attacker pays its EOT ratio on each
    stage_ms = ms[("hinge", "known")] * 2 + ms[("orthogonal", "known")] * 2
    fresh_ratio = ms[("hinge", "fresh")] / ms[("hinge", "known")]
    cascades = TAILS * N_SUITE * 100 * stage_ms * (1 + fresh_ratio) / 1000 / 3600
    grid = {o: len(suite.grid(o)) for o in suite.OBJECTIVES}
    per_setting = {"hinge": ms[("hinge", "known")], "orthogonal": ms[("orthogonal", "known")],
                   "selective": ms[("orthogonal", "known")], "u-matching": ms[("u-matching", "known")]}  # fmt: skip
    calibration = TAILS * N_CALIBRATION * 50 * sum(grid[o] * per_setting[o] for o in grid) / 1000 / 3600
    body = (
        "## The adaptive suite on as-coded: one attack step, EfficientNet-Lite0 at 224 px, batch statistics "
        f"in batches of 5 (N = {args.n}, {args.steps} steps, MC T = {args.samples})\n\n"
        "| objective | attacker | ms per image-step | relative to the hinge, known |\n|---|---|---|---|\n"
        + "\n".join(rows)
        + "\n\n### Projected hours at most (an estimate, not a measurement)\n\n"
        f"Every cascade stage attacking all {N_SUITE} images for 100 steps, for {TAILS} tails and both attackers "
        f"(selective priced as orthogonal): **{cascades:.1f} h**. Calibrating the grid on as-coded itself "
        f"({sum(grid.values())} settings, {N_CALIBRATION} images, 50 steps, {TAILS} tails, every batch attacked): "
        f"**{calibration:.1f} h** more. Later stages attack only the batches still failing, so the cascades "
        "cost less than this bound.\n\n"
        + provenance(" ".join(["python", "benchmarks/as_coded_suite_speed.py"] + sys.argv[1:]), WEIGHTS)
    )
    write_section("as_coded_suite_speed", body, weights=WEIGHTS)
    print(body)


if __name__ == "__main__":
    main()
