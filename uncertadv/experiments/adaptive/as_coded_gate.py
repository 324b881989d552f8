"""The gate of the as-coded variant (issue 19): the adaptive suite is run on the model the
authors' code ran only if its MI detector catches plain PGD at all, i.e. if the lower end of the
95% interval of its true-positive rate at 5% FPR, against the suite's 100-step PGD, is above 0.05.

The network is ``results/catsdogs-ablation``'s ``as-coded`` one (its head reused from
``models/``, keyed by content), with all six switches: batch-statistics BatchNorm (attacks and
scores in batches of 5, one kind per batch), the attack moving away from the MC predictor's own
prediction, and the authors' clip bounds. The source images are the ablation's (and the
suite's) N adversarial sources; the detector (upper tail, conformal rule) is fitted on the
suite's held-out fit images (``protocol.held_out``), scored the same way in batches of 5.

TPR = flagged / successful PGD images (correct when clean, wrong after the attack, both by the
evaluator's draws). Its interval is a percentile bootstrap that resamples whole batches of 5 of
both the fit images (the threshold is re-estimated each round) and the attacked images.

Writes ``RESULTS/adaptive_gate.{csv,json}`` (``results/catsdogs-ablation/as-coded/``).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from uncertadv import artifacts, inputs, measures
from uncertadv.detector import thresholds
from uncertadv.experiments.adaptive import protocol
from uncertadv.experiments.attack_sets import draw_indices
from uncertadv.experiments.catsdogs import ablation, perturbations, variants
from uncertadv.experiments.layout import eval_seed
from uncertadv.progress import progress_bar

VERSION = 1
VARIANT = "as-coded"
MEASURE = "mutual_information"
FPR = 0.05
GATE = 0.05  # the suite runs if the interval's lower end is above this
PGD_CODE = 3  # the attack's index in the attacker keys (fgm, bim, mim are 0, 1, 2)
FIT_KIND = 5  # the evaluator's key for the fit images (the ablation's kinds are 0-4)
COLUMNS = ("variant", "predictor", "measure", "tail", "eps", "steps", "fpr", "n", "n_successful", "n_fit",
           "upper_threshold", "tpr", "tpr_lo", "tpr_hi", "gate", "passes")  # fmt: skip


@dataclasses.dataclass(frozen=True)
class GateConfig:
    ablation: ablation.AblationConfig
    eps: tuple[float, ...] = (5.0,)
    steps: int = 100
    n_fit: int = protocol.N_FIT
    n_calibration: int = 200  # the suite's: the fit images come first, so this only sets the test split's minimum

    def recorded(self) -> dict:
        return {**self.ablation.recorded(), "methods": ["pgd"], "predictors": ["mc"],
                "batch_size": variants.AS_CODED_BATCH, "eps": list(self.eps), "steps": self.steps,
                "n_fit": self.n_fit, "n_calibration": self.n_calibration, "variant": VARIANT, "measure": MEASURE,
                "fpr": FPR}  # fmt: skip


def tpr_interval(adv: np.ndarray, success: np.ndarray, adv_groups: np.ndarray, fit: np.ndarray,
                 fit_groups: np.ndarray, *, fpr: float = FPR, rounds: int = 1000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float, float, float]:  # fmt: skip
    """``(upper threshold, TPR, lo, hi)`` of an upper-tail conformal detector fitted on ``fit [M]``,
    against the successful rows of ``adv [N]`` (``success [N]`` bool). The interval resamples whole
    groups (``adv_groups [N]``, ``fit_groups [M]``: batches whose outputs are coupled) of both sets,
    re-fitting the threshold each round. NaN TPR when nothing succeeded."""
    adv, fit, success = np.asarray(adv, float), np.asarray(fit, float), np.asarray(success, bool)
    upper = thresholds(fit, fpr, "conformal", "upper")[0]
    if not success.any():
        return upper, float("nan"), float("nan"), float("nan")
    tpr = float(np.mean(adv[success] > upper))
    rng = np.random.default_rng(seed)
    adv_ids, adv_inv = np.unique(adv_groups, return_inverse=True)
    fit_ids, fit_inv = np.unique(fit_groups, return_inverse=True)
    draws = []
    for _ in range(rounds):
        w_adv = np.bincount(rng.integers(0, len(adv_ids), len(adv_ids)), minlength=len(adv_ids))[adv_inv]
        w_fit = np.bincount(rng.integers(0, len(fit_ids), len(fit_ids)), minlength=len(fit_ids))[fit_inv]
        tau = thresholds(np.repeat(fit, w_fit), fpr, "conformal", "upper")[0]
        weight = w_adv * success
        if weight.sum() > 0:
            draws.append(float(weight @ (adv > tau) / weight.sum()))
    if not draws:  # no round drew a successful image
        return upper, tpr, float("nan"), float("nan")
    lo, hi = np.percentile(draws, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return upper, tpr, float(lo), float(hi)


def _probs(network, cfg: ablation.AblationConfig, kind_code: int, images: np.ndarray) -> np.ndarray:
    """The evaluator's MC probabilities ``[T, N, 2]`` of ``images``, in batches of 5 (one kind per batch)."""
    code = (eval_seed(cfg.seed), ablation.PREDICTOR_CODES["mc"], kind_code)
    return ablation.predict(network, images, cfg.samples, variants.AS_CODED_BATCH, code)


def _mi(probs: np.ndarray) -> np.ndarray:
    return np.asarray(getattr(measures, MEASURE)(probs), dtype=np.float64)


def pgd_set(cfg: GateConfig, network, head_record, x_src, y_src, eps, data_sha256,
            role: str = "sources") -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """``(PGD images [N, S, S, 3], the labels it moved away from [N])`` of the as-coded MC predictor at
    ``eps`` (cached by content). role: ``sources`` (the N adversarial sources) or ``calibration``
    (the suite's calibration images)."""
    a = cfg.ablation
    variant = variants.named(VARIANT)
    want = {"version": VERSION, "gate": "pgd", "head_sha256": head_record["sha256"],  # attack_key holds "head"
            "trunk": head_record["config"]["trunk_weights"], "data_sha256": data_sha256, "n": a.n, "seed": a.seed,
            "samples": a.samples, "eps": float(eps),
            "steps": cfg.steps, "image_size": a.image_size, **variant.attack_key("mc")}  # fmt: skip
    if role != "sources":  # the sources' key is as before the suite, so their set is reused
        want = {**want, "role": role, "images_sha256": inputs.data_sha256(x_src, y_src)}
    path = a.folder / "attacks" / f"gate_pgd_eps{eps:g}_mc-{ablation._digest(want)}.npz"
    if artifacts.reusable_record(artifacts.sidecar_path(path), want, [path]) is not None:
        with np.load(path, allow_pickle=False) as saved:
            return saved["x_adv"], saved["attack_labels"]
    start = time.perf_counter()
    batch, samples = variants.AS_CODED_BATCH, a.samples
    code = (a.seed, ablation.PREDICTOR_CODES["mc"], PGD_CODE, int(eps * 10), *([] if role == "sources" else [1]))
    if variant.attack_labels == "true":
        labels = y_src
    else:  # the predictor's own prediction on the clean image, as the ablation's attack sets
        labels = ablation.predict(network, x_src, samples, batch, (*code, 99)).mean(axis=0).argmax(axis=-1)
    bounds = perturbations.clip_bounds(variant.clip)
    parts = [perturbations.pgd_batch(network, x_src[sl], labels[sl], eps=eps, steps=cfg.steps, samples=samples,
                                     bounds=bounds, seed_parts=(*code, b))
             for b, sl in progress_bar(ablation._batches(len(x_src), batch), desc=f"as-coded PGD eps {eps:g}",
                                       total=-(-len(x_src) // batch))]  # fmt: skip
    x_adv = np.concatenate(parts)
    with artifacts.atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, x_adv=x_adv, attack_labels=labels)
    linf, share = perturbations.moved(x_src, x_adv, eps)
    artifacts.write_json(artifacts.sidecar_path(path), artifacts.record(
        want, start, mean_linf_255=float(linf.mean()), share_pixels_beyond_eps=share))  # fmt: skip
    return x_adv, labels


def run(cfg: GateConfig, trunk=None) -> list[Path]:
    """The gate for each eps: writes ``as-coded/adaptive_gate.{csv,json}`` under the ablation folder."""
    a = cfg.ablation
    start = time.perf_counter()
    trunks = ablation.Trunks(a, trunk)
    x, y = ablation.load_test(a)
    data_sha256 = inputs.data_sha256(x, y)
    src = draw_indices(len(x), a.n, a.seed)["adversarial"]
    fit = protocol.held_out(len(x), a.n, a.seed, cfg.n_fit, cfg.n_calibration)["fit"]
    network, head_record = ablation.ensure_head(a, trunks, variants.named(VARIANT))
    batch = variants.AS_CODED_BATCH
    fit_scores, fit_groups = _mi(_probs(network, a, FIT_KIND, x[fit])), np.arange(len(fit)) // batch
    clean = _probs(network, a, ablation.KIND_CODES["source"], x[src])
    correct = clean.mean(axis=0).argmax(axis=-1) == y[src]
    rows = []
    for eps in cfg.eps:
        x_adv, _ = pgd_set(cfg, network, head_record, x[src], y[src], eps, data_sha256)
        scores = _mi(_probs(network, a, ablation.KIND_CODES["adversarial"], x_adv))
        after = _probs(network, a, ablation.KIND_CODES["success_check"], x_adv)
        success = correct & (after.mean(axis=0).argmax(axis=-1) != y[src])
        upper, tpr, lo, hi = tpr_interval(scores, success, np.arange(len(src)) // batch, fit_scores, fit_groups,
                                          rounds=a.bootstrap, seed=a.seed)  # fmt: skip
        rows.append({"variant": VARIANT, "predictor": "mc", "measure": MEASURE, "tail": "upper", "eps": float(eps),
                     "steps": cfg.steps, "fpr": FPR, "n": len(src), "n_successful": int(success.sum()),
                     "n_fit": len(fit), "upper_threshold": upper, "tpr": tpr, "tpr_lo": lo, "tpr_hi": hi,
                     "gate": GATE, "passes": bool(lo > GATE)})  # fmt: skip
    folder = a.folder / VARIANT
    csv_path, json_path = folder / "adaptive_gate.csv", folder / "adaptive_gate.json"
    artifacts.write_csv(csv_path, {c: [r[c] for r in rows] for c in COLUMNS})
    record = artifacts.record(cfg.recorded(), start, evaluator_seed=eval_seed(a.seed),
                              head={k: head_record[k] for k in ("config", "sha256")},
                              sha256=artifacts.file_sha256(csv_path), outputs=[csv_path.name])  # fmt: skip
    artifacts.write_json(json_path, record)
    return [csv_path, json_path]


def findings(folder: Path) -> str:
    """The README block of the ablation folder ``folder``: the gate per eps, from ``as-coded/adaptive_gate.csv``."""
    path = folder / VARIANT / "adaptive_gate.csv"
    if not path.is_file():
        return "(the as-coded gate has not been run here: `make catsdogs-adaptive` runs it)\n"
    table = artifacts.read_csv(path)
    lines = ["| eps | PGD steps | successful / N | fit images | MI threshold | TPR at 5% FPR [95% interval] | gate |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for i in range(len(table["eps"])):
        r = {k: v[i] for k, v in table.items()}
        tpr = "n/a" if r["tpr"] == "" else f"{float(r['tpr']):.3f} [{float(r['tpr_lo']):.3f}, {float(r['tpr_hi']):.3f}]"
        verdict = "passes (lower end > " + r["gate"] + ")" if r["passes"] == "True" else "fails: skipped"
        lines.append(f"| {float(r['eps']):g} | {r['steps']} | {r['n_successful']} / {r['n']} | {r['n_fit']} | "
                     f"{float(r['upper_threshold']):.3g} | {tpr} | {verdict} |")  # fmt: skip
    return "\n".join(lines) + "\n"
