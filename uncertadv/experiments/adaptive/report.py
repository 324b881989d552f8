"""``uncertadv report --adaptive``: what is left of each detector against the adaptive attacks.

Writes RESULTS/adaptive.{csv,md,json}, adds the per-image rows to scores.csv (attack
``pgd-adaptive`` / ``pgd-adaptive-known``, ``detector_measure`` naming the detector evaded) and,
on MNIST, RESULTS/hole_search.{csv,json}. Every finished detector, attack set and score is reused.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from uncertadv import artifacts, data, metrics
from uncertadv.attacks import AttackConfig
from uncertadv.experiments import attack_sets, own
from uncertadv.experiments.adaptive import hole_search, protocol
from uncertadv.experiments.layout import Layout, ensure_classifiers, eval_seed, set_name
from uncertadv.experiments.table1 import report
from uncertadv.progress import progress_bar

COLUMNS = [
    "attack",
    "eps",
    "predictor",
    "measure",
    "c",
    "n",
    "success_rate",
    "auc",
    "tpr_at_threshold",
    "detector_fpr",
    "evasion_rate",
]
EXTRA_COLUMNS = [
    "threshold",
    "n_negative",
    "n_successful",
    "n_evading",
    "auc_lo",
    "auc_hi",
    "success_rate_lo",
    "success_rate_hi",
    "evasion_rate_lo",
    "evasion_rate_hi",
    "evasion_gain",
    "evasion_gain_lo",
    "evasion_gain_hi",
]
HOLE_COLUMNS = [
    "predictor",
    "measure",
    "c",
    "n",
    "n_successful",
    "success_rate",
    "success_rate_lo",
    "success_rate_hi",
    "median_latent_distance",
    "median_pixel_l2",
    "n_holes",
]


@dataclasses.dataclass(frozen=True)
class AdaptiveConfig:
    layout: Layout
    eps: tuple[float, ...] = (76.0, 128.0)
    predictors: tuple[str, ...] = protocol.PREDICTORS
    measures: tuple[str, ...] = protocol.MEASURES
    n: int = 200
    samples: int = 20
    seed: int = 0
    bootstrap: int = 1000
    force: bool = False
    model: Path | None = None  # your own model file (--model)
    data: dict | None = None  # with --model: the --data options
    iterations: int = 10  # PGD's steps (the protocol's: 10, as Table 1)
    step: float | None = None  # per step, 0-255 units; None: the paper's rule (eps / 10 beyond eps 10)
    hole_search: hole_search.HoleConfig | None = None  # MNIST: the hole search's settings
    holes: bool = True  # MNIST: run the hole search

    def hole_config(self) -> hole_search.HoleConfig:
        """The hole search's settings: N and the seed follow the table's unless given."""
        return self.hole_search or hole_search.HoleConfig(n=self.n, seed=self.seed)

    def recorded(self) -> dict:
        out = dataclasses.asdict(self)
        out["layout"] = {"dataset": self.layout.dataset, "folder": str(self.layout.folder)}
        out["model"] = None if self.model is None else str(self.model)
        return out


def table_row(rows: dict, measure: str, threshold: float, pgd_evaded: np.ndarray, *, bootstrap: int, seed: int) -> dict:
    """The metrics of one (attack, eps, predictor, measure) from its score rows.

    rows: clean, noise and adversarial rows (``kind``); the adversarial ones attack the same source
    images, in the same order, as the PGD rows whose evaded flags are ``pgd_evaded [N]``."""
    adv, clean = rows["kind"] == "adversarial", rows["kind"] == "clean"
    values = rows[measure]
    success = rows["success"][adv] == 1
    flagged = values[adv] > threshold
    evaded = success & ~flagged
    n = int(adv.sum())
    auc_lo, auc_hi = metrics.bootstrap_auc(values[adv], values[~adv], rounds=bootstrap, seed=seed)
    gain = metrics.paired_bootstrap_mean_difference(evaded, pgd_evaded, rounds=bootstrap, seed=seed)
    return {
        "n": n,
        "success_rate": float(success.mean()),
        "auc": metrics.roc_auc(values[adv], values[~adv]),
        "tpr_at_threshold": float(flagged.mean()),
        "detector_fpr": float(np.mean(values[clean] > threshold)),
        "evasion_rate": float(evaded.mean()),
        "threshold": threshold,
        "n_negative": int((~adv).sum()),
        "n_successful": int(success.sum()),
        "n_evading": int(evaded.sum()),
        "auc_lo": auc_lo,
        "auc_hi": auc_hi,
        **dict(zip(("success_rate_lo", "success_rate_hi"), metrics.wilson_interval(int(success.sum()), n))),
        **dict(zip(("evasion_rate_lo", "evasion_rate_hi"), metrics.wilson_interval(int(evaded.sum()), n))),
        **dict(zip(("evasion_gain", "evasion_gain_lo", "evasion_gain_hi"), gain)),
    }


def evaded(rows: dict, measure: str, threshold: float) -> np.ndarray:
    """``[N]`` bool: the adversarial rows that succeed and are not flagged."""
    adv = rows["kind"] == "adversarial"
    return (rows["success"][adv] == 1) & (rows[measure][adv] <= threshold)


def _inputs(cfg: AdaptiveConfig):
    """``({predictor: (models, files)}, data options, {predictor: (x, y)})``."""
    if cfg.model is not None:
        models = own.classifiers(cfg.model, cfg.predictors, cfg.data.get("from_logits", False))
        loaded = {p: own.load(cfg.data, models[p][0], p, cfg.samples, eval_seed(cfg.seed)) for p in cfg.predictors}
        return models, cfg.data, loaded
    models, options = ensure_classifiers(cfg.layout, cfg.predictors)
    return models, options, dict.fromkeys(cfg.predictors, data.load(cfg.layout.dataset, "test", **options))


def _fit(cfg: AdaptiveConfig, models: dict, options: dict | None, loaded: dict) -> dict:
    """The protocol's detectors, ``{(predictor, measure): Detector}`` (fitted, or reused from their files)."""
    layout, detectors = cfg.layout, {}
    for predictor in cfg.predictors:
        x, y = loaded[predictor]
        fitted = protocol.fit_detectors(
            layout,
            models[predictor][0],
            x,
            y,
            predictor=predictor,
            measures=cfg.measures,
            n=cfg.n,
            samples=cfg.samples,
            seed=cfg.seed,
            from_logits=(options or {}).get("from_logits", False),
            pixel_max=(options or {}).get("pixel_max", 1.0) if cfg.model is not None else 1.0,
            model_file=cfg.model or layout.classifier(predictor),
            force=cfg.force,
        )
        detectors.update({(predictor, m): d for m, d in fitted.items()})
    return detectors


def run(cfg: AdaptiveConfig) -> tuple[list[dict], list[Path]]:
    """Detectors, attack sets, scores, then adaptive.{csv,md,json} (and hole_search.* on MNIST)."""
    start = time.perf_counter()
    layout = cfg.layout
    models, options, loaded = _inputs(cfg)
    detectors = _fit(cfg, models, options, loaded)
    settings = [(e, p) for e in cfg.eps for p in cfg.predictors]
    table, groups, records = [], [], {}
    pixel_max = (options or {}).get("pixel_max", 1.0) if cfg.model is not None else 1.0
    desc = f"adaptive attacks ({len(settings)} x {len(cfg.measures) * 2} sets)"
    for eps, predictor in progress_bar(settings, desc=desc, total=len(settings)):
        member_models, files = models[predictor]
        x, y = loaded[predictor]
        base = AttackConfig(
            method="pgd",
            eps=eps,
            predictor=predictor,
            samples=cfg.samples,
            seed=cfg.seed,
            pixel_max=pixel_max,
            iterations=cfg.iterations,
            step=cfg.step,
        )
        model_file = cfg.model or layout.classifier(predictor)
        build = dict(n=cfg.n, layout=layout, model=model_file, data_options=options)
        records[set_name("pgd", eps, predictor)] = attack_sets.build(
            member_models, files, x, y, base, force=cfg.force, **build
        )
        pgd_rows = attack_sets.cached_scores(layout, set_name("pgd", eps, predictor), member_models, x, y)
        groups.append(report.long_rows(("pgd", eps, predictor, ""), pgd_rows))
        for measure in cfg.measures:
            detector = detectors[(predictor, measure)]
            baseline = evaded(pgd_rows, measure, detector.threshold)
            boot = dict(bootstrap=cfg.bootstrap, seed=cfg.seed)
            table.append(
                {
                    "attack": "pgd",
                    "eps": eps,
                    "predictor": predictor,
                    "measure": measure,
                    "c": None,
                    **table_row(pgd_rows, measure, detector.threshold, baseline, **boot),
                }
            )
            for method in protocol.ADAPTIVE_METHODS:
                stem = protocol.adaptive_name(method, eps, predictor, measure)
                records[stem] = protocol.build(
                    member_models, files, x, y, base, detector, method, force=cfg.force, **build
                )
                rows = protocol.scores(layout, stem, member_models, x, y)
                groups.append(report.long_rows((method, eps, predictor, measure), rows))
                table.append(
                    {
                        "attack": method,
                        "eps": eps,
                        "predictor": predictor,
                        "measure": measure,
                        "c": records[stem]["c"],
                        **table_row(rows, measure, detector.threshold, baseline, **boot),
                    }
                )
    searched = cfg.holes and layout.dataset == "mnist" and cfg.model is None
    holes = _hole_search(cfg, detectors, loaded) if searched else None
    return table, _write(cfg, table, groups, records, holes, start)


def _hole_search(cfg: AdaptiveConfig, detectors: dict, loaded: dict) -> list[dict]:
    config = cfg.hole_config()
    rows = []
    for (predictor, measure), detector in progress_bar(list(detectors.items()), desc="hole search"):
        x, y = loaded[predictor]
        record = hole_search.build(cfg.layout, detector, x, y, config, cfg.seed, cfg.n, force=cfg.force)
        with np.load(hole_search.path(cfg.layout, predictor, measure), allow_pickle=False) as npz:
            result = {k: npz[k] for k in npz.files}
        rows.append(hole_search.row(result, predictor, measure, record["c"]))
    return rows


def _write(
    cfg: AdaptiveConfig, table: list[dict], groups: list[dict], records: dict, holes: list[dict] | None, start: float
) -> list[Path]:
    folder = cfg.layout.folder
    report.write_scores(cfg.layout.scores, groups, start)
    columns = COLUMNS + EXTRA_COLUMNS
    artifacts.write_csv(folder / "adaptive.csv", {c: [r[c] for r in table] for c in columns})
    outputs = [cfg.layout.scores, folder / "adaptive.csv", folder / "adaptive.md", folder / "adaptive.json"]
    if holes is not None:
        artifacts.write_csv(folder / "hole_search.csv", {c: [r[c] for r in holes] for c in HOLE_COLUMNS})
        config = dataclasses.asdict(cfg.hole_config())
        artifacts.write_json(
            folder / "hole_search.json",
            artifacts.record(
                {**config, "min_confidence": hole_search.MIN_CONFIDENCE, "c_grid": list(protocol.C_GRID)},
                start,
                outputs=["hole_search.csv"],
            ),
        )
        outputs += [folder / "hole_search.csv", folder / "hole_search.json"]
    # the markdown from the CSVs as stored, so that it re-renders from them alone, cell for cell
    artifacts.write_text(folder / "adaptive.md", markdown(cfg, *tables_from_csv(folder)))
    sets = {
        k: {key: r.get(key) for key in ("c", "calibration_evasion_rates", "success_rate", "wall_seconds")}
        for k, r in records.items()
    }
    written = ["scores.csv", "scores.json", "adaptive.csv", "adaptive.md"]
    artifacts.write_json(folder / "adaptive.json", artifacts.record(cfg.recorded(), start, attack_sets=sets,
                                                                   outputs=written))  # fmt: skip
    return outputs


def recorded_config(layout: Layout) -> AdaptiveConfig:
    """The AdaptiveConfig that ``adaptive.json`` recorded (for rendering: no model is loaded)."""
    recorded = artifacts.read_json(layout.folder / "adaptive.json")["config"]
    fields = {f.name for f in dataclasses.fields(AdaptiveConfig)} - {"layout", "model", "hole_search"}
    values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in recorded.items() if k in fields}
    holes = recorded.get("hole_search")
    return AdaptiveConfig(layout=layout, hole_search=None if holes is None else hole_search.HoleConfig(**holes),
                          **values)  # fmt: skip


def tables_from_csv(folder: Path) -> tuple[list[dict], list[dict] | None]:
    """adaptive.csv's rows and hole_search.csv's (None without one), as dicts with counts as ints."""

    def rows(path: Path, counts: tuple[str, ...]) -> list[dict]:
        cols = artifacts.read_table(path)
        n = len(next(iter(cols.values())))
        return [{k: (int(v[i]) if k in counts else v[i]) for k, v in cols.items()} for i in range(n)]

    table = rows(folder / "adaptive.csv", ("n", "n_negative", "n_successful", "n_evading"))
    holes_csv = folder / "hole_search.csv"
    return table, (rows(holes_csv, ("n", "n_successful", "n_holes")) if holes_csv.is_file() else None)


def rendered_markdown(layout: Layout) -> str:
    """adaptive.md from the folder's adaptive.csv, hole_search.csv and adaptive.json alone."""
    return markdown(recorded_config(layout), *tables_from_csv(layout.folder))


def _fmt(value, digits: int = 3) -> str:
    return "n/a" if _missing(value) else f"{value:.{digits}f}"


def _missing(value) -> bool:
    return value is None or (isinstance(value, (float, np.floating)) and np.isnan(value))


def _steps(cfg: AdaptiveConfig) -> str:
    """The PGD step per budget, as the attacks take it (the paper's rule unless --step is given)."""
    steps = [AttackConfig(method="pgd", eps=e, step=cfg.step).step_size for e in cfg.eps]
    return ", ".join(f"{s:g} at eps {e:g}" for s, e in zip(steps, cfg.eps))


def markdown(cfg: AdaptiveConfig, table: list[dict], holes: list[dict] | None) -> str:
    """adaptive.md: the table with its intervals, how it was made, and the hole search."""
    lines = [
        f"# Adaptive attacks on {cfg.layout.dataset}: what is left of each detector",
        "",
        f"Detectors: one per predictor and measure, threshold at {protocol.TARGET_FPR:.0%} FPR on "
        f"{protocol.N_FIT} clean test images that no attack set uses; they judge with the evaluator's networks "
        f"(seed {eval_seed(cfg.seed)}, T = {cfg.samples} per network). detector FPR: their false-positive rate on "
        f"the {cfg.n} clean evaluation images. Attacks: L-infinity PGD, {cfg.iterations} iterations "
        f"(step {_steps(cfg)}), from the same random "
        "start (eps in 0-255 units). pgd ignores the detector; pgd-adaptive maximises the loss of the MC-mean "
        "predictive minus c * max(0, U/τ - 1) with fresh networks at every step; pgd-adaptive-known does the same "
        "on the detector's own networks (it knows the seed). c is chosen from "
        f"{', '.join(f'{c:g}' for c in protocol.C_GRID)} by the evasion rate on {protocol.N_CALIBRATION} other "
        "clean test images, judged by the detector: the attacker is granted its verdicts on those images "
        "(calibration rates in adaptive.json).",
        "",
        f"N = {cfg.n} adversarial images per row, the same source images in every row of one predictor. "
        "success: correct when clean, wrong after the attack. AUC: adversarial vs the clean and noise negatives "
        "of the PGD set of the same eps and predictor (Table 1's), with a bootstrap 95% interval. TPR: share "
        "flagged at the detector's threshold. evasion: successful and not flagged (Wilson 95% interval). "
        "gain vs pgd: evasion minus pgd's evasion on the same images (paired bootstrap 95% interval; * when it "
        "excludes 0).",
        "",
        "| attack | eps | predictor | measure | c | success | AUC [95% CI] | TPR at τ | detector FPR "
        "| evasion [95% CI] | gain vs pgd [95% CI] |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table:
        gain = (
            ""
            if r["attack"] == "pgd"
            else (
                f"{r['evasion_gain']:+.3f} [{r['evasion_gain_lo']:+.3f}, {r['evasion_gain_hi']:+.3f}]"
                + (" *" if r["evasion_gain_lo"] > 0 or r["evasion_gain_hi"] < 0 else "")
            )
        )
        lines.append(
            "| "
            + " | ".join(
                [
                    r["attack"],
                    f"{r['eps']:g}",
                    r["predictor"],
                    r["measure"],
                    "n/a" if _missing(r["c"]) else f"{r['c']:g}",
                    _fmt(r["success_rate"]),
                    f"{_fmt(r['auc'])} [{_fmt(r['auc_lo'], 2)}, {_fmt(r['auc_hi'], 2)}]",
                    _fmt(r["tpr_at_threshold"]),
                    _fmt(r["detector_fpr"]),
                    f"{_fmt(r['evasion_rate'])} [{_fmt(r['evasion_rate_lo'], 2)}, {_fmt(r['evasion_rate_hi'], 2)}]",
                    gain,
                ]
            )
            + " |"
        )
    if holes is not None:
        config = cfg.hole_config()
        lines += [
            "",
            "## Hole search (MNIST)",
            "",
            f"For each of {config.n} test images the predictor gets right, target (label + 1) mod 10; "
            f"{config.steps} normalised-gradient steps of {config.step_size:g} in the VAE's 2-D latent space on "
            "log p(target) - c * max(0, U/τ - 1), fresh networks per step, within a latent radius of "
            f"{config.radius:g} of the image's encoding. Success: p(target) >= {hole_search.MIN_CONFIDENCE} "
            "and U < τ under the detector's networks. Medians over the successful searches; pixel L2 from the "
            "decoding of the source's encoding. A success is not necessarily a hole: the radius can reach the "
            "neighbouring class clusters, whose decodings are ordinary digits of the target class. n holes: the "
            f"successes farther than {hole_search.FAR_DISTANCE:g} from every encoded training image (Figure 5's "
            "definition of far from the data).",
            "",
            "| predictor | measure | c | success [95% CI] | n successful | median latent distance | median pixel L2 "
            "| n holes |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in holes:
            lines.append(
                f"| {r['predictor']} | {r['measure']} | {r['c']:g} | {_fmt(r['success_rate'])} "
                f"[{_fmt(r['success_rate_lo'], 2)}, {_fmt(r['success_rate_hi'], 2)}] | {r['n_successful']} of "
                f"{r['n']} | {_fmt(r['median_latent_distance'], 2)} | {_fmt(r['median_pixel_l2'], 2)} "
                f"| {r['n_holes']} of {r['n_successful']} |"
            )
    return "\n".join(lines) + "\n"
