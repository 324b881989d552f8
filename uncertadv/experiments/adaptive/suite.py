"""The converged adaptive suite: the per-image worst case of a detector-aware attacker (issue 19).

Per (eps, predictor, measure, tail) and attacker (``known``: it has the detector's seed and so its very
networks; ``fresh``: it draws its own, EOT over ``eot`` draws of T per step):

1. ``pgd``: PGD with ``steps`` iterations (step 2.5 eps / steps, Madry et al.'s rule), which ignores the
   detector; its set supplies the source images, the clean and noise negatives and the first candidate.
2. A cascade of objectives (``OBJECTIVES``, in order), each run only on the images for which no earlier
   candidate evades by the attacker's own estimate; ``steps`` iterations from a step of eps / 4 halved
   at each quarter, the best iterate by that estimate, up to ``restarts`` more runs where it still fails.
   Each objective's settings (c, κ, m) are calibrated first on ``n_calibration`` other clean images, at
   ``calibration_steps``, with the known attacker, by the detector's evasion at 5% FPR (ties: the first in
   grid order). MI gets every objective; entropy and softmax variance the two with the best calibration
   evasion on MI (same eps, predictor, tail).
3. ``worst-case``: per image, the first candidate the attacker estimates to evade; else the first it
   estimates to be misclassified; else PGD's. The evaluator then re-judges the chosen images with its own
   networks: evasion = correct when clean, wrong after, and inside the detector's accepted range.

A configuration where PGD already evades wherever it succeeds (by the evaluator) is skipped, and said so.
Every attack set is content-keyed and reused, so a run resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from pathlib import Path

import numpy as np

from uncertadv import artifacts, inputs, measures, predictors
from uncertadv.attacks import AttackConfig, attack
from uncertadv.detector import Detector
from uncertadv.experiments import attack_sets
from uncertadv.experiments.adaptive import protocol
from uncertadv.experiments.layout import Layout, eval_seed
from uncertadv.progress import progress_bar

VERSION = 1
OBJECTIVES = ("hinge", "orthogonal", "selective", "u-matching")
ATTACKERS = ("known", "fresh")
TAILS = ("upper", "two-sided")
FPRS = (0.01, 0.05, 0.10)  # evasion is reported at each; the attacks are tuned at TARGET_FPR
TARGET_FPR = 0.05
C_GRID = (0.0, 0.1, 1.0, 10.0)
KAPPA_GRID = (0.0, 5.0)
MARGIN_GRID = (0.0, 0.2)
N_BEST = 2  # objectives the other measures get
FULL_MEASURE = "mutual_information"
# The fresh attacker's estimate of a verdict draws networks from negative keys far below the attack's own.
_ESTIMATE_BASE = 10**12
# The fresh attacker's verdict, in its sets' keys: a majority of its draws, each judged alone (before:
# the verdict on U averaged over the draws, which a skewed U biases). The known attacker's is unchanged.
FRESH_VERDICT = {"verdict": "majority of draws"}


def grid(objective: str) -> list[dict]:
    """The calibration grid of one objective: ``ua.attack`` keywords per setting (the CW loss throughout;
    c = 0 with the hinge is the CW loss alone, so its margins are one setting)."""
    if objective == "hinge":
        out = [dict(loss="cw", kappa=k, penalty="hinge", margin=0.0, c=0.0) for k in KAPPA_GRID]
        return out + [dict(loss="cw", kappa=k, penalty="hinge", margin=m, c=c)
                      for c in C_GRID if c > 0 for k in KAPPA_GRID for m in MARGIN_GRID]  # fmt: skip
    if objective in ("orthogonal", "selective"):
        return [dict(loss="cw", kappa=k, penalty="hinge", margin=m, update=objective)
                for k in KAPPA_GRID for m in MARGIN_GRID]  # fmt: skip
    if objective == "u-matching":
        return [dict(loss="cw", kappa=k, penalty="u-matching", c=c) for c in C_GRID if c > 0 for k in KAPPA_GRID]
    raise ValueError(f"unknown objective {objective!r}; choose from {', '.join(OBJECTIVES)}")


@dataclasses.dataclass(frozen=True)
class SuiteConfig:
    layout: Layout
    eps: tuple[float, ...] = (76.0, 128.0)
    predictors: tuple[str, ...] = protocol.PREDICTORS
    measures: tuple[str, ...] = protocol.MEASURES
    tails: tuple[str, ...] = TAILS
    attackers: tuple[str, ...] = ATTACKERS
    n: int = 1000
    samples: int = 20
    seed: int = 0
    bootstrap: int = 1000
    steps: int = 100
    calibration_steps: int = 50
    n_calibration: int = 200
    n_fit: int = protocol.N_FIT
    restarts: int = 2
    eot: int = 4
    ensemble_measures: tuple[str, ...] = (FULL_MEASURE,)  # the ensemble is attacked against MI only
    holes: bool = True  # MNIST: count the holes on the VAE's latent grid
    sanity: bool = True  # the attack-strength checks (report.sanity)
    skip_evaded: bool = True  # skip a configuration where PGD already evades wherever it succeeds
    force: bool = False
    model: Path | None = None
    data: dict | None = None

    def recorded(self) -> dict:
        out = dataclasses.asdict(self)
        out["layout"] = {"dataset": self.layout.dataset, "folder": str(self.layout.folder)}
        out["model"] = None if self.model is None else str(self.model)
        return out

    def pgd(self, eps: float, predictor: str, pixel_max: float) -> AttackConfig:
        return AttackConfig(method="pgd", eps=eps, predictor=predictor, samples=self.samples, seed=self.seed,
                            iterations=self.steps, step=2.5 * eps / self.steps, pixel_max=pixel_max)  # fmt: skip

    def measures_of(self, predictor: str) -> tuple[str, ...]:
        return tuple(m for m in self.measures if predictor != "ensemble" or m in self.ensemble_measures)


@dataclasses.dataclass
class Setting:
    """What one (eps, predictor) shares: models, data, the PGD set and its scores, the detectors' fit."""

    eps: float
    predictor: str
    models: list
    x: np.ndarray
    y: np.ndarray
    options: dict
    pixel_max: float
    layout: Layout
    pgd_npz: Path
    pgd_record: dict
    pgd_arrays: dict
    pgd_rows: dict
    fit_scores: dict  # measure -> the clean fit images' scores [M] (the evaluator's networks)

    @property
    def index(self) -> np.ndarray:
        """The source images of the adversarial rows ``[N]``."""
        return self.pgd_arrays["adversarial_index"]


def stem(*parts) -> str:
    """``suite_hinge_known_76_mc_mutual_information_upper``: the file stem of one of the suite's files."""
    return "suite_" + "_".join(f"{p:g}" if isinstance(p, float) else str(p) for p in parts)


def detector(setting: Setting, measure: str, tail: str, fpr: float = TARGET_FPR) -> Detector:
    """The evaluator's detector for ``measure`` and ``tail`` at ``fpr`` (conformal), from the fit scores."""
    evaluator = setting.pgd_record["config"]
    det = Detector(setting.models, measure, predictor=setting.predictor, samples=int(evaluator["eval_samples"]),
                   seed=int(evaluator["eval_seed"]), from_logits=setting.options.get("from_logits", False),
                   pixel_max=setting.pixel_max, tail=tail)  # fmt: skip
    return det.fit_scores(setting.fit_scores[measure], fpr, rule="conformal")


def attacker_estimate(setting: Setting, det: Detector, images: np.ndarray, labels: np.ndarray, attacker: str,
                      eot: int, seed: int) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The attacker's own verdict on ``images [N, ...]``: ``(misclassified [N], evades [N])``. The known
    attacker computes the detector's; the fresh one judges ``eot`` draws of T networks of its own, each as
    the evaluator judges its one draw, and takes the majority (more than half), as ``ua.attack`` does."""
    seeds = [det.seed] if attacker == "known" else [-(_ESTIMATE_BASE + seed * 1_000_003 + k) for k in range(eot)]
    wrong, evading = [], []
    for s in seeds:
        probs = predictors.predict(det.models, images, predictor=det.predictor, samples=det.samples, seed=s,
                                   from_logits=det.from_logits, pixel_max=det.pixel_max)  # fmt: skip
        misclassified = probs.mean(axis=0).argmax(axis=-1) != labels
        wrong.append(misclassified)
        evading.append(misclassified & ~det.flags(np.asarray(getattr(measures, det.measure)(probs))))
    return np.mean(wrong, axis=0) > 0.5, np.mean(evading, axis=0) > 0.5


def select(
    candidates: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]], n: int
) -> tuple[np.ndarray, np.ndarray]:
    """The attacker's per-image choice among candidates in cascade order, each ``(index [k] into the N
    images, images [k, ...], misclassified [k], evades [k])`` by its own estimate; the first candidate
    must cover every one of the ``n`` images. Returns ``(images [N, ...], chosen candidate [N])``: the
    first that evades, else the first misclassified, else the first."""
    index0, images0, _, _ = candidates[0]
    if not np.array_equal(np.sort(index0), np.arange(n)):
        raise ValueError("the first candidate must cover every image")
    chosen_images = np.empty_like(images0)
    chosen_images[index0] = images0
    chosen = np.zeros(n, dtype=np.int64)
    level = np.full(n, -1)  # 2: evades, 1: misclassified, 0: neither (by the attacker's estimate)
    for k, (index, images, misclassified, evades) in enumerate(candidates):
        mine = np.where(evades, 2, np.where(misclassified, 1, 0))
        better = mine > level[index]
        chosen_images[index[better]] = images[better]
        chosen[index[better]] = k
        level[index[better]] = mine[better]
    return chosen_images, chosen


def cached_npz(path: Path, want: dict, compute) -> tuple[dict, dict]:
    """The arrays at ``path`` if its sidecar records ``want``; otherwise ``compute() -> (arrays, extra)``,
    written atomically with a record. Returns ``(arrays, record)``."""
    found = artifacts.reusable_record(artifacts.sidecar_path(path), want, [path])
    if found is None:
        start = time.perf_counter()
        arrays, extra = compute()
        with artifacts.atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                np.savez_compressed(handle, **arrays)
        artifacts.write_json(artifacts.sidecar_path(path), artifacts.record(want, start, **extra))
        found = artifacts.read_json(artifacts.sidecar_path(path))
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}, found


def _key(setting: Setting, det: Detector, **more) -> dict:
    return {
        "suite": VERSION,
        "dataset": setting.pgd_record["config"]["dataset"],
        "pgd_set": artifacts.file_sha256(setting.pgd_npz),
        "detector": {**det.config(), "threshold": det.threshold, "lower_threshold": det.lower_threshold},
        **more,
    }


def _attack(cfg: SuiteConfig, setting: Setting, det: Detector, attacker: str, options: dict, u_target: float,
            x: np.ndarray, y: np.ndarray, **more):  # fmt: skip
    """One detector-aware attack of the suite: ``options`` (a grid setting) on ``x [k, ...]``."""
    known = attacker == "known"
    target = {"u_target": u_target} if options.get("penalty") == "u-matching" else {}
    return attack(det.models, x, y, method="pgd-adaptive-known" if known else "pgd-adaptive", eps=setting.eps,
                  seed=cfg.seed, step=setting.eps / 4, schedule="decay", best_iterate=True, detector=det,
                  from_logits=det.from_logits, **({} if known else {"eot": cfg.eot}), **options, **target,
                  **more)  # fmt: skip


def calibration_pgd(cfg: SuiteConfig, setting: Setting) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(index [M], x_cal [M, ...], PGD's images of them [M, ...])``: the calibration images and the
    suite's PGD on them (cached), so that calibration, like the cascade, attacks only what PGD leaves."""
    cal = protocol.held_out(len(setting.x), cfg.n, cfg.seed, cfg.n_fit, cfg.n_calibration)["calibration"]
    x_cal, y_cal = setting.x[cal], setting.y[cal]
    config = cfg.pgd(setting.eps, setting.predictor, setting.pixel_max)
    path = setting.layout.attack_set(stem("calibration-pgd", setting.eps, setting.predictor))
    want = {"suite": VERSION, "attack": config.as_record(), "calibration_index": _sha(cal),
            "data_sha256": inputs.data_sha256(setting.x, setting.y),
            "models": setting.pgd_record["config"]["models"]}  # fmt: skip

    def compute():
        adv = attack(setting.models, x_cal, y_cal, config, from_logits=setting.options.get("from_logits", False))
        return {"index": cal, "x_adv": adv}, {}

    arrays, _ = forced(path, want, compute) if cfg.force else cached_npz(path, want, compute)
    return cal, x_cal, arrays["x_adv"]


def calibrate(cfg: SuiteConfig, setting: Setting, det: Detector, objective: str) -> dict:
    """``{"setting": ua.attack keywords, "rates": evasion per grid setting, "evasion": the best}`` of one
    objective on the calibration images, judged by the detector at 5% FPR (known attacker). As in the
    cascade, each setting attacks only the calibration images that PGD does not already make evade; a
    rate counts those PGD evaders as evading, over all the calibration images."""
    cal, x_cal, pgd_cal = calibration_pgd(cfg, setting)
    y_cal = setting.y[cal]
    u_target = float(np.median(setting.fit_scores[det.measure]))
    name = stem("calibration", objective, setting.eps, setting.predictor, det.measure, det.tail)
    path = setting.layout.folder / "adaptive" / f"{name}.json"
    want = _key(setting, det, objective=objective, grid=grid(objective), steps=cfg.calibration_steps,
                calibration_index=_sha(cal), u_target=u_target, after_pgd=True)  # fmt: skip
    found = None if cfg.force else artifacts.reusable_record(path, want, [])
    if found is not None:
        return found
    run = GridRun(path, want, force=cfg.force)
    pgd_evaded = protocol.judge(det, x_cal, pgd_cal, y_cal)["evaded"]
    todo = np.flatnonzero(~pgd_evaded)
    left = run.left(grid(objective))
    for options in progress_bar(left, desc=f"calibrate {objective} ({len(todo)} images)", total=len(left)):
        evaded = int(pgd_evaded.sum())
        if len(todo):
            adv = _attack(cfg, setting, det, "known", options, u_target, x_cal[todo], y_cal[todo],
                          iterations=cfg.calibration_steps)  # fmt: skip
            evaded += int(protocol.judge(det, x_cal[todo], adv, y_cal[todo])["evaded"].sum())
        run.add(evaded / len(cal))
    return run.finish(grid(objective), pgd_evasion=float(pgd_evaded.mean()), n_attacked=int(len(todo)))


class GridRun:
    """One calibration over a grid whose rates are saved as each setting finishes (``NAME.partial.json``
    beside the record at ``path``, keyed like it): a run cut short (a session's end) resumes at the next
    setting. Every setting is seeded alone, so a resumed run gives the rates an unbroken one would; the
    wall times of the interrupted runs add up."""

    def __init__(self, path: Path, want: dict, force: bool = False):
        self.path, self.want = path, want
        self.partial = path.with_name(f"{path.stem}.partial.json")
        done = None if force else artifacts.reusable_record(self.partial, want, [])
        self.rates, self.earlier = (list(done["rates"]), done["wall_seconds"]) if done else ([], 0.0)
        self.resumed_after = len(self.rates)
        self.start = time.perf_counter()

    def left(self, settings: list) -> list:
        return settings[len(self.rates) :]

    def add(self, rate: float) -> None:
        self.rates.append(rate)
        artifacts.write_json(self.partial, self._walled(artifacts.record(self.want, self.start, rates=self.rates)))

    def finish(self, settings: list, **extra) -> dict:
        """Writes and returns the record: the best setting (the first on a tie), its rate and ``extra``."""
        best = int(np.argmax(self.rates))
        record = artifacts.record(self.want, self.start, setting=settings[best], rates=self.rates,
                                  evasion=self.rates[best], **extra, resumed_after=self.resumed_after)  # fmt: skip
        artifacts.write_json(self.path, self._walled(record))
        self.partial.unlink(missing_ok=True)
        return artifacts.read_json(self.path)

    def _walled(self, record: dict) -> dict:
        return {**record, "wall_seconds": round(record["wall_seconds"] + self.earlier, 2)}


def _sha(index: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(index, dtype=np.int64).tobytes()).hexdigest()


def cascade(cfg: SuiteConfig, setting: Setting, det: Detector, attacker: str, objectives: list[tuple[str, dict]],
            tag: str = ""):  # fmt: skip
    """The worst case of one attacker: ``[(stage name, images [N, ...], chosen [N], ran on [N] bool,
    AttackTrace arrays or None)]``, one per stage (pgd first), each the selection through that stage.
    tag: a prefix for the stage files of a run apart from the main one (the sanity checks)."""
    images, labels = setting.pgd_arrays["x_adv"], setting.y[setting.index]
    x_src = setting.x[setting.index]
    n = len(labels)
    misclassified, evades = attacker_estimate(setting, det, images, labels, attacker, cfg.eot, cfg.seed)
    candidates = [(np.arange(n), images, misclassified, evades)]
    chosen_images, chosen = select(candidates, n)
    stages = [("pgd", chosen_images, chosen, np.ones(n, bool), None)]
    u_target = float(np.median(setting.fit_scores[det.measure]))
    label = f"{attacker} cascade eps {setting.eps:g} {setting.predictor} {det.measure} {det.tail}"
    for name, options in progress_bar(objectives, desc=label, total=len(objectives)):
        todo = np.flatnonzero(~np.any([_covered(c, n) for c in candidates], axis=0))
        path = setting.layout.attack_set(stem(f"{tag}{name}", attacker, setting.eps, setting.predictor, det.measure,
                                              det.tail))  # fmt: skip
        want = _key(setting, det, objective=name, attacker=attacker, options=options, steps=cfg.steps,
                    restarts=cfg.restarts, eot=cfg.eot if attacker == "fresh" else 1, todo=_sha(todo),
                    u_target=u_target, **FRESH_VERDICT if attacker == "fresh" else {})  # fmt: skip

        def compute(todo=todo, options=options):
            if len(todo) == 0:
                empty = np.zeros((0, *images.shape[1:]), np.float32)
                return {"index": todo, "x_adv": empty, "score": np.zeros(0), "evaded": np.zeros(0, bool),
                        "first": np.zeros(0, np.int64), "restarts": np.zeros(0, np.int64)}, {}  # fmt: skip
            adv, trace = _attack(cfg, setting, det, attacker, options, u_target, x_src[todo], labels[todo],
                                 iterations=cfg.steps, restarts=1 + cfg.restarts, return_trace=True)  # fmt: skip
            return {"index": todo, "x_adv": adv, **dataclasses.asdict(trace)}, {"n_attacked": len(todo)}

        arrays, _ = cached_npz(path, want, compute) if not cfg.force else forced(path, want, compute)
        misclassified_k = arrays["score"] > 0.5  # objectives.iterate_score: misclassified from 1 up
        candidates.append((arrays["index"], arrays["x_adv"], misclassified_k, arrays["evaded"]))
        chosen_images, chosen = select(candidates, n)
        ran = np.zeros(n, bool)
        ran[arrays["index"]] = True
        stages.append((name, chosen_images, chosen, ran, arrays))
    return stages


def _covered(candidate, n: int) -> np.ndarray:
    """``[N]`` bool: the images this candidate already makes evade (by the attacker's estimate)."""
    index, _, _, evades = candidate
    out = np.zeros(n, bool)
    out[index[evades]] = True
    return out


def forced(path: Path, want: dict, compute):
    """``cached_npz`` after removing what is at ``path``: --force recomputes."""
    for stale in (path, artifacts.sidecar_path(path)):
        stale.unlink(missing_ok=True)
    return cached_npz(path, want, compute)


def judge_rows(setting: Setting, images: np.ndarray) -> dict:
    """The evaluator's rows for the chosen images ``[N, ...]``: the PGD set's clean and noise rows, then
    these as adversarial rows (``attack_sets.kind_rows``)."""
    adv = attack_sets.kind_rows(setting.models, setting.pgd_record, "adversarial", setting.index, images,
                                setting.x, setting.y)  # fmt: skip
    adv["pair"] = np.full(len(setting.index), np.nan)
    negative = setting.pgd_rows["kind"] != "adversarial"
    return {k: np.concatenate([np.asarray(setting.pgd_rows[k])[negative], adv[k]]) for k in adv}


def fit_scores(cfg: SuiteConfig, layout: Layout, models: tuple[list, list], x: np.ndarray, y: np.ndarray,
               predictor: str, options: dict, pixel_max: float) -> dict:  # fmt: skip
    """``{measure: [M]}``: the clean fit images' scores under the evaluator's networks (cached)."""
    fit = protocol.held_out(len(x), cfg.n, cfg.seed, cfg.n_fit, cfg.n_calibration)["fit"]
    config = {"suite": VERSION, "data_sha256": inputs.data_sha256(x, y), "fit_index": _sha(fit),
              "samples": cfg.samples, "seed": eval_seed(cfg.seed), "predictor": predictor,
              "weights": [artifacts.file_sha256(f) for f in models[1]]}  # fmt: skip

    def compute():
        probs = predictors.predict(models[0], x[fit], predictor=predictor, samples=cfg.samples,
                                   seed=eval_seed(cfg.seed), from_logits=options.get("from_logits", False),
                                   pixel_max=pixel_max, desc=f"detector fit ({predictor})")  # fmt: skip
        return {m: getattr(measures, m)(probs) for m in protocol.MEASURES}

    table = artifacts.cached_table(
        layout.folder / "adaptive" / f"fit_scores_{predictor}.csv", config, compute, digits=9
    )
    return {m: np.asarray(table[m], dtype=np.float64) for m in protocol.MEASURES}


def evaded_at(rows: dict, measure: str, upper: float | None, lower: float | None) -> np.ndarray:
    """``[N]`` bool: adversarial rows that succeed and lie inside ``[lower, upper]``."""
    adv = rows["kind"] == "adversarial"
    values = np.asarray(rows[measure], dtype=float)[adv]
    inside = np.ones(len(values), bool)
    if upper is not None:
        inside &= values <= upper
    if lower is not None:
        inside &= values >= lower
    return (np.asarray(rows["success"], dtype=float)[adv] == 1) & inside
