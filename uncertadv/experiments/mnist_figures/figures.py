"""Runs the MNIST manifold experiments end to end: models in, CSVs and PNGs out.

Every expensive table (latent-grid scores, test-set scores, midpoint scores) is cached
beside the figures with a sidecar of its config, including the sha256 of the model
files, so a re-run reuses it and a retrained model invalidates it.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from uncertadv import artifacts, data, io, predictors
from uncertadv.experiments import interpolation, latent, plots
from uncertadv.experiments.layout import Layout
from uncertadv.measures import MEASURES

# Defaults shared by the CLI commands (documented in results/mnist/README.md).
FAR_DISTANCE = 1.0  # latent units: one standard deviation of the VAE prior
MIN_CONFIDENCE = 0.9
MI_QUANTILE = 0.95  # "low MI": no higher than 95% of clean test digits get
STEPS = 15
CLASSES = (6, 8)  # the paper's Figure 2 pair

MODEL_TITLES = {"mc": "MC dropout CNN", "ensemble": "ensemble of dropout CNNs", "deterministic": "deterministic CNN"}


@dataclasses.dataclass
class Context:
    """Where the models are, where results go, and the MC settings shared by every figure."""

    results: Path
    cnn: Path
    ensemble: Path
    vae: Path
    samples: int = 50
    seed: int = 0

    def __post_init__(self):
        if self.samples < 1:
            raise ValueError(f"samples must be >= 1, got {self.samples}")

    @functools.cached_property
    def encoder_decoder(self):
        return io.load_vae(self.vae)

    def models(self, predictor: str) -> list:
        return self._ensemble if predictor == "ensemble" else self._cnn

    @functools.cached_property
    def _cnn(self):
        if not self.cnn.is_file():
            raise ValueError(f"no CNN at {self.cnn}; train one with `uncertadv train cnn --out {self.cnn}`")
        return io.load_classifier(self.cnn)

    @functools.cached_property
    def _ensemble(self):
        if not self.ensemble.is_file():
            raise ValueError(
                f"no ensemble at {self.ensemble}; train one with "
                f"`uncertadv train cnn --members 5 --out {self.ensemble}`"
            )
        return io.load_classifier(self.ensemble)

    def fingerprint(self, predictor: str) -> dict:
        """sha256 of the files a result depends on (classifier of ``predictor`` and the VAE)."""
        files = io.model_files(self.ensemble if predictor == "ensemble" else self.cnn)
        return {
            "classifier": [artifacts.file_sha256(f) for f in files],
            "vae": [artifacts.file_sha256(f) for f in io.vae_paths(self.vae)],
        }

    def score(self, images: np.ndarray, predictor: str, desc: str) -> dict[str, np.ndarray]:
        probs = predictors.predict(
            self.models(predictor), images, predictor=predictor, samples=self.samples, seed=self.seed, desc=desc
        )
        return predictors.scores(probs, predictor=predictor)

    def cached(self, name: str, predictor: str, extra: dict, compute) -> dict[str, np.ndarray]:
        config = {
            "name": name,
            "predictor": predictor,
            "samples": self.samples,
            "seed": self.seed,
            **extra,
            "files": self.fingerprint(predictor),
        }
        cache = Layout.of("mnist", self.results).cache
        return artifacts.cached_table(cache / f"{name}_{predictor}.csv", config, compute)


def record(ctx: Context, stem: str, config: dict, start: float, outputs: list[Path]) -> Path:
    """Sidecar ``RESULTS/<stem>.json`` of one experiment: command, config, versions, wall time."""
    path = ctx.results / f"{stem}.json"
    artifacts.write_json(
        path,
        artifacts.record(
            {"samples": ctx.samples, "seed": ctx.seed, **config}, start, outputs=[p.name for p in outputs]
        ),
    )
    return path


def test_set():
    """The MNIST test split ``(x [10000, 28, 28, 1], y [10000])``."""
    return data.load_mnist("test")


def grid_scores(ctx: Context, predictor: str, size: int, extent: float) -> dict[str, np.ndarray]:
    """Scores of the decoded latent grid: columns z1, z2, pred, confidence and the measures."""

    def compute():
        z, _ = latent.latent_grid(extent, size)
        images = latent.decode(ctx.encoder_decoder[1], z)
        return {"z1": z[:, 0], "z2": z[:, 1], **ctx.score(images, predictor, f"latent grid {size}x{size}, {predictor}")}

    return ctx.cached("latent_grid", predictor, {"size": size, "extent": extent}, compute)


def test_scores(ctx: Context, predictor: str) -> dict[str, np.ndarray]:
    """Scores of the MNIST test set under one predictor (cached)."""

    def compute():
        x, y = test_set()
        return {"label": y, **ctx.score(x, predictor, f"test set, {predictor}")}

    return ctx.cached("test_scores", predictor, {}, compute)


def run_latent(ctx: Context, measure: str, predictor: str, size: int, extent: float) -> list[Path]:
    """Figures 1, 4, 6: one measure, or ``pair`` = MI next to entropy (the paper's figure)."""
    start = time.perf_counter()
    if predictor == "deterministic" and measure not in ("predictive_entropy", "pair"):
        raise ValueError(f"{measure} is not defined for the deterministic model (one network); use predictive_entropy")
    table = grid_scores(ctx, predictor, size, extent)
    x, y = test_set()
    z_test = latent.encode(ctx.encoder_decoder[0], x)
    shape = (size, size)
    count = ctx.samples * (len(ctx.models(predictor)) if predictor == "ensemble" else 1)
    samples = "dropout off" if predictor == "deterministic" else f"T = {count}"
    wanted = ["mutual_information", "predictive_entropy"] if measure == "pair" else [measure]
    if predictor == "deterministic":
        wanted = ["predictive_entropy"]
    panels = [(table[m].reshape(shape), plots.SHORT[m], plots.LABELS[m]) for m in wanted]
    title = f"{MODEL_TITLES[predictor]} ({samples}) on decoded VAE latent grid {size}x{size}"
    out = ctx.results / f"latent_{measure}_{predictor}.png"
    plots.save_figure(plots.latent_maps(panels, extent, z_test, y, title), out)
    record(ctx, out.stem, {"measure": measure, "predictor": predictor, "grid": size, "extent": extent}, start, [out])
    return [out]


def pick_pair(labels: np.ndarray, classes: tuple[int, int]) -> tuple[int, int]:
    """First test images of the two classes (the paper's pair is a 6 and an 8)."""
    return tuple(int(np.flatnonzero(labels == c)[0]) for c in classes)


def run_interpolation(ctx: Context, steps: int, classes: tuple[int, int], predictor: str = "mc") -> list[Path]:
    """Figure 2: latent vs pixel interpolation between one test pair."""
    start = time.perf_counter()
    x, y = test_set()
    a, b = pick_pair(y, classes)
    encoder, decoder = ctx.encoder_decoder
    pixel, latent_path = interpolation.pixel_and_latent_paths(encoder, decoder, x[a], x[b], steps)
    t = np.linspace(0, 1, steps)
    pixel_scores, latent_scores = ctx.score(pixel, predictor, None), ctx.score(latent_path, predictor, None)
    table = {"space": ["pixel"] * steps + ["latent"] * steps, "step": list(range(steps)) * 2, "t": list(t) * 2}
    for m in ("pred", "confidence") + MEASURES:
        table[m] = list(pixel_scores[m]) + list(latent_scores[m])
    artifacts.write_csv(ctx.results / "interpolation.csv", table)
    title = (
        f"{MODEL_TITLES[predictor]} (T = {ctx.samples}): test images #{a} (a {classes[0]}) to #{b} (a {classes[1]}), "
        f"{steps} steps"
    )
    out = ctx.results / "interpolation.png"
    plots.save_figure(plots.interpolation(pixel, latent_path, t, pixel_scores, latent_scores, title), out)
    outputs = [ctx.results / "interpolation.csv", out]
    record(
        ctx,
        "interpolation",
        {"steps": steps, "classes": list(classes), "indices": [a, b], "predictor": predictor},
        start,
        outputs,
    )
    return outputs


def midpoint_scores(ctx: Context, n: int, pair_seed: int, predictor: str = "mc") -> dict[str, dict[str, np.ndarray]]:
    """Scores of the t = 0.5 points of ``n`` random different-class pairs, per space."""
    x, y = test_set()
    pairs = interpolation.different_class_pairs(y, n, pair_seed)

    def compute():
        pixel, latent_mid = interpolation.midpoints(*ctx.encoder_decoder, x, pairs)
        rows = {
            "space": np.r_[np.zeros(n), np.ones(n)],
            "pair": np.r_[np.arange(n), np.arange(n)],
            "index_a": np.r_[pairs[:, 0], pairs[:, 0]],
            "index_b": np.r_[pairs[:, 1], pairs[:, 1]],
        }
        scored = [ctx.score(pixel, predictor, "pixel midpoints"), ctx.score(latent_mid, predictor, "latent midpoints")]
        return {**rows, **{m: np.r_[scored[0][m], scored[1][m]] for m in ("pred", "confidence") + MEASURES}}

    table = ctx.cached("midpoints", predictor, {"n": n, "pair_seed": pair_seed}, compute)
    return {
        space: {k: v[table["space"] == code] for k, v in table.items()}
        for code, space in enumerate(("pixel", "latent"))
    }


def run_midpoints(ctx: Context, n: int, pair_seed: int, predictor: str = "mc") -> tuple[list[Path], dict[str, float]]:
    """Figure 3 and the AUC of each measure for pixel vs latent midpoints."""
    start = time.perf_counter()
    scores = midpoint_scores(ctx, n, pair_seed, predictor)
    table = {"space": ["pixel"] * n + ["latent"] * n}
    for col in ("pair", "index_a", "index_b"):
        table[col] = np.r_[scores["pixel"][col], scores["latent"][col]].astype(int)
    for m in MEASURES:
        table[m] = np.r_[scores["pixel"][m], scores["latent"][m]]
    artifacts.write_csv(ctx.results / "interpolation_midpoints.csv", table)
    aucs = {m: interpolation.separation_auc(scores["pixel"][m], scores["latent"][m]) for m in MEASURES}
    artifacts.write_csv(
        ctx.results / "midpoint_aucs.csv",
        {
            "measure": list(aucs),
            "roc_auc_pixel_vs_latent": list(aucs.values()),
            "predictor": [predictor] * len(aucs),
            "samples": [ctx.samples] * len(aucs),
            "pairs": [n] * len(aucs),
        },
    )
    title = (
        f"{MODEL_TITLES[predictor]} (T = {ctx.samples}) on midpoints of {n} different-class test pairs "
        f"(seed {pair_seed})"
    )
    out = ctx.results / "midpoints.png"
    plots.save_figure(plots.midpoint_histograms(scores, aucs, title), out)
    outputs = [ctx.results / "interpolation_midpoints.csv", ctx.results / "midpoint_aucs.csv", out]
    record(ctx, "midpoints", {"pairs": n, "pair_seed": pair_seed, "predictor": predictor}, start, outputs)
    return outputs, aucs


def run_holes(
    ctx: Context,
    size: int,
    extent: float,
    far_distance: float,
    min_confidence: float,
    mi_quantile: float,
    gallery_size: int = 24,
) -> tuple[list[Path], list[dict]]:
    """Figure 5 and the Figure 6 claim: how much of the far-from-data latent area is a hole,
    for the single dropout model and the ensemble."""
    start = time.perf_counter()
    x_train, _ = data.load_mnist("train")
    z_train = latent.encode(ctx.encoder_decoder[0], x_train)
    z_grid, _ = latent.latent_grid(extent, size)
    distance = latent.distance_to_data(z_grid, z_train)
    rows, panels, outputs, flags = [], [], [], {}
    for predictor in ("mc", "ensemble"):
        grid = grid_scores(ctx, predictor, size, extent)
        mi_threshold = float(np.quantile(test_scores(ctx, predictor)["mutual_information"], mi_quantile))
        far, hole = latent.hole_mask(
            distance,
            grid["confidence"],
            grid["mutual_information"],
            far_distance=far_distance,
            min_confidence=min_confidence,
            mi_threshold=mi_threshold,
        )
        rows.append(
            {
                "predictor": predictor,
                "samples_per_input": len(ctx.models(predictor)) * ctx.samples,
                "grid": size,
                "extent": extent,
                "far_distance": far_distance,
                "min_confidence": min_confidence,
                "mi_quantile": mi_quantile,
                "mi_threshold": mi_threshold,
                "grid_points": len(far),
                "far_points": int(far.sum()),
                "hole_points": int(hole.sum()),
                "hole_share_of_far": float(hole.sum() / max(far.sum(), 1)),
            }
        )
        panels.append(
            (
                far.reshape(size, size),
                hole.reshape(size, size),
                f"{MODEL_TITLES[predictor]}: holes {rows[-1]['hole_share_of_far']:.1%} of far area",
            )
        )
        outputs.append(_hole_gallery(ctx, predictor, grid, hole, gallery_size))
        flags[predictor] = (far, hole)
    artifacts.write_csv(ctx.results / "holes.csv", {k: [r[k] for r in rows] for k in rows[0]})
    # per far grid point, whether each predictor has a hole there: the paired data of the Fig. 6 claim
    far = flags["mc"][0]  # the same for both: distance to the data alone
    artifacts.write_csv(
        ctx.results / "holes_grid.csv",
        {"grid_index": np.flatnonzero(far), **{f"hole_{p}": h[far].astype(int) for p, (_, h) in flags.items()}},
    )
    title = (
        f"Uncertainty holes: > {far_distance} from every encoded training image, max prob >= {min_confidence}, "
        f"MI <= its {mi_quantile:.0%} quantile on test digits"
    )
    plots.save_figure(plots.hole_maps(panels, extent, z_train, title), ctx.results / "holes_map.png")
    outputs = [ctx.results / "holes.csv", ctx.results / "holes_grid.csv", ctx.results / "holes_map.png", *outputs]
    record(
        ctx,
        "holes",
        {
            "grid": size,
            "extent": extent,
            "far_distance": far_distance,
            "min_confidence": min_confidence,
            "mi_quantile": mi_quantile,
        },
        start,
        outputs,
    )
    return outputs, rows


def _hole_gallery(ctx: Context, predictor: str, grid: dict, hole: np.ndarray, count: int) -> Path:
    """Decoded 'garbage' images from random hole points (seeded)."""
    idx = np.flatnonzero(hole)
    rng = np.random.default_rng(ctx.seed)
    idx = np.sort(rng.choice(idx, size=min(count, len(idx)), replace=False)) if len(idx) else idx
    z = np.stack([grid["z1"][idx], grid["z2"][idx]], axis=1)
    images = latent.decode(ctx.encoder_decoder[1], z) if len(idx) else np.zeros((0, 28, 28, 1))
    captions = [
        f"pred {int(grid['pred'][i])} p={grid['confidence'][i]:.2f}\nMI={grid['mutual_information'][i]:.3f}"
        for i in idx
    ]
    title = f"{MODEL_TITLES[predictor]}: decoded latent points far from data where the model is confident with low MI"
    out = ctx.results / f"holes_gallery_{predictor}.png"
    plots.save_figure(plots.gallery(images, captions, title), out)
    return out


def run_variance_vs_mi(ctx: Context, n: int, pair_seed: int, extra_groups: dict | None = None, predictor: str = "mc"):
    """§3.2: softmax variance vs MI on clean test images and midpoints, with Spearman's rho."""
    start = time.perf_counter()
    clean = test_scores(ctx, predictor)
    mids = midpoint_scores(ctx, n, pair_seed, predictor)
    groups = {"clean test": clean, "pixel midpoints": mids["pixel"], "latent midpoints": mids["latent"]}
    groups.update(extra_groups or {})  # e.g. adversarial inputs, once `uncertadv report` has run
    pairs = {name: (g["softmax_variance"], g["mutual_information"]) for name, g in groups.items()}
    rhos = {name: float(spearmanr(v, m).statistic) for name, (v, m) in pairs.items()}
    artifacts.write_csv(
        ctx.results / "variance_vs_mi.csv",
        {
            "group": list(rhos),
            "spearman_rho": list(rhos.values()),
            "n": [len(pairs[g][0]) for g in rhos],
            "predictor": [predictor] * len(rhos),
        },
    )
    title = f"Softmax variance vs MI, {MODEL_TITLES[predictor]} (T = {ctx.samples})"
    plots.save_figure(plots.variance_vs_mi(pairs, rhos, title), ctx.results / "variance_vs_mi.png")
    outputs = [ctx.results / "variance_vs_mi.csv", ctx.results / "variance_vs_mi.png"]
    record(
        ctx,
        "variance_vs_mi",
        {"pairs": n, "pair_seed": pair_seed, "predictor": predictor, "groups": list(groups)},
        start,
        outputs,
    )
    return outputs, rhos
