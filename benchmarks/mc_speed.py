"""MC dropout against its floor, on the paper's MNIST CNN (T = 50): one deterministic pass,
``mc_predict``, and two plain implementations of the same maths, timed in one process with
interleaved repeats. Also the ensemble's and EfficientNet-Lite0's MC / deterministic ratios.

    python benchmarks/mc_speed.py --label baseline|after [--samples 50] [--n 1000] [--repeats 9] [--naive]

``--label baseline`` records the run that later ones are judged against; the record keeps both.

The floor is the faster of two hand-written TensorFlow functions that share ``mc_predict``'s
structure but none of its bookkeeping. Both get the masks drawn beforehand, shared across the batch
as the engine shares them, and run at ``mc_predict``'s default batch size:
- ``batched``: the convolutions up to the first dropout once, then T masked evaluations of the rest
  as batched matmuls ``[T, N, D] @ [D, K]``;
- ``identity``: the same, with the Dense after the first dropout as ``x W - x_D W_D`` (only the
  dropped features multiply per sample; their indices and weight rows gathered beforehand too).
Weights do not change the cost, so untrained models are timed. ``--naive`` adds the common recipe,
T calls of ``model(x, training=True)`` (slow). Writes the ``mc_speed`` section of benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from _record import RESULTS, provenance, write_section  # noqa: E402

from uncertadv import artifacts, data, mc  # noqa: E402
from uncertadv.models import catsdogs as cd  # noqa: E402
from uncertadv.models.cnn import build_cnn  # noqa: E402

LOAD = os.getloadavg()  # at the start: the machine's load, recorded with the run
WEIGHTS = "random: untrained paper CNNs and an EfficientNet-Lite0 with random weights (weights do not change the cost)"


def interleaved(fns: dict, repeats: int) -> dict[str, list[float]]:
    """Wall seconds of each ``fns`` entry, ``repeats`` rounds, each round calling every entry once in
    turn (after one warm-up call each, for tracing): a noisy machine then slows all alike."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def ratio(times: dict, a: str, b: str) -> float:
    """The median over rounds of a / b (each round's pair timed back to back)."""
    return statistics.median(x / y for x, y in zip(times[a], times[b]))


def floors(model: keras.Model, samples: int, seed: int = 0):
    """The two plain implementations of the CNN's T networks, ``x [n, 28, 28, 1] -> [T, n, C]``, each a
    tf.function taking one batch. The masks are the engine's for ``seed`` (so the outputs can be checked
    against ``mc_predict``), drawn here once; the engine draws them in every call."""
    conv1, conv2, pool = (model.get_layer(n) for n in ("conv1", "conv2", "pool"))
    drop1, dense, drop2, probs = (model.get_layer(n) for n in ("dropout1", "dense", "dropout2", "probs"))
    width = int(np.prod(pool.output.shape[1:]))
    key = mc._key(seed, 0)

    def keep(layer, i, shape):  # [T, prod(shape)] float, scaled by 1 / (1 - rate)
        mask = mc._keep_mask(layer, tf.random.experimental.stateless_fold_in(key, i), samples, shape)
        return tf.reshape(tf.cast(mask, tf.float32), [samples, -1]) / (1 - layer.rate)

    keep1 = keep(drop1, 0, list(pool.output.shape[1:]))  # [T, D]
    keep2 = keep(drop2, 1, [dense.units])  # [T, H]
    # identity: the dropped features of each sample, padded to a common width with zero weight rows
    dropped = [np.flatnonzero(k == 0) for k in keep1.numpy()]
    pad = max(len(d) for d in dropped)
    idx = np.zeros((samples, pad), np.int32)
    valid = np.zeros((samples, pad), np.float32)
    for t, d in enumerate(dropped):
        idx[t, : len(d)], valid[t, : len(d)] = d, 1.0
    w_dropped = tf.gather(dense.kernel, idx) * valid[..., None]  # [T, W, H]
    idx = tf.constant(idx)

    def trunk(x):
        return tf.reshape(pool(conv2(conv1(x))), [-1, width])  # [n, D]

    def rest(z):  # [T, n, H] pre-activation of Dense 128 -> [T, n, C]
        a = dense.activation(z + dense.bias) * keep2[:, None, :]
        return probs.activation(tf.matmul(a, probs.kernel) + probs.bias)

    @tf.function(input_signature=[tf.TensorSpec([None, 28, 28, 1], tf.float32)])
    def batched(x):
        h = trunk(x)
        return rest(tf.matmul(h[None] * keep1[:, None, :], dense.kernel))

    @tf.function(input_signature=[tf.TensorSpec([None, 28, 28, 1], tf.float32)])
    def identity(x):
        h = trunk(x)
        h_dropped = tf.gather(tf.transpose(h), idx)  # [T, W, n]
        z = (tf.matmul(h, dense.kernel)[None] - tf.matmul(h_dropped, w_dropped, transpose_a=True)) / (1 - drop1.rate)
        return rest(z)

    return batched, identity


def chunked(fn, x: np.ndarray, batch_size: int):
    """``fn`` over ``x`` in batches, as ``mc_predict`` runs its compiled function."""
    return lambda: [fn(tf.constant(x[i : i + batch_size])).numpy() for i in range(0, len(x), batch_size)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", choices=("baseline", "after"), required=True,
                        help="baseline: the run before a change (kept); after: the latest run")  # fmt: skip
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=9, help="interleaved rounds (at least 7)")
    parser.add_argument("--lite0-n", type=int, default=64, help="images for the EfficientNet-Lite0 ratio")
    parser.add_argument("--lite0-samples", type=int, default=20, help="T for cats vs dogs, as Table 1 uses")
    parser.add_argument("--naive", action="store_true", help="also time T calls of model(x, training=True)")
    args = parser.parse_args()
    if args.repeats < 7:
        parser.error("--repeats must be at least 7")

    keras.utils.set_random_seed(0)
    T = args.samples
    model = build_cnn()
    members = [model] + [build_cnn() for _ in range(4)]
    x = data.load_mnist("test")[0][: args.n]
    batch = max(1, mc._ROWS_PER_CALL // T)  # mc_predict's default
    batched, identity = floors(model, T)
    # the floors compute the engine's very networks: checked on a few images (float32 rounding apart)
    engine = mc.mc_predict(model, x[:8], samples=T, seed=0)
    for floor in (batched, identity):
        np.testing.assert_allclose(floor(tf.constant(x[:8])).numpy(), engine, atol=1e-5)

    fns = {
        "deterministic": lambda: mc.deterministic_predict(model, x),
        "mc_predict": lambda: mc.mc_predict(model, x, samples=T, seed=0),
        "floor_batched": chunked(batched, x, batch),
        "floor_identity": chunked(identity, x, batch),
        "ensemble_deterministic": lambda: mc.deterministic_predict(members, x),
        "ensemble_mc_predict": lambda: mc.mc_predict(members, x, samples=T, seed=0),
    }
    if args.naive:
        fns["naive"] = lambda: mc.naive_mc_predict(model, x, samples=T)
    times = interleaved(fns, args.repeats)

    trunk = cd.efficientnet_trunk(224, weights=None)
    lite0 = cd.classifier(trunk, cd.head(trunk.output_shape[-1]))
    xl = np.random.default_rng(0).random((args.lite0_n, 224, 224, 3), dtype=np.float32)
    lite0_times = interleaved(
        {
            "deterministic": lambda: mc.deterministic_predict(lite0, xl),
            "mc_predict": lambda: mc.mc_predict(lite0, xl, samples=args.lite0_samples, seed=0),
        },
        args.repeats,
    )

    median = {name: statistics.median(v) for name, v in times.items()}
    floor_name = min(("floor_batched", "floor_identity"), key=median.get)
    ratios = {
        "mc_predict / floor": ratio(times, "mc_predict", floor_name),
        "mc_predict / deterministic": ratio(times, "mc_predict", "deterministic"),
        "floor / deterministic": ratio(times, floor_name, "deterministic"),
        "floor_batched / floor_identity": ratio(times, "floor_batched", "floor_identity"),
        "ensemble mc_predict / ensemble deterministic": ratio(times, "ensemble_mc_predict", "ensemble_deterministic"),
        "lite0 mc_predict / deterministic": ratio(lite0_times, "mc_predict", "deterministic"),
    }
    if args.naive:
        ratios["naive / mc_predict"] = ratio(times, "naive", "mc_predict")
    path = RESULTS / "benchmarks" / "mc_speed.json"
    runs = artifacts.read_json(path).get("runs", {}) if path.is_file() else {}
    runs[args.label] = {
        "commit": artifacts.versions()["git_commit"],
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "load_average_at_start": [round(v, 2) for v in LOAD],
        "seconds": {k: [round(t, 4) for t in v] for k, v in times.items()},
        "lite0_seconds": {k: [round(t, 4) for t in v] for k, v in lite0_times.items()},
        "ratios": {k: round(v, 3) for k, v in ratios.items()},
        "floor": floor_name,
    }
    rows = "\n".join(f"| `{name}` | {median[name]:.3f} |" for name in fns)
    lite0_rows = "\n".join(f"| Lite0 `{name}` | {statistics.median(v):.3f} |" for name, v in lite0_times.items())
    labels = [label for label in ("baseline", "after") if label in runs]
    ratio_rows = "\n".join(
        f"| {name} | " + " | ".join(f"{runs[label]['ratios'].get(name, float('nan')):.2f}x" for label in labels) + " |"
        for name in ratios
    )
    when = "\n".join(
        f"- {label}: commit {runs[label]['commit']}, {runs[label]['date']}, load average at start "
        f"{', '.join(map(str, runs[label]['load_average_at_start']))}"
        for label in labels
    )
    body = (
        f"## MC dropout against its floor (paper's MNIST CNN, T = {T}, N = {args.n}, batch {batch})\n\n"
        f"Interleaved rounds: {args.repeats}; seconds are medians, ratios the median of each round's ratio.\n\n"
        f"| what ({args.label} run) | seconds |\n|---|---|\n{rows}\n{lite0_rows}\n\n"
        f"The floor is `{floor_name}`. Lite0: EfficientNet-Lite0 at 224 px with the Dropout -> Dense(2) head, "
        f"{args.lite0_n} images, T = {args.lite0_samples}. The ensemble: 5 CNNs, T = {T} each.\n\n"
        f"| ratio | "
        + " | ".join(labels)
        + " |\n|---|"
        + "---|" * len(labels)
        + f"\n{ratio_rows}\n\n{when}\n\n"
        + provenance(" ".join(["python", "benchmarks/mc_speed.py"] + sys.argv[1:]), WEIGHTS)
    )
    write_section("mc_speed", body, weights=WEIGHTS, runs=runs)
    print(body)


if __name__ == "__main__":
    main()
