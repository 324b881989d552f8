"""The hole-seeking attack (MNIST only): the paper's holes, searched for as an attacker would.

For each of N test images that the predictor gets right, the target is ``(label + 1) mod 10``.
Starting from the image's VAE encoding z0, gradient ascent in the 2-D latent space raises the
target's log-probability minus ``c * max(0, U / τ - 1)`` through the decoder, within a latent
radius of LATENT_RADIUS around z0. Each step draws fresh dropout networks (the attacker does not
know the detector's seed). Success: the decoded image is classified as the target with MC
probability >= MIN_CONFIDENCE and U < τ, both judged by the detector's own networks.

A success need not be a hole: a radius of 3 reaches the neighbouring class clusters, whose decoded
images are ordinary digits of the target class. So each found point's distance to the nearest
encoded training image is kept, and ``n_holes`` counts the successes farther than FAR_DISTANCE.

Shapes: ``z`` ``[N, 2]``; images ``[N, 28, 28, 1]``.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from uncertadv import artifacts, inputs, io, mc, predictors
from uncertadv.attacks import DIFFERENTIABLE_MEASURES
from uncertadv.detector import Detector, weights_sha256
from uncertadv.experiments import latent
from uncertadv.experiments.adaptive import protocol
from uncertadv.experiments.layout import Layout, ensure_vae
from uncertadv.predictors import members

LATENT_RADIUS = 3.0
MIN_CONFIDENCE = 0.9
# A found image counts as a hole (Figure 5's definition) when its latent point is farther than this
# from every encoded training image; otherwise it may simply be a digit of the target class.
FAR_DISTANCE = 1.0
_SEED_STRIDE = 1_000_003  # as the attacks: seed s draws networks s * stride + step


@dataclasses.dataclass(frozen=True)
class HoleConfig:
    n: int = 200
    steps: int = 100
    step_size: float = 0.1  # latent units per step; the gradient is normalised per image
    radius: float = LATENT_RADIUS
    seed: int = 0


def _gradient_fn(decoder, models: list, samples: int, measure: str):
    """A compiled ``(z, target, seed, c, threshold) -> d objective / d z`` ``[N, 2]``."""

    @tf.function(reduce_retracing=True)
    def gradient(z, target, seed, c, threshold):
        with tf.GradientTape() as tape:
            tape.watch(z)
            probs = mc.sampled_probs(models, decoder(z, training=False), samples=samples, seed=seed)
            probs = tf.maximum(probs, np.finfo(np.float32).tiny)  # keeps log p finite
            log_target = tf.math.log(tf.gather(tf.reduce_mean(probs, axis=0), target, batch_dims=1))
            from uncertadv import measures

            uncertainty = getattr(measures, measure)(probs, as_tensor=True)
            objective = log_target - c * tf.nn.relu(uncertainty / threshold - 1.0)
        return tape.gradient(objective, z)

    return gradient


def search(decoder, detector: Detector, z0: np.ndarray, target: np.ndarray, c: float, config: HoleConfig) -> np.ndarray:
    """Latent points ``[N, 2]`` found from ``z0 [N, 2]`` for the ``target [N]`` classes."""
    chosen = members(detector.models, detector.predictor)  # what the detector's predictor judges with
    gradient = _gradient_fn(decoder, chosen, detector.samples, detector.measure)
    z0 = tf.constant(z0, tf.float32)
    z = tf.identity(z0)
    target = tf.constant(target, tf.int64)
    c_t, tau = tf.constant(c, tf.float32), tf.constant(detector.threshold, tf.float32)
    for step in range(config.steps):
        g = gradient(z, target, tf.constant(config.seed * _SEED_STRIDE + step, tf.int64), c_t, tau)
        z = z + config.step_size * g / tf.maximum(tf.norm(g, axis=1, keepdims=True), 1e-12)
        offset = z - z0  # project back into the ball around the source's encoding
        z = z0 + offset * tf.minimum(1.0, config.radius / tf.maximum(tf.norm(offset, axis=1, keepdims=True), 1e-12))
    return z.numpy()


def judge(decoder, detector: Detector, z0: np.ndarray, z: np.ndarray, target: np.ndarray) -> dict[str, np.ndarray]:
    """Success, target probability, U, latent distance and pixel L2 (from z0's decoding), ``[N]`` each."""
    images, source = latent.decode(decoder, z), latent.decode(decoder, z0)
    probs = predictors.predict(
        detector.models, images, predictor=detector.predictor, samples=detector.samples, seed=detector.seed
    )
    p_target = probs.mean(axis=0)[np.arange(len(z)), target]
    uncertainty = protocol._measure(probs, detector.measure)
    return {
        "success": (p_target >= MIN_CONFIDENCE) & (uncertainty < detector.threshold),
        "p_target": p_target,
        "uncertainty": uncertainty,
        "latent_distance": np.linalg.norm(z - z0, axis=1),
        "pixel_l2": np.sqrt(((images - source) ** 2).reshape(len(z), -1).sum(axis=1)),
    }


def correct(detector: Detector, x: np.ndarray, y: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """The ``candidates`` (test indices, in order) that the detector's predictor gets right."""
    probs = predictors.predict(
        detector.models, x[candidates], predictor=detector.predictor, samples=detector.samples, seed=detector.seed
    )
    return candidates[probs.mean(axis=0).argmax(axis=-1) == y[candidates]]


def path(layout: Layout, predictor: str, measure: str) -> Path:
    """``RESULTS/attacks/holes_PREDICTOR_MEASURE.npz``: one hole search."""
    return layout.attack_set(f"holes_{predictor}_{measure}")


def build(
    layout: Layout,
    detector: Detector,
    x: np.ndarray,
    y: np.ndarray,
    config: HoleConfig,
    index_seed: int,
    n_evaluation: int,
    force: bool = False,
) -> dict:
    """Calibrate c, search from N sources, and save ``attacks/holes_PREDICTOR_MEASURE.npz`` + record.

    index_seed, n_evaluation: the protocol's image draw, whose held-out calibration images choose c
    and whose other images supply the sources."""
    if layout.dataset != "mnist":
        raise ValueError(f"the hole search needs the MNIST VAE; it is not defined for {layout.dataset!r}")
    if detector.predictor == "deterministic" or detector.measure not in DIFFERENTIABLE_MEASURES:
        raise ValueError(
            "the hole search needs sampled networks (mc, ensemble) and a differentiable measure "
            f"({', '.join(DIFFERENTIABLE_MEASURES)}); got {detector.predictor}, {detector.measure}"
        )
    encoder, decoder = io.load_vae(ensure_vae(layout))
    out = path(layout, detector.predictor, detector.measure)
    want = {
        "hole_search": dataclasses.asdict(config),
        "min_confidence": MIN_CONFIDENCE,
        "far_distance": FAR_DISTANCE,
        "detector": {**detector.config(), "threshold": detector.threshold},
        "classifier": weights_sha256(detector.models),
        "index_seed": index_seed,
        "n_evaluation": n_evaluation,
        "c_grid": list(protocol.C_GRID),
        "vae": [artifacts.file_sha256(f) for f in io.vae_paths(layout.vae)],
        "data_sha256": inputs.data_sha256(x, y),
    }
    found = None if force else artifacts.reusable_record(artifacts.sidecar_path(out), want, [out])
    if found is not None:
        return {**found, "reused": True}
    start = time.perf_counter()
    held = protocol.held_out(len(x), n_evaluation, index_seed)
    order = np.random.default_rng(index_seed).permutation(len(x))
    rest = order[~np.isin(order, np.concatenate([held["fit"], held["calibration"]]))]
    calibration = correct(detector, x, y, held["calibration"])
    index = correct(detector, x, y, rest)[: config.n]
    if len(index) < config.n:
        raise ValueError(f"only {len(index)} test images are classified correctly; the hole search needs {config.n}")
    rates = []
    for c in protocol.C_GRID:
        rates.append(float(_run(encoder, decoder, detector, x, y, calibration, c, config)["success"].mean()))
    c = protocol.C_GRID[int(np.argmax(rates))]
    result = _run(encoder, decoder, detector, x, y, index, c, config)
    from uncertadv import data

    train_z = latent.encode(encoder, data.load_mnist("train")[0])
    result["data_distance"] = latent.distance_to_data(result["z"], train_z)
    with artifacts.atomic_path(out) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, index=index, **result)
    record = artifacts.record(
        want,
        start,
        c=c,
        calibration_success_rates=rates,
        n_calibration=len(calibration),
        success_rate=float(result["success"].mean()),
    )
    artifacts.write_json(artifacts.sidecar_path(out), record)
    return record


def _run(encoder, decoder, detector, x, y, index, c, config) -> dict[str, np.ndarray]:
    z0 = latent.encode(encoder, x[index])
    target = (y[index] + 1) % 10
    z = search(decoder, detector, z0, target, c, config)
    return {"z0": z0, "z": z, "target": target, **judge(decoder, detector, z0, z, target)}


def row(result: dict, predictor: str, measure: str, c: float) -> dict:
    """One row of hole_search.csv; medians are over the successful searches (NaN if none)."""
    success = result["success"].astype(bool)
    n, k = len(success), int(success.sum())
    holes = int((success & (result["data_distance"] > FAR_DISTANCE)).sum())
    from uncertadv import metrics

    lo, hi = metrics.wilson_interval(k, n)

    def median(values):
        return float(np.median(values[success])) if k else float("nan")

    return {
        "predictor": predictor,
        "measure": measure,
        "c": c,
        "n": n,
        "n_successful": k,
        "success_rate": k / n,
        "success_rate_lo": lo,
        "success_rate_hi": hi,
        "median_latent_distance": median(result["latent_distance"]),
        "median_pixel_l2": median(result["pixel_l2"]),
        "n_holes": holes,
    }


GRID, EXTENT = 150, 10.0  # Figure 5's latent grid


def grid_holes(cfg, models: dict, loaded: dict) -> list[dict]:
    """The hole search as an exhaustive attack: every point of the VAE's latent grid (``GRID`` x ``GRID``
    over ±``EXTENT``), decoded and judged by each suite detector (its own networks, 5% FPR). A hole: max
    probability >= MIN_CONFIDENCE, accepted by the detector, farther than FAR_DISTANCE from every encoded
    training image. Rows per (predictor, measure, tail) and predicted class, then ``all``."""
    from uncertadv import data, measures
    from uncertadv.detector import thresholds
    from uncertadv.experiments.adaptive import suite
    from uncertadv.experiments.layout import eval_seed

    vae = ensure_vae(cfg.layout)
    vae_files = [vae, *io.vae_paths(vae)]
    x_train, y_train = data.load_mnist("train")

    @functools.cache
    def decoded() -> tuple[np.ndarray, np.ndarray]:
        """``(far [G] bool, images [G, 28, 28, 1])``: computed once, for whichever predictor misses its cache."""
        encoder, decoder = io.load_vae(vae)
        z_grid, _ = latent.latent_grid(EXTENT, GRID)
        far = latent.distance_to_data(z_grid, latent.encode(encoder, x_train)) > FAR_DISTANCE
        return far, latent.decode(decoder, z_grid)

    rows = []
    for predictor in cfg.predictors:
        x, y = loaded[predictor]
        fit = suite.fit_scores(cfg, cfg.layout, models[predictor], x, y, predictor, {}, 1.0)
        # Decoding and judging 22,500 points is the slow part of a re-run: the per-point scores are cached,
        # keyed by the contents of the VAE, the classifier and the training images (for the distances); the
        # thresholds are applied afresh. A change to the maths needs suite.VERSION bumped, as for every cache.
        want = {"suite": suite.VERSION, "grid": GRID, "extent": EXTENT, "far_distance": FAR_DISTANCE,
                "vae": [artifacts.file_sha256(f) for f in vae_files], "train": inputs.data_sha256(x_train, y_train),
                "predictor": predictor, "weights": [artifacts.file_sha256(f) for f in models[predictor][1]],
                "samples": cfg.samples, "seed": eval_seed(cfg.seed), "measures": list(protocol.MEASURES)}  # fmt: skip

        def compute(predictor=predictor):
            far, images = decoded()
            probs = predictors.predict(models[predictor][0], images, predictor=predictor, samples=cfg.samples,
                                       seed=eval_seed(cfg.seed), desc=f"latent grid ({predictor})")  # fmt: skip
            mean = probs.mean(axis=0)
            scores = {m: getattr(measures, m)(probs) for m in protocol.MEASURES}
            arrays = {"far": far, "max_prob": mean.max(axis=-1), "label": mean.argmax(axis=-1),
                      "n_classes": mean.shape[-1]}  # fmt: skip
            return {**arrays, **scores}, {}

        cached = suite.forced if cfg.force else suite.cached_npz
        point, _ = cached(cfg.layout.folder / "adaptive" / f"latent_grid_{predictor}.npz", want, compute)
        far, label, confident = point["far"], point["label"], point["max_prob"] >= MIN_CONFIDENCE
        for measure in cfg.measures_of(predictor):
            u = point[measure]
            for tail in cfg.tails:
                upper, lower = thresholds(fit[measure], 0.05, "conformal", tail)
                accepted = (u <= (np.inf if upper is None else upper)) & (u >= (-np.inf if lower is None else lower))
                hole = far & confident & accepted
                for cls in [*range(int(point["n_classes"])), "all"]:
                    mine = np.ones(len(label), bool) if cls == "all" else label == cls
                    rows.append({"predictor": predictor, "measure": measure, "tail": tail, "class": cls,
                                 "n_points": int(mine.sum()), "n_far": int((far & mine).sum()),
                                 "n_holes": int((hole & mine).sum())})  # fmt: skip
    return rows
