"""Adaptive attacks: does a detector still work against an attacker who knows it is there?

For each predictor (mc, ensemble) and measure, a detector is fitted at 5% FPR on N_FIT clean
test images that no attack set uses. Its networks are the evaluator's (seed SEED + 1000000), so
its flags agree with the scores in ``scores.csv``. Three attacks per (eps, predictor, measure):

- ``pgd``: Table 1's PGD set, which ignores the detector (its rows serve every measure);
- ``pgd-adaptive``: PGD on the loss minus ``c * max(0, U / τ - 1)`` with fresh networks per step;
- ``pgd-adaptive-known``: the same loss on the detector's own T networks (it knows the seed).

c is chosen from C_GRID on N_CALIBRATION other clean test images: the value with the highest
evasion rate there (the smallest such c on a tie). Adaptive sets attack the same source images as
the PGD set of their (eps, predictor), start from the same random points, and are judged against
its clean and noise negatives, so every difference is paired.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from uncertadv import artifacts, inputs, predictors
from uncertadv.attacks import ADAPTIVE_METHODS, DIFFERENTIABLE_MEASURES, AttackConfig, attack
from uncertadv.detector import Detector
from uncertadv.experiments import attack_sets
from uncertadv.experiments.layout import Layout, config_suffix, eval_seed, set_name

ATTACKS = ("pgd", *ADAPTIVE_METHODS)
MEASURES = ("predictive_entropy", "mutual_information", "softmax_variance")
MEASURES_ALLOWED = MEASURES  # what --measures accepts: the grid (variation ratio has no gradient)
PREDICTORS = ("mc", "ensemble")
C_GRID = (0.0, 0.1, 1.0, 10.0)
TARGET_FPR = 0.05
N_FIT = 1000
N_CALIBRATION = 50  # the single adaptive set of `uncertadv attack`; the suite calibrates on its own n_calibration
DEFAULT_EPS = {"mnist": (76.0, 128.0), "catsdogs": (5.0, 10.0)}


def held_out(
    n_available: int, n: int, seed: int, n_fit: int = N_FIT, n_calibration: int = N_CALIBRATION
) -> dict[str, np.ndarray]:
    """Test images no attack set of (n, seed) uses: ``{"fit": [n_fit], "calibration": [n_calibration]}``.
    They follow the 3n evaluation images in the permutation ``attack_sets.draw_indices`` draws.
    n_fit = 0: a detector given from outside, fitted on other images."""
    need = 3 * n + n_fit + n_calibration
    if need > n_available:
        raise ValueError(
            f"the adaptive protocol needs {need} test images (3 x {n} + {n_fit} + {n_calibration}), got {n_available}"
        )
    order = np.random.default_rng(seed).permutation(n_available)
    return {"fit": order[3 * n : 3 * n + n_fit], "calibration": order[3 * n + n_fit : need]}


def detector_path(layout: Layout, predictor: str, measure: str) -> Path:
    """``RESULTS/detectors/PREDICTOR_MEASURE.json``: the protocol's detector."""
    return layout.folder / "detectors" / f"{predictor}_{measure}.json"


def adaptive_name(method: str, eps: float, predictor: str, measure: str, base: AttackConfig | None = None,
                  n: int | None = None) -> str:  # fmt: skip
    """``pgd-adaptive_eps76_mc_mutual_information``: the file stem of an adaptive set, with the settings of
    its PGD setting ``base`` and ``n`` that differ from the defaults (``layout.settings_suffix``)."""
    return f"{set_name(method, eps, predictor)}_{measure}{config_suffix(base, n)}"


def set_stem(method: str, base: AttackConfig, detector: Detector, protocol: bool, n: int | None = None) -> str:
    """The stem of an adaptive set against ``detector``: ``adaptive_name`` for the protocol's detector,
    with ``_det`` and a hash of the detector's config and threshold for one given from outside, so
    that neither overwrites the other."""
    stem = adaptive_name(method, base.eps, base.predictor, detector.measure, base, n)
    if protocol:
        return stem
    import hashlib
    import json

    tag = hashlib.sha256(json.dumps({**detector.config(), "threshold": detector.threshold}, sort_keys=True).encode())
    return f"{stem}_det{tag.hexdigest()[:8]}"


def fit_detectors(
    layout: Layout,
    models: list,
    x: np.ndarray,
    y: np.ndarray,
    *,
    predictor: str,
    measures,
    n: int,
    samples: int,
    seed: int,
    from_logits: bool = False,
    pixel_max: float = 1.0,
    model_file: Path | None = None,
    force: bool = False,
) -> dict[str, Detector]:
    """``{measure: Detector}`` for one predictor, fitted at TARGET_FPR on the held-out fit images
    (reused where a saved detector was fitted the same way on these very models and data). A saved
    detector of these models fitted for another protocol (N, seed, T) is refitted only with
    ``force``: the held-out images depend on N, so another N would fit on images that other sets
    evaluate. A detector from before data hashes (no ``data_sha256`` in its ``fit_data``) is refitted
    and rewritten: on the same models and data its threshold comes out the same."""
    fit_data = {"dataset": layout.dataset, "index_seed": seed, "n_evaluation": n, "n_fit": N_FIT,
                "data_sha256": inputs.data_sha256(x, y)}  # fmt: skip
    out, missing = {}, []
    for measure in measures:
        path = detector_path(layout, predictor, measure)
        try:
            found = Detector.load(path, models) if path.is_file() else None
        except ValueError:
            found = None
        want = {"samples": samples, "seed": eval_seed(seed), "fit_data": fit_data, "target_fpr": TARGET_FPR}
        have = {**found.config(), **found.fit_record} if found is not None else {}
        if not force and all(have.get(k) == v for k, v in want.items()):
            out[measure] = found
        elif found is not None and not force and "data_sha256" in have.get("fit_data", {}):
            raise ValueError(
                f"{path} was fitted for another protocol ({have.get('fit_data')}, T={have.get('samples')}, seed "
                f"{have.get('seed')}); use the same --n, --samples and --seed, or --force to refit it"
            )
        else:
            missing.append(measure)
    if missing:
        import time

        start = time.perf_counter()
        fit_x = x[held_out(len(x), n, seed)["fit"]]
        probs = predictors.predict(
            models,
            fit_x,
            predictor=predictor,
            samples=samples,
            seed=eval_seed(seed),
            from_logits=from_logits,
            desc=f"detector fit ({predictor})",
            pixel_max=pixel_max,
        )
        for measure in missing:
            detector = Detector(models, measure, predictor=predictor, samples=samples, seed=eval_seed(seed),
                                from_logits=from_logits, pixel_max=pixel_max)  # fmt: skip
            detector.fit_scores(_measure(probs, measure), TARGET_FPR)
            detector.save(detector_path(layout, predictor, measure), model_file=model_file, fit_data=fit_data,
                          started=start)  # fmt: skip
            out[measure] = Detector.load(detector_path(layout, predictor, measure), models)
    return out


def detector_for(
    layout: Layout, models: list, x: np.ndarray, y: np.ndarray, base: AttackConfig, measure: str,
    detector_file: Path | None, n: int, data_options: dict | None = None, force: bool = False,
    model_file: Path | None = None,
) -> Detector:  # fmt: skip
    """The detector an attack evades: ``detector_file`` (checked against ``models``; any seed and T),
    else the protocol's detector in ``layout`` for ``measure``, fitted if missing."""
    if base.predictor == "deterministic":
        raise ValueError("the detector-aware attacks need sampled networks: use the mc or ensemble predictor")
    options = data_options or {}
    if detector_file is not None:
        if not Path(detector_file).is_file():
            raise ValueError(f"no detector file at {detector_file}")
        detector = Detector.load(detector_file, models)
        check_detector(detector, base, protocol=False)
        return detector
    fitted = fit_detectors(layout, models, x, y, predictor=base.predictor, measures=(measure,), n=n,
                           samples=base.samples, seed=base.seed, force=force, model_file=model_file,
                           from_logits=options.get("from_logits", False),
                           pixel_max=options.get("pixel_max", 1.0))  # fmt: skip
    return fitted[measure]


def protocol_fit(detector: Detector, layout: Layout, n: int, base: AttackConfig, x: np.ndarray, y: np.ndarray) -> bool:
    """Whether ``detector`` is the protocol's: fitted on this data's held-out images (which the
    calibration images then follow) with the evaluator's networks, rather than given from outside."""
    fit = detector.fit_record.get("fit_data") or {}
    same_fit = fit.get("dataset") == layout.dataset and fit.get("index_seed") == base.seed and \
        fit.get("n_evaluation") == n and fit.get("data_sha256") == inputs.data_sha256(x, y)  # fmt: skip
    return same_fit and detector.seed == eval_seed(base.seed) and detector.samples == base.samples


def _measure(probs: np.ndarray, measure: str) -> np.ndarray:
    from uncertadv import measures

    return getattr(measures, measure)(probs)


def judge(detector: Detector, x_clean: np.ndarray, x_adv: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """The detector's verdict on adversarial images ``x_adv [N, ...]`` made from ``x_clean``
    (labels ``y [N]``): success (correct when clean, wrong after), flagged, evaded (both), ``[N]`` each."""
    evaluate = dict(predictor=detector.predictor, samples=detector.samples, seed=detector.seed,
                    from_logits=detector.from_logits, pixel_max=detector.pixel_max)  # fmt: skip
    clean_pred = predictors.predict(detector.models, x_clean, **evaluate).mean(axis=0).argmax(axis=-1)
    probs = predictors.predict(detector.models, x_adv, **evaluate)
    success = (clean_pred == y) & (probs.mean(axis=0).argmax(axis=-1) != y)
    flagged = detector.flags(_measure(probs, detector.measure))
    return {"success": success, "flagged": flagged, "evaded": success & ~flagged}


def calibrate(
    models: list, x: np.ndarray, y: np.ndarray, base: AttackConfig, detector: Detector, method: str, from_logits: bool
) -> tuple[float, list[float]]:
    """``(c, evasion rate per C_GRID value)`` on the calibration images ``x [N_CALIBRATION, ...]``."""
    rates = []
    for c in C_GRID:
        adv = attack(models, x, y, _adaptive_config(base, detector, method, c), from_logits=from_logits)
        rates.append(float(judge(detector, x, adv, y)["evaded"].mean()))
    return C_GRID[int(np.argmax(rates))], rates  # argmax: the first (smallest) c on a tie


def _adaptive_config(base: AttackConfig, detector: Detector, method: str, c: float) -> AttackConfig:
    """The adaptive attack on ``detector``: its measure, threshold and T (the known-networks attack
    needs its very networks; for the protocol's detectors T is the evaluator's anyway)."""
    known = {"detector_seed": detector.seed} if method == "pgd-adaptive-known" else {}
    return dataclasses.replace(base, method=method, measure=detector.measure, threshold=detector.threshold, c=c,
                               samples=detector.samples, **known)  # fmt: skip


def check_detector(detector: Detector, base: AttackConfig, protocol: bool = True) -> None:
    """The detector's measure must have a gradient for the attack to follow, and it must take the
    attack's predictor and pixel scale. The protocol's detector must also judge with the evaluator's
    networks, or its flags would not match the scores; a detector given from outside may use any."""
    if detector.measure not in DIFFERENTIABLE_MEASURES:
        raise ValueError(
            f"an adaptive attack needs a differentiable measure ({', '.join(DIFFERENTIABLE_MEASURES)}); "
            f"the detector uses {detector.measure}"
        )
    if detector.predictor != base.predictor:
        raise ValueError(f"the detector is for the {detector.predictor} predictor, the attack for {base.predictor}")
    if detector.pixel_max != base.pixel_max:
        raise ValueError(f"the detector takes inputs in [0, {detector.pixel_max}], the attack [0, {base.pixel_max:g}]"
                         " (--pixel-max)")  # fmt: skip
    if protocol and (detector.seed != eval_seed(base.seed) or detector.samples != base.samples):
        raise ValueError(
            f"the detector's networks (seed {detector.seed}, T={detector.samples}) must be the evaluator's "
            f"(seed {eval_seed(base.seed)} = SEED + 1000000, T={base.samples}); fit it with those"
        )


def build(
    models: list,
    model_files: list[Path],
    x: np.ndarray,
    y: np.ndarray,
    base: AttackConfig,
    detector: Detector,
    method: str,
    *,
    n: int,
    layout: Layout,
    model: Path,
    data_options: dict | None = None,
    force: bool = False,
) -> dict:
    """Make (or reuse) the adaptive set of ``method`` against ``detector``; returns its record.

    base: the PGD setting (eps, predictor, T, seed) whose set supplies the source images, the
    random start and the negatives; it is built first if missing."""
    if method not in ADAPTIVE_METHODS:
        raise ValueError(f"unknown adaptive method {method!r}; choose from {', '.join(ADAPTIVE_METHODS)}")
    check_detector(detector, base, protocol=False)
    from_logits = (data_options or {}).get("from_logits", False)
    attack_sets.build(models, model_files, x, y, base, n=n, layout=layout, model=model, data_options=data_options)
    pgd_npz = layout.attack_set(set_name("pgd", base.eps, base.predictor, base, n))
    protocol = protocol_fit(detector, layout, n, base, x, y)
    out = layout.attack_set(set_stem(method, base, detector, protocol, n))
    want = {
        "protocol": attack_sets.PROTOCOL,
        "dataset": layout.dataset,
        "data_options": data_options or {},
        "method": method,
        "attacker_stream": "negative keys",  # since issue 19; the sets before drew seeds 0, 1, ... (not reused)
        "attack": base.as_record(),
        "detector": {**detector.config(), "threshold": detector.threshold},
        "c_grid": list(C_GRID),
        "n_calibration": N_CALIBRATION,
        "pgd_set": artifacts.file_sha256(pgd_npz),
        "models": [artifacts.file_sha256(f) for f in model_files],
        "data_sha256": inputs.data_sha256(x, y),
    }
    n_fit = N_FIT if protocol else 0
    if n_fit == 0:  # calibration images follow the evaluation images directly (recorded, so a key)
        want["n_fit_held_out"] = 0
    found = None if force else artifacts.reusable_record(artifacts.sidecar_path(out), want, [out])
    if found is not None:
        return {**found, "reused": True}
    start = time.perf_counter()
    cal = held_out(len(x), n, base.seed, n_fit)["calibration"]
    c, rates = calibrate(models, x[cal], y[cal], base, detector, method, from_logits)
    arrays, _ = attack_sets.load(pgd_npz)
    index = arrays["adversarial_index"]
    x_adv = attack(models, x[index], y[index], _adaptive_config(base, detector, method, c), from_logits=from_logits)
    verdict = judge(detector, x[index], x_adv, y[index])
    with artifacts.atomic_path(out) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, adversarial_index=index, labels=y[index], x_adv=x_adv, **verdict)
    linf, l2 = attack_sets.perturbation_norms(x[index], x_adv)
    record = artifacts.record(
        want,
        start,
        c=c,
        calibration_evasion_rates=rates,
        success_rate=float(verdict["success"].mean()),
        evasion_rate=float(verdict["evaded"].mean()),
        mean_linf_255=float(linf.mean() * 255 / base.pixel_max),
        mean_l2=float(l2.mean()),
    )
    artifacts.write_json(artifacts.sidecar_path(out), record)
    return record


def scores(layout: Layout, stem: str, models: list, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """The rows of an adaptive set: the clean and noise rows of its PGD set (the same images and
    scores), then its adversarial rows, scored by the same evaluator; cached beside it."""
    npz = layout.attack_set(stem)
    arrays, record = attack_sets.load(npz)
    base = AttackConfig(**record["config"]["attack"])
    pgd_stem = set_name("pgd", base.eps, base.predictor, base, len(arrays["adversarial_index"]))
    pgd_sha = artifacts.file_sha256(layout.attack_set(pgd_stem)) if layout.attack_set(pgd_stem).is_file() else None
    if pgd_sha != record["config"]["pgd_set"]:
        raise ValueError(f"the PGD set {pgd_stem} changed (or is missing) since {npz.name} was made; "
                         "run `uncertadv report --adaptive` to make both again")  # fmt: skip
    pgd_rows = attack_sets.cached_scores(layout, pgd_stem, models, x, y)
    _, pgd_record = attack_sets.load(layout.attack_set(pgd_stem))

    def compute():
        index = arrays["adversarial_index"]
        adv = attack_sets.kind_rows(models, pgd_record, "adversarial", index, arrays["x_adv"], x, y)
        adv["pair"] = np.full(len(index), np.nan)  # PGD's noise rows are matched to PGD's perturbations, not these
        negative = pgd_rows["kind"] != "adversarial"
        return {k: np.concatenate([pgd_rows[k][negative], adv[k]]) for k in adv}

    attack_sets.check_data(npz, record, x, y)
    config = {
        "protocol": attack_sets.PROTOCOL,
        "data_sha256": record["config"]["data_sha256"],
        "attack_set": artifacts.file_sha256(npz),
        "pgd_set": record["config"]["pgd_set"],
        "eval_samples": pgd_record["config"]["eval_samples"],
        "eval_seed": pgd_record["config"]["eval_seed"],
        "adversarial_pair": None,  # the adversarial rows are paired with no noise row (see compute)
    }
    return artifacts.cached_table(layout.score_cache(stem), config, compute)
