"""Speed of one latent uncertainty map: decode a G x G grid and score it with T MC samples.

    python benchmarks/latent_map_speed.py [--grid 150] [--samples 50] [--members 5]

Untrained paper CNN(s) and VAE decoder (weights do not change the cost). Writes the
``latent_map`` section of results/benchmarks.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras  # noqa: E402
from _record import provenance, write_section  # noqa: E402

from uncertadv import mc  # noqa: E402
from uncertadv.experiments import latent  # noqa: E402
from uncertadv.models.cnn import build_cnn  # noqa: E402
from uncertadv.models.vae import build_decoder  # noqa: E402

WEIGHTS = "random: untrained paper CNN(s) and VAE decoder (the weights do not change the cost)"


def one_map(decoder, models, grid: int, samples: int) -> float:
    start = time.perf_counter()
    z, _ = latent.latent_grid(10.0, grid)
    mc.mc_predict(models, latent.decode(decoder, z), samples=samples, seed=0)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=int, default=150)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--members", type=int, default=5)
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    decoder = build_decoder()
    models = [build_cnn() for _ in range(args.members)]
    one_map(decoder, models[0], 16, args.samples)  # warm-up: tracing
    one_map(decoder, models, 16, args.samples)
    single = one_map(decoder, models[0], args.grid, args.samples)
    ensemble = one_map(decoder, models, args.grid, args.samples)
    g, t = args.grid, args.samples
    body = (
        f"## Latent uncertainty map ({g}x{g} grid = {g * g} decoded images)\n\n"
        "| model | samples per image | seconds (decode + score) |\n|---|---|---|\n"
        f"| one dropout CNN | T = {t} | {single:.1f} |\n"
        f"| ensemble of {args.members} dropout CNNs | {args.members} x {t} | {ensemble:.1f} |\n\n"
        f"Bar: the single-model map in at most 60 s on 2 cores ({'met' if single <= 60 else 'NOT met'}).\n\n"
        + provenance(" ".join(["python", "benchmarks/latent_map_speed.py"] + sys.argv[1:]), WEIGHTS)
    )
    write_section("latent_map", body, weights=WEIGHTS)
    print(body)


if __name__ == "__main__":
    main()
