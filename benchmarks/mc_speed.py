"""MC-dropout speed on the paper's MNIST CNN: naive loop vs mc_predict vs one deterministic pass.

    python benchmarks/mc_speed.py [--samples 50] [--n 1000] [--repeats 3]

The naive loop is the common recipe, T calls of ``model(x, training=True)``.
Weights do not change the cost, so an untrained CNN is timed. Writes the
``mc_speed`` section of results/benchmarks.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras  # noqa: E402
from _record import provenance, timed, write_section  # noqa: E402

from uncertadv import data, mc  # noqa: E402
from uncertadv.models.cnn import build_cnn  # noqa: E402

WEIGHTS = "random: an untrained paper CNN (the weights do not change the cost)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    model = build_cnn()
    x = data.load_mnist("test")[0][: args.n]
    T = args.samples
    det = timed(lambda: mc.deterministic_predict(model, x), args.repeats)
    fast = timed(lambda: mc.mc_predict(model, x, samples=T, seed=0), args.repeats)
    naive = timed(lambda: mc.naive_mc_predict(model, x, samples=T), args.repeats)

    body = (
        f"## MC dropout on the paper's MNIST CNN (T = {T}, N = {args.n})\n\n"
        "| method | seconds (median of "
        f"{args.repeats}) | relative to one deterministic pass |\n|---|---|---|\n"
        f"| one deterministic pass (`deterministic_predict`) | {det:.3f} | 1.0x |\n"
        f"| `mc_predict` | {fast:.3f} | {fast / det:.1f}x |\n"
        f"| naive loop of T `model(x, training=True)` | {naive:.3f} | {naive / det:.1f}x |\n\n"
        f"`mc_predict` is **{naive / fast:.1f}x faster** than the naive loop (bar: >= 10x) and costs "
        f"**{fast / det:.1f}x** one deterministic pass (bar: <= 5x).\n\n"
        + provenance(" ".join(["python", "benchmarks/mc_speed.py"] + sys.argv[1:]), WEIGHTS)
    )
    write_section("mc_speed", body, weights=WEIGHTS)
    print(body)


if __name__ == "__main__":
    main()
