"""Cost of one attack step of the cats-vs-dogs ablation (issue 18) on EfficientNet-Lite0 at
224 px: batches of 5 (the authors' ``--batch_size``, which the batch-statistics variants must
keep) against batches of 50, with inference and batch-statistics BatchNorm, for the MC
predictor (T = 20). Per image-step, so the rows compare directly; and the projected wall time
of the whole ablation from the count of attack sets it makes.

    python benchmarks/ablation_step_speed.py [--n 50] [--samples 20]

A step is timed as the median over 3 repeats of one gradient call on every batch of N images,
after a warm-up that traces. Random weights (the cost does not depend on them). Writes the
``ablation_step_speed`` section of results/benchmarks.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from _record import provenance, timed, write_section  # noqa: E402

from uncertadv.experiments.catsdogs import variants  # noqa: E402
from uncertadv.experiments.catsdogs.network import VariantNetwork, key  # noqa: E402
from uncertadv.models import catsdogs as cd  # noqa: E402

WEIGHTS = "random: EfficientNet-Lite0 with weights=None (the weights do not change the cost)"


def step_seconds(network: VariantNetwork, x, y, batch: int, samples: int, repeats: int = 3) -> float:
    """Median seconds of one gradient call over all of ``x`` in batches of ``batch``."""

    def once():
        for b, start in enumerate(range(0, len(x), batch)):
            network.gradient(x[start : start + batch], y[start : start + batch], key(0, b), samples).numpy()

    return timed(once, repeats)  # the first call traces


def image_steps(config_count: dict[str, int], n: int) -> int:
    """Image-steps of the ablation: per unique attack set, N images x (1 FGM step or 10 BIM/MIM steps)."""
    return sum(count * n * (1 if method == "fgm" else 10) for method, count in config_count.items())


def unique_sets() -> dict[tuple, int]:
    """Unique attack sets of the ablation by BatchNorm mode: {(batchnorm, method): count}."""
    seen = set()
    for variant in variants.ablation().values():
        for predictor in ("deterministic", "mc"):
            seen.add((variant.batchnorm, repr(sorted(variant.attack_key(predictor).items(), key=str))))
    out = {}
    for batchnorm, _ in seen:
        for method, per in (("fgm", 2), ("bim", 2), ("mim", 2)):  # two eps each
            out[(batchnorm, method)] = out.get((batchnorm, method), 0) + per
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--samples", type=int, default=20)
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    trunk = cd.two_output_trunk("efficientnet-lite0", 224, weights=None)
    rng = np.random.default_rng(0)
    kernel, bias = rng.normal(0, 0.01, (1000, 2)).astype(np.float32), np.zeros(2, np.float32)
    x = rng.random((args.n, 224, 224, 3), dtype=np.float32)
    y = rng.integers(0, 2, args.n)
    rows, per_image = [], {}
    for batchnorm, model in (("inference", trunk), ("batch-statistics", cd.with_batch_statistics(trunk))):
        network = VariantNetwork(model, kernel, bias, "probs")
        for batch in (50, variants.AS_CODED_BATCH):
            seconds = step_seconds(network, x, y, batch, args.samples)
            per_image[(batchnorm, batch)] = seconds / args.n
            rows.append(f"| {batchnorm} | {batch} | {seconds:.3f} | {1000 * seconds / args.n:.1f} |")
    sets = unique_sets()
    steps = {
        bn: image_steps({m: c for (b, m), c in sets.items() if b == bn}, 200)
        for bn in ("inference", "batch-statistics")
    }
    projected = steps["inference"] * per_image[("inference", 50)] + steps["batch-statistics"] * per_image[
        ("batch-statistics", variants.AS_CODED_BATCH)]  # fmt: skip
    body = (
        "## One attack step of the cats-vs-dogs ablation, EfficientNet-Lite0 at 224 px "
        f"(N = {args.n}, MC T = {args.samples})\n\n"
        "| BatchNorm | batch | seconds per step over N | milliseconds per image-step |\n|---|---|---|---|\n"
        + "\n".join(rows)
        + f"\n\nThe ablation makes {sum(sets.values())} unique attack sets of 200 images: "
        f"{steps['inference']} image-steps with inference BatchNorm (run in batches of 50) and "
        f"{steps['batch-statistics']} with batch statistics (batches of 5). Projected attack time: "
        f"**{projected / 60:.0f} min**, before scoring, decoding and the heads' training outputs.\n\n"
        + provenance(" ".join(["python", "benchmarks/ablation_step_speed.py"] + sys.argv[1:]), WEIGHTS)
    )
    write_section("ablation_step_speed", body, weights=WEIGHTS)
    print(body)


if __name__ == "__main__":
    main()
