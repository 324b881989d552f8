"""MC (T = 20) vs deterministic scoring cost of the cats-vs-dogs models: dropout sits only in
the head, so MC sampling should cost about one trunk pass whatever T is.

    python benchmarks/catsdogs_mc_speed.py [--samples 20] [--n 1000] [--resnet-n 64]

Untrained trunks (weights do not change the cost): the small trunk at 64 px, and ResNet50
(weights=None) at 224 px. Writes the ``catsdogs_mc`` section of results/benchmarks.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from _record import provenance, timed, write_section  # noqa: E402

from uncertadv import mc  # noqa: E402
from uncertadv.models import catsdogs as cd  # noqa: E402

WEIGHTS = "random: an untrained small trunk, and ResNet50 with weights=None (the weights do not change the cost)"


def ratio(model, x, samples: int, repeats: int = 3) -> tuple[float, float]:
    det = timed(lambda: mc.deterministic_predict(model, x), repeats)
    fast = timed(lambda: mc.mc_predict(model, x, samples=samples, seed=0), repeats)
    return det, fast


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--resnet-n", type=int, default=64)
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    rows = []
    for name, trunk, n in (
        ("small trunk, 64 px", cd.small_trunk(64), args.n),
        ("ResNet50 trunk (random weights), 224 px", cd.resnet50_trunk(224, weights=None), args.resnet_n),
    ):
        model = cd.classifier(trunk, cd.head(trunk.output_shape[-1]))
        x = rng.random((n, *trunk.input_shape[1:]), dtype=np.float32)
        det, fast = ratio(model, x, args.samples)
        rows.append(f"| {name} | {n} | {det:.3f} | {fast:.3f} | {fast / det:.2f}x |")
    body = (
        f"## Cats vs dogs: MC (T = {args.samples}) vs deterministic scoring\n\n"
        "| model | images | deterministic s | MC s | MC / deterministic |\n|---|---|---|---|---|\n"
        + "\n".join(rows)
        + "\n\nDropout sits only in the head, so the trunk runs once per image and "
        "each extra sample costs one Dropout->Dense(2) head.\n\n"
        + provenance(" ".join(["python", "benchmarks/catsdogs_mc_speed.py"] + sys.argv[1:]), WEIGHTS)
    )
    write_section("catsdogs_mc", body, weights=WEIGHTS)
    print(body)


if __name__ == "__main__":
    main()
