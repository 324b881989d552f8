"""``uncertadv report --adaptive``: what is left of each detector against the converged suite (``suite``).

Writes RESULTS/adaptive.{csv,md,json}, the per-image outcomes of the PGD and worst-case rows
(adaptive_images.csv), the attacker's evasion against iterations (adaptive_curves.csv) and, on MNIST,
the latent-grid hole count (hole_grid.csv). Every detector fit, calibration and attack set is reused.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from uncertadv import artifacts, data, metrics
from uncertadv.detector import Detector, thresholds
from uncertadv.experiments import attack_sets, own
from uncertadv.experiments.adaptive import hole_search, suite
from uncertadv.experiments.layout import Layout, ensure_classifiers
from uncertadv.progress import progress_bar

AdaptiveConfig = suite.SuiteConfig  # the CLI's name for it

COLUMNS = ["attack", "attacker", "eps", "predictor", "measure", "tail", "objective", "c", "kappa", "margin",
           "restarts", "steps", "n", "n_attacked", "success_rate", "auc", "tpr_at_threshold", "detector_fpr",
           "evasion_rate"]  # fmt: skip
EXTRA_COLUMNS = ["threshold", "lower_threshold", "n_negative", "n_successful", "n_evading", "auc_lo", "auc_hi",
                 "success_rate_lo", "success_rate_hi", "evasion_rate_lo", "evasion_rate_hi", "evasion_fpr01",
                 "evasion_fpr10", "evasion_gain", "evasion_gain_lo", "evasion_gain_hi",
                 "calibration_evasion"]  # fmt: skip
CURVE_EVERY = 5  # iterates between the points of adaptive_curves.csv


def evaluated(rows: dict, measure: str, fit_scores: np.ndarray, tail: str) -> dict[str, np.ndarray]:
    """The evaluator's verdicts on the adversarial rows ``[N]``: success, flagged at 5% FPR, evaded at
    each of ``suite.FPRS`` (``evaded_<fpr>``), with the tail's conformal thresholds from ``fit_scores``."""
    adv = rows["kind"] == "adversarial"
    out = {"success": np.asarray(rows["success"], dtype=float)[adv] == 1}
    values = np.asarray(rows[measure], dtype=float)[adv]
    for fpr in suite.FPRS:
        try:
            upper, lower = thresholds(fit_scores, fpr, "conformal", tail)
        except ValueError:  # too few fit images for this rate (only in small test runs): not reported
            if fpr == suite.TARGET_FPR:
                raise
            out[f"evaded_{fpr:g}"] = np.full(len(values), np.nan)
            continue
        inside = np.ones(len(values), bool)
        if upper is not None:
            inside &= values <= upper
        if lower is not None:
            inside &= values >= lower
        out[f"evaded_{fpr:g}"] = out["success"] & inside
        if fpr == suite.TARGET_FPR:
            out["flagged"] = ~inside
    return out


def table_row(rows: dict, measure: str, fit_scores: np.ndarray, tail: str, pgd_evaded: np.ndarray, *,
              bootstrap: int, seed: int) -> dict:  # fmt: skip
    """The metrics of one row from its score rows (clean, noise and adversarial ``kind``); the adversarial
    rows attack the same source images, in order, as the PGD rows whose evaded flags are ``pgd_evaded``."""
    adv, clean = rows["kind"] == "adversarial", rows["kind"] == "clean"
    values = np.asarray(rows[measure], dtype=float)
    verdict = evaluated(rows, measure, fit_scores, tail)
    upper, lower = thresholds(fit_scores, suite.TARGET_FPR, "conformal", tail)
    clean_values = values[clean]
    clean_flagged = np.zeros(len(clean_values), bool)
    if upper is not None:
        clean_flagged |= clean_values > upper
    if lower is not None:
        clean_flagged |= clean_values < lower
    success, evaded = verdict["success"], verdict[f"evaded_{suite.TARGET_FPR:g}"]
    n = int(adv.sum())
    auc_lo, auc_hi = metrics.bootstrap_auc(values[adv], values[~adv], rounds=bootstrap, seed=seed)
    gain = metrics.paired_bootstrap_mean_difference(evaded, pgd_evaded, rounds=bootstrap, seed=seed)
    return {
        "n": n,
        "success_rate": float(success.mean()),
        "auc": metrics.roc_auc(values[adv], values[~adv]),
        "tpr_at_threshold": float(verdict["flagged"].mean()),
        "detector_fpr": float(clean_flagged.mean()),
        "evasion_rate": float(evaded.mean()),
        "threshold": upper,
        "lower_threshold": lower,
        "n_negative": int((~adv).sum()),
        "n_successful": int(success.sum()),
        "n_evading": int(evaded.sum()),
        "auc_lo": auc_lo,
        "auc_hi": auc_hi,
        **dict(zip(("success_rate_lo", "success_rate_hi"), metrics.wilson_interval(int(success.sum()), n))),
        **dict(zip(("evasion_rate_lo", "evasion_rate_hi"), metrics.wilson_interval(int(evaded.sum()), n))),
        "evasion_fpr01": float(np.mean(verdict["evaded_0.01"])),
        "evasion_fpr10": float(np.mean(verdict["evaded_0.1"])),
        **dict(zip(("evasion_gain", "evasion_gain_lo", "evasion_gain_hi"), gain)),
    }


def _inputs(cfg: suite.SuiteConfig):
    """``({predictor: (models, files)}, data options, {predictor: (x, y)})``."""
    if cfg.model is not None:
        models = own.classifiers(cfg.model, cfg.predictors, cfg.data.get("from_logits", False))
        loaded = {p: own.load(cfg.data, models[p][0], p, cfg.samples, cfg.seed + 1_000_000) for p in cfg.predictors}
        return models, cfg.data, loaded
    models, options = ensure_classifiers(cfg.layout, cfg.predictors)
    return models, options, dict.fromkeys(cfg.predictors, data.load(cfg.layout.dataset, "test", **options))


def _setting(cfg: suite.SuiteConfig, eps: float, predictor: str, models: dict, options: dict | None,
             loaded: dict, pixel_max: float) -> suite.Setting:  # fmt: skip
    """The PGD set of (eps, predictor) (built if missing), its scores and the detectors' fit scores."""
    layout = cfg.layout
    member_models, files = models[predictor]
    x, y = loaded[predictor]
    base = cfg.pgd(eps, predictor, pixel_max)
    pgd_stem = suite.stem("pgd", eps, predictor)
    model_file = cfg.model or layout.classifier(predictor)
    attack_sets.build(member_models, files, x, y, base, n=cfg.n, layout=layout, model=model_file,
                      data_options=options, force=cfg.force, stem=pgd_stem)  # fmt: skip
    arrays, record = attack_sets.load(layout.attack_set(pgd_stem))
    rows = attack_sets.cached_scores(layout, pgd_stem, member_models, x, y)
    fit = suite.fit_scores(cfg, layout, models[predictor], x, y, predictor, options or {}, pixel_max)
    return suite.Setting(eps=eps, predictor=predictor, models=member_models, x=x, y=y, options=options or {},
                         pixel_max=pixel_max, layout=layout, pgd_npz=layout.attack_set(pgd_stem), pgd_record=record,
                         pgd_arrays=arrays, pgd_rows=rows, fit_scores=fit)  # fmt: skip


def _save_detector(layout: Layout, det: Detector, model_file: Path) -> Path:
    """The suite's detector at 5% FPR as a file a user can load (rewritten only when its threshold changes)."""
    path = layout.folder / "detectors" / f"{det.predictor}_{det.measure}_{det.tail}.json"
    if path.is_file():
        old = artifacts.read_json(path)
        if old.get("threshold") == det.threshold and old.get("lower_threshold") == det.lower_threshold:
            return path
    det.save(path, model_file=model_file)
    return path


def run(cfg: suite.SuiteConfig) -> tuple[list[dict], list[Path]]:
    """Detectors, calibrations, cascades, then the files in the module doc."""
    start = time.perf_counter()
    layout = cfg.layout
    models, options, loaded = _inputs(cfg)
    pixel_max = (options or {}).get("pixel_max", 1.0) if cfg.model is not None else 1.0
    table, images, curves, notes, calibrations = [], [], [], [], {}
    combos = [(e, p) for e in cfg.eps for p in cfg.predictors]
    for eps, predictor in progress_bar(combos, desc="adaptive suite", total=len(combos)):
        setting = _setting(cfg, eps, predictor, models, options, loaded, pixel_max)
        best: dict[str, list[str]] = {}
        measures = sorted(cfg.measures_of(predictor), key=lambda m: m != suite.FULL_MEASURE)  # MI first
        for measure in measures:
            for tail in cfg.tails:
                det = suite.detector(setting, measure, tail)
                _save_detector(layout, det, cfg.model or layout.classifier(predictor))
                fit = setting.fit_scores[measure]
                key = dict(eps=eps, predictor=predictor, measure=measure, tail=tail)
                pgd_verdict = evaluated(setting.pgd_rows, measure, fit, tail)
                pgd_evaded = pgd_verdict[f"evaded_{suite.TARGET_FPR:g}"]
                boot = dict(bootstrap=cfg.bootstrap, seed=cfg.seed)
                table.append({"attack": "pgd", "attacker": "", **key, "objective": "ce", "c": None, "kappa": None,
                              "margin": None, "restarts": 0, "steps": cfg.steps, "n_attacked": cfg.n,
                              "calibration_evasion": None,
                              **table_row(setting.pgd_rows, measure, fit, tail, pgd_evaded, **boot)})  # fmt: skip
                images.append(_image_rows(key, "", setting, setting.pgd_rows, measure, pgd_verdict, None))
                if cfg.skip_evaded and pgd_evaded.sum() == pgd_verdict["success"].sum():
                    notes.append({**key, "skipped": "pgd already evades wherever it succeeds"})
                    continue
                names = best.get(tail, list(suite.OBJECTIVES)) if measure != suite.FULL_MEASURE else suite.OBJECTIVES
                calibrated = {name: suite.calibrate(cfg, setting, det, name) for name in names}
                calibrations[_label(key)] = {
                    n: {"setting": r["setting"], "rates": r["rates"]} for n, r in calibrated.items()
                }
                if measure == suite.FULL_MEASURE:  # the objectives the other measures get, by calibration evasion
                    ranked = sorted(names, key=lambda n: (-calibrated[n]["evasion"], names.index(n)))
                    best[tail] = [n for n in suite.OBJECTIVES if n in ranked[: suite.N_BEST]]
                for attacker in cfg.attackers:
                    stages = suite.cascade(cfg, setting, det, attacker, [(n, calibrated[n]["setting"]) for n in names])
                    for name, chosen_images, _, ran, arrays in stages[1:]:
                        rows = suite.judge_rows(setting, chosen_images)
                        options_used = calibrated[name]["setting"]
                        row = {"attacker": attacker, **key, "c": options_used.get("c"),
                               "kappa": options_used.get("kappa"), "margin": options_used.get("margin"),
                               "restarts": cfg.restarts, "steps": cfg.steps, "n_attacked": int(ran.sum()),
                               "calibration_evasion": calibrated[name]["evasion"],
                               **table_row(rows, measure, fit, tail, pgd_evaded, **boot)}  # fmt: skip
                        table.append({"attack": "cascade", "objective": name, **row})
                        curves += _curve(key, attacker, name, arrays, cfg.steps)
                    final = {**table[-1], "attack": "worst-case", "objective": "all", "c": None, "kappa": None,
                             "margin": None, "calibration_evasion": None}  # fmt: skip
                    table.append(final)
                    verdict = evaluated(rows, measure, fit, tail)
                    images.append(_image_rows(key, attacker, setting, rows, measure, verdict, stages[-1][2]))
                    _save_worst_case(layout, key, attacker, setting.index, stages[-1][1], stages[-1][2], verdict)
    checks = sanity(cfg, models, options, loaded, pixel_max, calibrations) if cfg.sanity else None
    holes = None
    if cfg.holes and layout.dataset == "mnist" and cfg.model is None:
        holes = hole_search.grid_holes(cfg, models, loaded)
    return table, _write(cfg, table, images, curves, notes, calibrations, holes, checks, start)


def _save_worst_case(layout: Layout, key: dict, attacker: str, index: np.ndarray, images: np.ndarray,
                     candidate: np.ndarray, verdict: dict) -> None:  # fmt: skip
    """The assembled worst-case images of one row, for the gallery (attacks/, not committed)."""
    path = layout.attack_set(suite.stem("worst-case", attacker, key["eps"], key["predictor"], key["measure"],
                                        key["tail"]))  # fmt: skip
    with artifacts.atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, adversarial_index=index, x_adv=images, candidate=candidate,
                                success=verdict["success"], evaded=verdict[f"evaded_{suite.TARGET_FPR:g}"])  # fmt: skip


SANITY_N = 200  # images per sanity check
SANITY_EPS = 255.0


def sanity(cfg: suite.SuiteConfig, models: dict, options: dict | None, loaded: dict, pixel_max: float,
           calibrations: dict) -> list[dict]:  # fmt: skip
    """Checks that the attack is strong where it must be, mc predictor, MI, the known attacker's cascade
    with the main run's calibrated settings (largest eps), on SANITY_N images: (1) at the largest eps
    against thresholds drawn in (upper: τ at the clean median; two-sided: the clean 25th and 75th
    percentiles), (2) at eps 255 against the 5% detector. Each passes when evasion >= success - 0.01."""
    eps_max, out = max(cfg.eps), []
    for tail in cfg.tails:
        found = calibrations.get(_label(dict(eps=eps_max, predictor="mc", measure=suite.FULL_MEASURE, tail=tail)))
        if found is None or "mc" not in cfg.predictors:
            continue
        objectives = [(name, found[name]["setting"]) for name in suite.OBJECTIVES if name in found]
        for check, eps in (("thresholds drawn in", eps_max), ("eps 255", SANITY_EPS)):
            setting = _first(_setting(cfg, eps, "mc", models, options, loaded, pixel_max), SANITY_N)
            det = suite.detector(setting, suite.FULL_MEASURE, tail)
            fit = setting.fit_scores[suite.FULL_MEASURE]
            if check == "thresholds drawn in":
                det.threshold = float(np.quantile(fit, 0.75 if tail == "two-sided" else 0.5))
                det.lower_threshold = float(np.quantile(fit, 0.25)) if tail == "two-sided" else None
            stages = suite.cascade(cfg, setting, det, "known", objectives, tag=f"sanity-{check.split()[0]}-")
            rows = suite.judge_rows(setting, stages[-1][1])
            adv = rows["kind"] == "adversarial"
            success = np.asarray(rows["success"], dtype=float)[adv] == 1
            evaded = success & ~det.flags(np.asarray(rows[suite.FULL_MEASURE], dtype=float)[adv])
            out.append({"check": check, "eps": eps, "tail": tail, "threshold": det.threshold,
                        "lower_threshold": det.lower_threshold, "n": int(adv.sum()),
                        "success_rate": float(success.mean()), "evasion_rate": float(evaded.mean()),
                        "passes": int(evaded.mean() >= success.mean() - 0.01)})  # fmt: skip
    return out


def _first(setting: suite.Setting, n: int) -> suite.Setting:
    """The setting with its first ``n`` adversarial source images only (the negatives stay whole)."""
    arrays = dict(setting.pgd_arrays)
    for key in ("adversarial_index", "labels", "x_adv", "success", "label_changed"):
        arrays[key] = arrays[key][:n]
    return dataclasses.replace(setting, pgd_arrays=arrays)


def _label(key: dict) -> str:
    return f"eps{key['eps']:g}_{key['predictor']}_{key['measure']}_{key['tail']}"


def _image_rows(key: dict, attacker: str, setting: suite.Setting, rows: dict, measure: str, verdict: dict,
                chosen: np.ndarray | None) -> dict:  # fmt: skip
    """The per-image outcomes of one row ``[N]`` each (adaptive_images.csv)."""
    adv = rows["kind"] == "adversarial"
    n = int(adv.sum())
    return {**{k: [v] * n for k, v in key.items()}, "attacker": [attacker] * n, "index": setting.index,
            "success": verdict["success"].astype(int), "value": np.asarray(rows[measure], dtype=float)[adv],
            **{f"evaded_fpr{round(100 * f):02d}": verdict[f"evaded_{f:g}"].astype(float) for f in suite.FPRS},
            "candidate": np.zeros(n, int) if chosen is None else chosen}  # fmt: skip


def _curve(key: dict, attacker: str, objective: str, arrays: dict, steps: int) -> list[dict]:
    """Evasion by the attacker's estimate against iterates (across restarts), every CURVE_EVERY."""
    first, n = arrays["first"], len(arrays["first"])
    total = int(arrays["restarts"].max(initial=1)) * (steps + 1)
    return [{**key, "attacker": attacker, "objective": objective, "iterate": k, "n_attacked": n,
             "n_evading": int(((first >= 0) & (first <= k)).sum())}
            for k in list(range(0, total, CURVE_EVERY)) + [total - 1]]  # fmt: skip


def pooled_gain(images: list[dict], attacker: str, *, bootstrap: int, seed: int) -> dict:
    """The worst case's gain in evasion (5% FPR) over PGD, averaged over the rows of ``attacker`` per source
    image, with a bootstrap over source images: ``{"gain", "lo", "hi", "rows", "images"}``."""
    pgd = {_row_key(r): r for r in images if r["attacker"][0] == ""}
    gains = []
    for r in images:
        if r["attacker"][0] != attacker or len(r["index"]) == 0:
            continue
        base = pgd[_row_key(r)]
        gains.append(np.asarray(r["evaded_fpr05"], float) - np.asarray(base["evaded_fpr05"], float))
    if not gains:
        return {"gain": None, "lo": None, "hi": None, "rows": 0, "images": 0}
    per_image = np.mean(gains, axis=0)  # the rows share their source images (one draw per N and seed)
    mean, lo, hi = metrics.paired_bootstrap_mean_difference(per_image, np.zeros_like(per_image), rounds=bootstrap,
                                                            seed=seed)  # fmt: skip
    return {"gain": mean, "lo": lo, "hi": hi, "rows": len(gains), "images": len(per_image)}


def _row_key(r: dict) -> tuple:
    return tuple(r[k][0] for k in ("eps", "predictor", "measure", "tail"))


def _write(cfg, table, images, curves, notes, calibrations, holes, checks, start) -> list[Path]:
    folder = cfg.layout.folder
    columns = COLUMNS + EXTRA_COLUMNS
    artifacts.write_csv(folder / "adaptive.csv", {c: [r.get(c) for r in table] for c in columns})
    stacked = {k: np.concatenate([np.asarray(r[k]) for r in images]) for k in images[0]} if images else {}
    artifacts.write_csv(folder / "adaptive_images.csv", stacked)
    if curves:
        artifacts.write_csv(folder / "adaptive_curves.csv", {k: [r[k] for r in curves] for k in curves[0]})
    outputs = [folder / "adaptive.csv", folder / "adaptive_images.csv", folder / "adaptive_curves.csv"]
    if holes is not None:
        artifacts.write_csv(folder / "hole_grid.csv", {k: [r[k] for r in holes] for k in holes[0]})
        outputs.append(folder / "hole_grid.csv")
    if checks:
        artifacts.write_csv(folder / "adaptive_sanity.csv", {k: [r[k] for r in checks] for k in checks[0]})
        outputs.append(folder / "adaptive_sanity.csv")
    pooled = {a: pooled_gain(images, a, bootstrap=cfg.bootstrap, seed=cfg.seed) for a in cfg.attackers}
    record = artifacts.record(cfg.recorded(), start, pooled_gain=pooled, skipped=notes, calibration=calibrations,
                              grids={o: suite.grid(o) for o in suite.OBJECTIVES},
                              outputs=[p.name for p in outputs] + ["adaptive.md"])  # fmt: skip
    artifacts.write_json(folder / "adaptive.json", record)
    artifacts.write_text(folder / "adaptive.md", rendered_markdown(cfg.layout))
    return [*outputs, folder / "adaptive.md", folder / "adaptive.json"]


def tables_from_csv(folder: Path) -> tuple[list[dict], list[dict] | None]:
    """adaptive.csv's rows and hole_grid.csv's (None without one), as dicts with counts as ints."""

    def rows(path: Path, counts: tuple[str, ...]) -> list[dict]:
        cols = artifacts.read_table(path)
        n = len(next(iter(cols.values())))
        return [{k: (int(v[i]) if k in counts else v[i]) for k, v in cols.items()} for i in range(n)]

    table = rows(folder / "adaptive.csv", ("n", "n_attacked", "n_negative", "n_successful", "n_evading", "restarts",
                                           "steps"))  # fmt: skip
    holes_csv = folder / "hole_grid.csv"
    return table, (rows(holes_csv, ("n_points", "n_far", "n_holes")) if holes_csv.is_file() else None)


def rendered_markdown(layout: Layout) -> str:
    """adaptive.md from the folder's adaptive.csv, hole_grid.csv and adaptive.json alone (the files of the
    protocol before the suite by its own renderer, ``legacy``)."""
    from uncertadv.experiments.adaptive import legacy

    if legacy.is_legacy(layout):
        return legacy.rendered_markdown(layout)
    record = artifacts.read_json(layout.folder / "adaptive.json")
    return markdown(layout.dataset, record, *tables_from_csv(layout.folder), layout_folder=layout.folder)


def _fmt(value, digits: int = 3) -> str:
    return "n/a" if _missing(value) else f"{value:.{digits}f}"


def _missing(value) -> bool:
    return value is None or (isinstance(value, (float, np.floating)) and np.isnan(value)) or value == ""


def _interval(r: dict, key: str, digits: int = 2) -> str:
    return f"[{_fmt(r[key + '_lo'], digits)}, {_fmt(r[key + '_hi'], digits)}]"


def markdown(dataset: str, record: dict, table: list[dict], holes: list[dict] | None,
             layout_folder: Path | None = None) -> str:  # fmt: skip
    """adaptive.md: how the suite was run, the worst case per row, the cascade, the pooled gain, the holes."""
    cfg = record["config"]
    lines = [
        f"# Adaptive attacks on {dataset}: what is left of each detector against the per-image worst case",
        "",
        f"Detectors: one per predictor, measure and tail (upper: flags U above τ; two-sided: also below a lower "
        f"threshold, {suite.TARGET_FPR:.0%}/2 per tail), conformal thresholds on {cfg['n_fit']} clean test images "
        f"that no attack uses, judged with the evaluator's networks (T = {cfg['samples']}). Evasion: correct when "
        "clean, wrong after, and inside the accepted range, at 5% FPR (the attacks were tuned at 5%; evasion at 1% "
        "and 10% in adaptive.csv).",
        "",
        f"pgd: {cfg['steps']} steps of 2.5 eps/{cfg['steps']}, the detector ignored. worst-case: per image, the "
        "first candidate the attacker estimates to evade (else the first it estimates to fool the classifier, "
        "else PGD's), among PGD and a cascade of objectives, each run only where no earlier one evades: "
        f"{', '.join(suite.OBJECTIVES)} (CW margin loss with κ; hinge with margin m; orthogonal and selective PGD "
        f"after Bryniarski et al. 2022; U-matching in log U towards the clean median), {cfg['steps']} steps from "
        f"eps/4 halved at each quarter, the best iterate by the attacker's estimate, up to {cfg['restarts']} "
        "restarts where it still fails. Each objective's c, κ and m were calibrated on "
        f"{cfg['n_calibration']} other clean images ({cfg['calibration_steps']} steps, known attacker). known: the "
        f"attacker has the detector's seed; fresh: it draws its own networks, EOT over {cfg['eot']} draws of T per "
        "step, each draw judged alone and the majority kept as its verdict. The evaluator re-judges every chosen "
        "image with its own networks.",
        "",
        f"N = {cfg['n']} adversarial images per row, the same source images in every row. AUC: adversarial vs the "
        "PGD set's clean and noise images (bootstrap 95% interval). gain vs pgd: paired bootstrap 95% interval "
        "over source images; * when it excludes 0.",
        "",
        "| eps | predictor | measure | tail | attacker | success | AUC [95% CI] | evasion [95% CI] | "
        "gain vs pgd [95% CI] |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table:
        if r["attack"] not in ("pgd", "worst-case"):
            continue
        gain = "" if r["attack"] == "pgd" else (
            f"{r['evasion_gain']:+.3f} {_interval(r, 'evasion_gain', 3)}"
            + (" *" if r["evasion_gain_lo"] > 0 or r["evasion_gain_hi"] < 0 else ""))  # fmt: skip
        who = "pgd" if r["attack"] == "pgd" else f"worst case, {r['attacker']}"
        lines.append(f"| {r['eps']:g} | {r['predictor']} | {r['measure']} | {r['tail']} | {who} | "
                     f"{_fmt(r['success_rate'])} | {_fmt(r['auc'])} {_interval(r, 'auc')} | "
                     f"{_fmt(r['evasion_rate'])} {_interval(r, 'evasion_rate')} | {gain} |")  # fmt: skip
    lines += ["", "## Pooled gain of the worst case over PGD", "",
              "Per source image, the mean over rows of (worst case evades) - (PGD evades); bootstrap 95% interval "
              "over source images.", "", "| attacker | rows | images | gain [95% CI] |",
              "|---|---|---|---|"]  # fmt: skip
    for attacker, g in record.get("pooled_gain", {}).items():
        value = "n/a" if g["gain"] is None else f"{g['gain']:+.3f} [{g['lo']:+.3f}, {g['hi']:+.3f}]"
        lines.append(f"| {attacker} | {g['rows']} | {g['images']} | {value} |")
    lines += ["", "## The cascade", "",
              "Evasion of the worst case through each stage; n attacked: the images the stage ran on (those no "
              "earlier candidate evaded by the attacker's estimate); calibration: the evasion of the chosen "
              "setting on the calibration images.", "",
              "| eps | predictor | measure | tail | attacker | stage | c | κ | m | n attacked | calibration | "
              "evasion [95% CI] |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in table:
        if r["attack"] != "cascade":
            continue
        settings = [("n/a" if _missing(r[k]) else f"{r[k]:g}") for k in ("c", "kappa", "margin")]
        lines.append(f"| {r['eps']:g} | {r['predictor']} | {r['measure']} | {r['tail']} | {r['attacker']} | "
                     f"{r['objective']} | {' | '.join(settings)} | {r['n_attacked']} | "
                     f"{_fmt(r['calibration_evasion'])} | "
                     f"{_fmt(r['evasion_rate'])} {_interval(r, 'evasion_rate')} |")  # fmt: skip
    sanity_csv = layout_folder / "adaptive_sanity.csv" if layout_folder is not None else None
    if sanity_csv is not None and sanity_csv.is_file():
        checks = artifacts.read_table(sanity_csv)
        lines += ["", "## Sanity checks", "",
                  "The known attacker's cascade (mc, MI, the calibrated settings of the largest eps) on other images: "
                  "against thresholds drawn in (upper: τ at the clean median; two-sided: the clean 25th and 75th "
                  "percentiles) and at eps 255 against the 5% detector. It passes when evasion >= success - 0.01.",
                  "", "| check | eps | tail | n | success | evasion | passes |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        for i in range(len(checks["check"])):
            lines.append(f"| {checks['check'][i]} | {checks['eps'][i]:g} | {checks['tail'][i]} | "
                         f"{int(checks['n'][i])} "
                         f"| {_fmt(checks['success_rate'][i])} | {_fmt(checks['evasion_rate'][i])} | "
                         f"{'yes' if checks['passes'][i] else 'no'} |")  # fmt: skip
    skipped = record.get("skipped") or []
    if skipped:
        lines += ["", "## Skipped", ""]
        lines += [f"- eps {s['eps']:g}, {s['predictor']}, {s['measure']}, {s['tail']}: {s['skipped']}" for s in skipped]
    if holes is not None:
        lines += ["", "## Holes on the VAE's latent grid (MNIST)", "",
                  f"Grid {hole_search.GRID} x {hole_search.GRID} over ±{hole_search.EXTENT:g} (Figure 5's extent). "
                  "A hole: "
                  f"max probability >= {hole_search.MIN_CONFIDENCE}, accepted by the detector (its own networks, "
                  f"5% FPR), and farther than {hole_search.FAR_DISTANCE:g} from every encoded training image.", "",
                  "| predictor | measure | tail | class | grid points | far | holes |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in holes:
            lines.append(f"| {r['predictor']} | {r['measure']} | {r['tail']} | {r['class']} | {r['n_points']} | "
                         f"{r['n_far']} | {r['n_holes']} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def recorded_config(layout: Layout) -> dict:
    """The config adaptive.json recorded."""
    return artifacts.read_json(layout.folder / "adaptive.json")["config"]


def findings(folder: Path, arg: str) -> str:
    """A README block from the folder's suite files alone (``<!-- generated: adaptive ARG -->``):

    ``worst-case``: per predictor, measure and tail, PGD's and each attacker's worst-case evasion at 5%
    FPR, and the detection left: the share of the worst case's successful images that are flagged;
    ``ensemble``: the ensemble's worst-case evasion minus the mc predictor's on MI, paired by source image;
    ``holes``: the latent-grid holes per predictor, measure and tail; ``gate`` and ``as-coded``: the
    as-coded variant's gate and suite (``as_coded_gate.findings``, ``as_coded_suite.findings``, under
    the ablation's folder)."""
    if arg == "gate":
        from uncertadv.experiments.adaptive import as_coded_gate

        return as_coded_gate.findings(folder)
    if arg == "as-coded":
        from uncertadv.experiments.adaptive import as_coded_suite

        return as_coded_suite.findings(folder)
    path = folder / "adaptive.csv"
    if not path.is_file() or "tail" not in artifacts.read_table(path):
        target = "make catsdogs-adaptive" if folder.name.startswith("catsdogs") else "make adaptive"
        return f"(no results of the adaptive suite here yet: `{target}` writes them)\n"
    table, holes = tables_from_csv(folder)
    if arg == "worst-case":
        lines = ["| eps | predictor | measure | tail | pgd evasion | worst case, known | worst case, fresh | "
                 "detection left, known | detection left, fresh |",
                 "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in (r for r in table if r["attack"] == "pgd"):
            key = (r["eps"], r["predictor"], r["measure"], r["tail"])
            worst = {w["attacker"]: w for w in table if w["attack"] == "worst-case"
                     and (w["eps"], w["predictor"], w["measure"], w["tail"]) == key}  # fmt: skip
            cells = [f"{_fmt(r['evasion_rate'])} {_interval(r, 'evasion_rate')}"]
            cells += [f"{_fmt(worst[a]['evasion_rate'])} {_interval(worst[a], 'evasion_rate')}" if a in worst
                      else "skipped" for a in suite.ATTACKERS]  # fmt: skip
            cells += [_left(worst[a]) if a in worst else "skipped" for a in suite.ATTACKERS]
            lines.append(f"| {r['eps']:g} | {r['predictor']} | {r['measure']} | {r['tail']} | {' | '.join(cells)} |")
        return "\n".join(lines) + "\n"
    if arg == "ensemble":
        return _ensemble_block(folder)
    if arg == "holes":
        if holes is None:
            return "(no latent-grid holes here)\n"
        lines = ["| predictor | measure | tail | far grid points | holes |", "|---|---|---|---|---|"]
        for r in holes:
            if str(r["class"]) == "all":
                lines.append(f"| {r['predictor']} | {r['measure']} | {r['tail']} | {r['n_far']} | {r['n_holes']} |")
        return "\n".join(lines) + "\n"
    raise ValueError(f"unknown adaptive block {arg!r}; choose from worst-case, ensemble, holes")


def _left(r: dict) -> str:
    """The share of the successful images that the detector flags, with a Wilson 95% interval."""
    flagged, n = int(r["n_successful"]) - int(r["n_evading"]), int(r["n_successful"])
    if n == 0:
        return "n/a"
    lo, hi = metrics.wilson_interval(flagged, n)
    return f"{flagged / n:.3f} [{lo:.2f}, {hi:.2f}] of {n}"


def _ensemble_block(folder: Path) -> str:
    images = artifacts.read_table(folder / "adaptive_images.csv")
    attackers = np.array([a if isinstance(a, str) else "" for a in images["attacker"]])
    record = artifacts.read_json(folder / "adaptive.json")
    lines = ["| eps | tail | attacker | ensemble minus mc evasion [95% CI] | images |", "|---|---|---|---|---|"]
    for eps in sorted(set(images["eps"])):
        for tail in suite.TAILS:
            for attacker in ("", *suite.ATTACKERS):
                pick = {}
                for predictor in ("mc", "ensemble"):
                    sel = (images["eps"] == eps) & (images["tail"] == tail) & (attackers == attacker)
                    sel &= (images["predictor"] == predictor) & (images["measure"] == suite.FULL_MEASURE)
                    pick[predictor] = sel
                if not all(p.any() for p in pick.values()):
                    continue
                if not np.array_equal(images["index"][pick["mc"]], images["index"][pick["ensemble"]]):
                    raise ValueError(f"{folder}: the mc and ensemble rows do not share their source images")
                diff = metrics.paired_bootstrap_mean_difference(
                    images["evaded_fpr05"][pick["ensemble"]], images["evaded_fpr05"][pick["mc"]],
                    rounds=record["config"]["bootstrap"], seed=record["config"]["seed"])  # fmt: skip
                who = attacker or "pgd"
                lines.append(f"| {eps:g} | {tail} | {who} | {diff[0]:+.3f} [{diff[1]:+.3f}, {diff[2]:+.3f}] "
                             f"| {int(pick['mc'].sum())} |")  # fmt: skip
    return "\n".join(lines) + "\n"
