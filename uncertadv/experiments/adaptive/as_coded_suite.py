"""The adaptive suite on the as-coded variant (issue 19), run because its gate passes.

The as-coded network (``as_coded_gate``; ``results/catsdogs-ablation``) couples batch-mates: its
BatchNorm takes the statistics of the batch of 5, so an image's probabilities, U and verdict are its
batch's. The batch of 5 (in the order of the source images, as the gate scores them) is therefore the
unit of everything here:

- every attack moves a whole batch (``attacks._build_detector_step`` with ``coupled``: the best
  iterate is the batch's, by the sum of its images' scores) within the authors' clip bounds;
- the cascade attacks every batch that still holds an image the attacker does not believe evades;
- the attacker keeps, per batch, the candidate its estimate ranks best (most evading images, then most
  misclassified; the earlier on a tie), so the assembled worst case is a set of batches it judged;
- the evaluator re-scores the assembled batches, in order, with its own networks (one draw of T per
  batch, key ``(evaluator seed, mc, adversarial kind, batch)``), for the label and U alike.

The known attacker attacks and chooses with exactly those networks; the fresh one with EOT (K draws
of T networks of its own per step) and chooses by the majority of K draws of its own, each judged
alone. Detectors: MI, upper and two-sided, conformal, fitted on the suite's held-out fit images
scored in batches of 5 (the gate's). Objectives, grid and steps are the suite's (``suite``); the
settings come from ``calibrate`` on the suite's calibration images, or, where the run says so, from
the features head's calibration at the same eps (a cut: it costs hours here).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from uncertadv import artifacts, inputs, measures, metrics
from uncertadv.attacks import AttackConfig, _build_detector_step
from uncertadv.detector import thresholds
from uncertadv.experiments.adaptive import as_coded_gate, suite
from uncertadv.experiments.catsdogs import ablation, perturbations, variants
from uncertadv.experiments.catsdogs.network import head_probs, keep_masks, key
from uncertadv.experiments.layout import eval_seed
from uncertadv.progress import progress_bar

VERSION = 1
BATCH = variants.AS_CODED_BATCH
MEASURE = as_coded_gate.MEASURE
FPRS = (0.01, 0.05, 0.10)  # evasion is reported at each; the attacks aim at 5%
ATTACKER_CODES = {"known": 10, "fresh": 11}  # the attackers' keys (the gate's PGD is 3)
CHOOSE_CODE = 12  # the fresh attacker's draws when it chooses among candidates
ADV_KIND = ablation.KIND_CODES["adversarial"]
_TINY = float(np.finfo(np.float32).tiny)


class BatchTarget:
    """``x [B, S, S, 3] -> (log p̂ [B, 2], U [B])``: the as-coded MC predictive of one batch and its
    uncertainty, as ``attacks._build_detector_step`` differentiates them. The masks come from
    ``key`` (set per batch): the same T networks every call (``fixed``, the known attacker), or a new
    draw per call folded in from it (the fresh attacker's EOT). The trunk is deterministic given
    its batch, so the K draws of one step share one trunk pass (memoised while the step is traced)."""

    def __init__(self, network, samples: int, fixed: bool):
        self.network, self.samples, self.fixed = network, samples, fixed
        self.key = tf.Variable(np.zeros(2, np.int64), trainable=False)
        self.calls = tf.Variable(0, dtype=tf.int64, trainable=False)
        self._trunk: tuple | None = None

    def __call__(self, x):
        if self._trunk is None or self._trunk[0] is not x:
            self._trunk = (x, self.network.trunk_outputs(x))
        z = self._trunk[1]
        rng = self.key if self.fixed else tf.random.experimental.stateless_fold_in(self.key, self.calls.assign_add(1))
        probs = head_probs(z, self.network.kernel, self.network.bias, keep_masks(rng, self.samples, tf.shape(z)[0],
                                                                                 z.shape[-1]))  # fmt: skip
        probs = tf.maximum(probs, _TINY)  # log p and the entropies' gradients stay finite where p underflows
        return tf.math.log(tf.reduce_mean(probs, axis=0)), getattr(measures, MEASURE)(probs, as_tensor=True)


@dataclasses.dataclass(frozen=True)
class Detector:
    """An MI detector of the as-coded network: the tail and its thresholds at each FPR in ``FPRS``."""

    tail: str
    cuts: dict  # fpr -> (upper or None, lower or None)

    @classmethod
    def fit(cls, fit_scores: np.ndarray, tail: str) -> Detector:
        """Thresholds at every FPR; at an FPR other than the attacks' 5% too few fit scores leave it out
        (its evasion is then NaN), at 5% they are an error."""
        cuts = {}
        for f in FPRS:
            try:
                cuts[f] = thresholds(fit_scores, f, "conformal", tail)
            except ValueError:
                if f == 0.05:
                    raise
        return cls(tail, cuts)

    def accepts(self, u: np.ndarray, fpr: float = 0.05) -> np.ndarray | None:
        """``[N]`` bool: U inside the accepted range at ``fpr``; None where that FPR has no threshold."""
        if fpr not in self.cuts:
            return None
        upper, lower = self.cuts[fpr]
        ok = np.ones(len(u), bool) if upper is None else u <= upper
        return ok & (True if lower is None else u >= lower)


def evaluator_parts(seed: int) -> tuple[int, int, int]:
    """The evaluator's key parts for adversarial images; batch b draws from ``key(*parts, b)``. The
    calibration images' batch b draws the same networks as the sources' batch b: both are the
    evaluator's, and the known attacker knows them."""
    return eval_seed(seed), ablation.PREDICTOR_CODES["mc"], ADV_KIND


def evaluator_probs(network, images: np.ndarray, samples: int, seed: int) -> np.ndarray:
    """The evaluator's ``[T, N, 2]`` on adversarial images, batch b keyed ``(*evaluator_parts(seed), b)``."""
    return ablation.predict(network, images, samples, BATCH, evaluator_parts(seed))


def verdict(probs: np.ndarray, labels: np.ndarray, det: Detector, fpr: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """``(misclassified [N], evading [N])`` of one draw ``probs [T, N, 2]`` against ``labels [N]``."""
    wrong = probs.mean(axis=0).argmax(axis=-1) != labels
    u = np.asarray(getattr(measures, MEASURE)(probs), np.float64)
    return wrong, wrong & det.accepts(u, fpr)


def attacker_estimate(network, images, labels, det: Detector, attacker: str, *, samples: int, seed: int, eot: int):
    """The attacker's ``(misclassified [N], evading [N])``: the evaluator's own draw (known), or the
    majority of ``eot`` draws of its own, each judged alone (fresh)."""
    if attacker == "known":
        return verdict(evaluator_probs(network, images, samples, seed), labels, det)
    votes = np.zeros((2, len(images)))
    for d in range(eot):
        probs = ablation.predict(network, images, samples, BATCH, (seed, ATTACKER_CODES["fresh"], CHOOSE_CODE, d))
        votes += np.stack(verdict(probs, labels, det))
    return votes[0] > eot / 2, votes[1] > eot / 2


def batch_rank(misclassified: np.ndarray, evading: np.ndarray) -> np.ndarray:
    """Per batch of ``BATCH`` images: ``[B]`` ranks, more evading images first, then more misclassified."""
    per = lambda a: np.add.reduceat(a.astype(np.int64), np.arange(0, len(a), BATCH))  # noqa: E731
    return per(evading) * (BATCH + 1) + per(misclassified)


_COMPILED: dict = {}  # what shapes the graph -> (network, BatchTarget, compiled step); c, τ, m, κ, U* are inputs


def _compiled(network, config: AttackConfig, bounds, known: bool):
    """The batch target and the compiled attack of one graph shape, built once per network."""
    shape = (id(network), known, config.samples, config.iterations, config.eot, config.loss, config.penalty,
             config.update, config.lower_threshold is None)  # fmt: skip
    if shape not in _COMPILED or _COMPILED[shape][0] is not network:
        model = BatchTarget(network, config.samples, fixed=known)
        step = tf.function(_build_detector_step(model, config, bounds=bounds, coupled=True), reduce_retracing=True)
        _COMPILED[shape] = (network, model, step)
    return _COMPILED[shape][1:]


def attack_batches(network, x: np.ndarray, labels: np.ndarray, batches: np.ndarray, det: Detector, options: dict, *,
                   attacker: str, eps: float, iterations: int, samples: int, seed: int, eot: int, u_target: float,
                   stage: int) -> np.ndarray:  # fmt: skip
    """The detector-aware attack ``options`` (a ``suite.grid`` setting) on the listed ``batches`` of
    ``x [N, S, S, 3]``: ``(images [N, ...], first [N])``, the other batches as given; first: the
    first iterate (0 = the random start) whose batch evaded for that image by the attacker's
    estimate, -1 if none or not attacked. Step eps/4 with step decay and
    the best iterate, as the suite; random starts keyed ``(seed, attacker, stage, batch)``."""
    known = attacker == "known"
    upper, lower = det.cuts[0.05]
    target = {"u_target": u_target} if options.get("penalty") == "u-matching" else {}
    config = AttackConfig(method="pgd-adaptive-known" if known else "pgd-adaptive", eps=eps, samples=samples,
                          iterations=iterations, step=eps / 4, measure=MEASURE, threshold=upper,
                          lower_threshold=lower, detector_seed=0 if known else None, eot=1 if known else eot,
                          schedule="decay", best_iterate=True, **options, **target)  # fmt: skip
    bounds = tuple(tf.constant(b.reshape(1, 1, 1, 3)) for b in perturbations.clip_bounds(variants.named(
        as_coded_gate.VARIANT).clip))  # fmt: skip
    model, run = _compiled(network, config, bounds, known)
    log_target = np.log(config.u_target) if config.u_target is not None else 0.0
    settings = tf.constant([config.c, upper, -1.0 if lower is None else lower, config.margin, config.kappa,
                            log_target, 0.0], tf.float32)  # fmt: skip
    out = np.array(x, np.float32, copy=True)
    first = np.full(len(x), -1, np.int64)
    radius, step = tf.constant(eps / 255.0), tf.constant(eps / 4 / 255.0)
    for b in progress_bar(batches, desc=f"{attacker} attack, {len(batches)} batches", total=len(batches)):
        sl = slice(b * BATCH, (b + 1) * BATCH)
        evaluator = key(*evaluator_parts(seed), b)
        model.key.assign(evaluator if known else key(seed, ATTACKER_CODES[attacker], stage, int(b), 1))
        model.calls.assign(0)
        start = tf.constant(key(seed, ATTACKER_CODES[attacker], stage, int(b), 0))
        xb, yb = tf.constant(x[sl], tf.float32), tf.constant(labels[sl], tf.int64)
        images, _, first_evading = run(xb, yb, radius, step, start, settings)
        out[sl], first[sl] = images.numpy(), first_evading.numpy()
    return out, first


@dataclasses.dataclass(frozen=True)
class Inputs:
    """What every stage shares: the network, the sources and their attack labels, PGD's images, the
    evaluator's clean correctness, the fit scores, and the key of it all."""

    network: object
    x: np.ndarray  # [N, S, S, 3] the ablation's adversarial sources
    y: np.ndarray  # [N] true labels
    labels: np.ndarray  # [N] the labels the attacks move away from (the predictor's own, as the gate's PGD)
    pgd: np.ndarray  # [N, S, S, 3] the gate's PGD images
    correct: np.ndarray  # [N] the evaluator's clean verdict
    fit_scores: np.ndarray  # [M] MI of the held-out fit images
    key: dict


def _plain(want: dict) -> dict:
    """``want`` as its JSON record reads back (tuples as lists), so that a saved key compares equal."""
    return json.loads(json.dumps(want))


def _stage(folder: Path, name: str, want: dict, compute) -> tuple[np.ndarray, np.ndarray]:
    """A stage's ``(images [N, ...], first [N])`` (``attack_batches``), cached by content (``want``)
    under ``folder/attacks``."""
    want = _plain(want)
    path = folder / "attacks" / f"suite_{name}-{ablation._digest(want)}.npz"
    if artifacts.reusable_record(artifacts.sidecar_path(path), want, [path]) is not None:
        with np.load(path, allow_pickle=False) as saved:
            return saved["x_adv"], saved["first"]
    start = time.perf_counter()
    x_adv, first = compute()
    with artifacts.atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, x_adv=x_adv, first=first)
    artifacts.write_json(artifacts.sidecar_path(path), artifacts.record(want, start))
    return x_adv, first


def cascade(inp: Inputs, cfg: as_coded_gate.GateConfig, suite_cfg: suite.SuiteConfig, det: Detector, attacker: str,
            settings: dict[str, dict], eps: float, folder: Path) -> list[dict]:  # fmt: skip
    """``[{"stage", "images" [N, ...], "n_batches_attacked", "wrong" [N], "evading" [N], "first"}]``, pgd
    first, each the attacker's selection through that stage and its own estimate of it; first: the
    stage's first evading iterate of each image of its attacked batches (``attack_batches``)."""
    a = cfg.ablation
    guess = dict(samples=a.samples, seed=a.seed, eot=suite_cfg.eot)
    images = inp.pgd.copy()
    wrong, evading = attacker_estimate(inp.network, images, inp.labels, det, attacker, **guess)
    rank = batch_rank(wrong, evading)
    stages = [{"stage": "pgd", "images": images.copy(), "n_batches_attacked": 0, "wrong": wrong.copy(),
               "evading": evading.copy()}]  # fmt: skip
    u_target = float(np.median(inp.fit_scores))
    for number, objective in enumerate(suite.OBJECTIVES, start=1):
        todo = np.flatnonzero(~np.logical_and.reduceat(evading, np.arange(0, len(images), BATCH)))
        options = settings[objective]
        want = {**inp.key, "tail": det.tail, "cuts": {str(f): c for f, c in det.cuts.items()}, "attacker": attacker,
                "objective": objective, "options": options, "u_target": u_target, "steps": suite_cfg.steps,
                "eot": suite_cfg.eot, "batches": todo.tolist(), "stage": number, "eps": eps}  # fmt: skip
        compute = functools.partial(attack_batches, inp.network, inp.x, inp.labels, todo, det, options,
                                    attacker=attacker, eps=eps, iterations=suite_cfg.steps, u_target=u_target,
                                    stage=number, **guess)  # fmt: skip
        adv, first = _stage(folder, f"{objective}_{attacker}_eps{eps:g}_{det.tail}", want, compute)
        new_wrong, new_evading = attacker_estimate(inp.network, adv, inp.labels, det, attacker, **guess)
        take = np.zeros(len(rank), bool)  # a batch changes only for a strictly better rank (earlier on a tie)
        take[todo] = batch_rank(new_wrong, new_evading)[todo] > rank[todo]
        for b in np.flatnonzero(take):
            sl = slice(b * BATCH, (b + 1) * BATCH)
            images[sl], wrong[sl], evading[sl] = adv[sl], new_wrong[sl], new_evading[sl]
        rank = batch_rank(wrong, evading)
        attacked = np.isin(np.arange(len(images)) // BATCH, todo)
        stages.append({"stage": objective, "images": images.copy(), "n_batches_attacked": int(len(todo)),
                       "wrong": wrong.copy(), "evading": evading.copy(), "first": first[attacked]})  # fmt: skip
    return stages


def calibrate(inp_cal: Inputs, cfg: as_coded_gate.GateConfig, suite_cfg: suite.SuiteConfig, det: Detector,
              objective: str, eps: float, folder: Path) -> dict:  # fmt: skip
    """The suite's calibration of one objective on the as-coded network (known attacker,
    ``calibration_steps``): per grid setting, the batches of the calibration images that PGD does not
    make evade are attacked, each batch keeps the better of PGD and the attack, and the rate is the
    share of all calibration images that evade. Each setting's rate is saved as it finishes."""
    a = cfg.ablation
    guess = dict(samples=a.samples, seed=a.seed, eot=suite_cfg.eot)
    u_target = float(np.median(inp_cal.fit_scores))
    settings = suite.grid(objective)
    want = {**inp_cal.key, "tail": det.tail, "cuts": {str(f): c for f, c in det.cuts.items()}, "objective": objective,
            "grid": settings, "steps": suite_cfg.calibration_steps, "u_target": u_target, "eps": eps}  # fmt: skip
    want = _plain(want)
    path = folder / "adaptive" / f"calibration_{objective}_eps{eps:g}_{det.tail}.json"
    found = artifacts.reusable_record(path, want, [])
    if found is not None:
        return found
    run = suite.GridRun(path, want)
    wrong, evading = attacker_estimate(inp_cal.network, inp_cal.pgd, inp_cal.labels, det, "known", **guess)
    rank = batch_rank(wrong, evading)
    todo = np.flatnonzero(~np.logical_and.reduceat(evading, np.arange(0, len(evading), BATCH)))
    per_batch = np.add.reduceat(evading.astype(int), np.arange(0, len(evading), BATCH))
    left = run.left(settings)
    for options in progress_bar(left, desc=f"calibrate {objective} {det.tail} ({len(todo)} batches)", total=len(left)):
        adv, _ = attack_batches(inp_cal.network, inp_cal.x, inp_cal.labels, todo, det, options, attacker="known",
                             eps=eps, iterations=suite_cfg.calibration_steps, u_target=u_target, stage=0,
                             **guess)  # fmt: skip
        new_wrong, new_evading = attacker_estimate(inp_cal.network, adv, inp_cal.labels, det, "known", **guess)
        new_per_batch = np.add.reduceat(new_evading.astype(int), np.arange(0, len(adv), BATCH))
        better = batch_rank(new_wrong, new_evading) > rank
        better[np.setdiff1d(np.arange(len(rank)), todo)] = False
        run.add(float(np.where(better, new_per_batch, per_batch).sum() / len(adv)))
    return run.finish(settings, pgd_evasion=float(evading.mean()), n_batches_attacked=int(len(todo)))


def features_head_settings(folder: Path, eps: float, tail: str, steps: int) -> dict[str, dict]:
    """The features head's calibrated settings (``folder/adaptive``, folder: ``results/catsdogs``), MI at
    ``eps``: the tail's own where it was calibrated, else the two-sided ones (the upper tail is skipped there,
    since PGD already evades wherever it succeeds). A missing record, or one calibrated at other
    ``steps``, is a one-line error."""
    out = {}
    for objective in suite.OBJECTIVES:
        for t in dict.fromkeys((tail, "two-sided")):
            name = suite.stem("calibration", objective, eps, "mc", MEASURE, t)
            path = folder / "adaptive" / f"{name}.json"
            if path.is_file():
                record = artifacts.read_json(path)
                if record["config"]["steps"] != steps:
                    raise ValueError(f"{path} calibrated at {record['config']['steps']} steps, this suite at {steps}")
                out[objective] = {"setting": record["setting"], "from": str(path.name)}
                break
        else:
            raise ValueError(f"no calibration of {objective} at eps {eps:g} in {folder}: run the "
                             f"suite on the features head first (make catsdogs-adaptive)")  # fmt: skip
    return out


def judged_rows(inp: Inputs, det: Detector, images: np.ndarray, samples: int, seed: int) -> dict[str, np.ndarray]:
    """The evaluator's re-judging of assembled batches ``images [N, ...]``: ``u``, ``success`` and
    ``evaded`` at each FPR, ``[N]`` each."""
    probs = evaluator_probs(inp.network, images, samples, seed)
    u = np.asarray(getattr(measures, MEASURE)(probs), np.float64)
    success = inp.correct & (probs.mean(axis=0).argmax(axis=-1) != inp.y)
    out = {"u": u, "success": success}
    for f in FPRS:
        accepted = det.accepts(u, f)
        out[f"evaded_fpr{int(round(f * 100)):02d}"] = None if accepted is None else success & accepted
    return out


def table_row(judged: dict, fit_scores: np.ndarray, *, rounds: int, seed: int, pgd: dict | None = None,
              **key) -> dict:  # fmt: skip
    """One row of ``adaptive.csv``: evasion at each FPR over the N images, and at 5% the detection left
    (flagged among the successful) and, given PGD's ``judged_rows`` (``pgd``), the gain over PGD paired
    by image; each with a percentile bootstrap interval that resamples whole batches of the images
    and of the fit images (outputs are coupled within a batch), the threshold re-fitted each round.
    ``key`` holds the row's ``tail`` and the rest of its columns."""
    n, success, evaded = len(judged["u"]), int(judged["success"].sum()), int(judged["evaded_fpr05"].sum())
    iv = batch_intervals(judged, fit_scores, key["tail"], pgd=pgd, rounds=rounds, seed=seed)
    row = {**key, "n": n, "n_successful": success, "success_rate": success / n, "n_evading": evaded,
           "evasion_rate": evaded / n, "evasion_rate_lo": iv["evasion"][0],
           "evasion_rate_hi": iv["evasion"][1]}  # fmt: skip
    for f in FPRS:
        name = f"evaded_fpr{int(round(f * 100)):02d}"
        row[name.replace("evaded", "evasion")] = float("nan") if judged[name] is None else float(judged[name].mean())
    row.update(detection_left=(success - evaded) / success if success else float("nan"),
               detection_left_lo=iv["left"][0], detection_left_hi=iv["left"][1])  # fmt: skip
    if pgd is not None:
        row.update(evasion_gain=float(judged["evaded_fpr05"].mean() - pgd["evaded_fpr05"].mean()),
                   evasion_gain_lo=iv["gain"][0], evasion_gain_hi=iv["gain"][1])  # fmt: skip
    return row


def batch_intervals(judged: dict, fit_scores: np.ndarray, tail: str, *, pgd: dict | None = None, rounds: int,
                    seed: int, level: float = 0.95) -> dict[str, tuple[float, float]]:  # fmt: skip
    """Percentile intervals at 5% FPR of ``judged_rows`` (``u``, ``success`` ``[N]``): ``evasion`` (the
    evading share of the N images), ``left`` (the flagged share of the successful ones) and, with
    PGD's rows on the same images, ``gain`` (evasion minus PGD's, paired). Each round resamples whole
    batches of ``BATCH`` of both the images and ``fit_scores [M]`` and re-fits the threshold; NaN
    where no round has a successful image."""
    u, success = judged["u"], judged["success"]
    rng = np.random.default_rng(seed)
    w_img = metrics._cluster_counts(np.arange(len(u)) // BATCH, rounds, rng)  # [R, N]
    w_fit = metrics._cluster_counts(np.arange(len(fit_scores)) // BATCH, rounds, rng).astype(int)  # [R, M]
    evasion, left, gain = [], [], []
    for r in range(rounds):
        det = Detector(tail, {0.05: thresholds(np.repeat(fit_scores, w_fit[r]), 0.05, "conformal", tail)})
        evaded = success & det.accepts(u)
        evasion.append(w_img[r] @ evaded / w_img[r].sum())
        if w_img[r] @ success > 0:
            left.append(w_img[r] @ (success & ~evaded) / (w_img[r] @ success))
        if pgd is not None:
            gain.append(evasion[-1] - w_img[r] @ (pgd["success"] & det.accepts(pgd["u"])) / w_img[r].sum())
    nan = (float("nan"), float("nan"))
    return {"evasion": metrics._percentiles(np.array(evasion), level),
            "left": metrics._percentiles(np.array(left), level) if left else nan,
            "gain": metrics._percentiles(np.array(gain), level) if gain else nan}  # fmt: skip


COLUMNS = ("variant", "predictor", "measure", "tail", "eps", "attack", "attacker", "objective", "c", "kappa",
           "margin", "update", "steps", "calibration", "n_batches_attacked", "n", "n_successful", "success_rate",
           "n_evading", "evasion_fpr01", "evasion_fpr05", "evasion_fpr10", "evasion_rate", "evasion_rate_lo",
           "evasion_rate_hi", "detection_left", "detection_left_lo", "detection_left_hi", "evasion_gain",
           "evasion_gain_lo", "evasion_gain_hi")  # fmt: skip
IMAGE_COLUMNS = ("tail", "eps", "attack", "attacker", "index", "batch", "u", "success", "evaded_fpr01",
                 "evaded_fpr05", "evaded_fpr10")  # fmt: skip


def run(cfg: as_coded_gate.GateConfig, suite_cfg: suite.SuiteConfig, calibration: str, passing: list[float],
        trunk=None) -> list[Path]:  # fmt: skip
    """The suite on the as-coded network at each eps in ``passing`` (those whose gate passes).
    calibration: ``own`` (the suite's, on this network) or ``features-head`` (the settings the suite
    calibrated on the features head, in the ``catsdogs`` folder beside the ablation's). Writes
    ``as-coded/adaptive.{csv,json}``, ``adaptive_images.csv`` and ``adaptive_curves.csv`` under the
    ablation folder."""
    if calibration not in ("own", "features-head"):
        raise ValueError(f"calibration is own or features-head, got {calibration!r}")
    a = cfg.ablation
    start = time.perf_counter()
    trunks = ablation.Trunks(a, trunk)
    x, y = ablation.load_test(a)
    data_sha256 = inputs.data_sha256(x, y)
    src = as_coded_gate.draw_indices(len(x), a.n, a.seed)["adversarial"]
    held = as_coded_gate.protocol.held_out(len(x), a.n, a.seed, cfg.n_fit, cfg.n_calibration)
    network, head_record = ablation.ensure_head(a, trunks, variants.named(as_coded_gate.VARIANT))
    fit_scores = as_coded_gate._mi(as_coded_gate._probs(network, a, as_coded_gate.FIT_KIND, x[held["fit"]]))
    clean = as_coded_gate._probs(network, a, ablation.KIND_CODES["source"], x[src])
    correct = clean.mean(axis=0).argmax(axis=-1) == y[src]
    rows, images, curves, calibrations = [], [], [], {}
    for eps in passing:
        pgd, labels = as_coded_gate.pgd_set(cfg, network, head_record, x[src], y[src], eps, data_sha256)
        key_ = {"version": VERSION, "head": head_record["sha256"], "data_sha256": data_sha256, "seed": a.seed,
                "samples": a.samples, "pgd_sha256": inputs.data_sha256(pgd, labels)}  # fmt: skip
        inp = Inputs(network, x[src], y[src], labels, pgd, correct, fit_scores, key_)
        if calibration == "own":
            cal = held["calibration"]
            cal_pgd, cal_labels = as_coded_gate.pgd_set(cfg, network, head_record, x[cal], y[cal], eps, data_sha256,
                                                        role="calibration")  # fmt: skip
            inp_cal = Inputs(network, x[cal], y[cal], cal_labels, cal_pgd, np.ones(len(cal), bool), fit_scores,
                             {**key_, "pgd_sha256": inputs.data_sha256(cal_pgd, cal_labels)})  # fmt: skip
        for tail in suite_cfg.tails:
            det = Detector.fit(fit_scores, tail)
            if calibration == "own":
                chosen = {o: calibrate(inp_cal, cfg, suite_cfg, det, o, eps, a.folder / as_coded_gate.VARIANT)
                          for o in suite.OBJECTIVES}  # fmt: skip
                settings = {o: r["setting"] for o, r in chosen.items()}
                calibrations[f"eps{eps:g}_{tail}"] = {o: {"setting": r["setting"], "rates": r["rates"]}
                                                      for o, r in chosen.items()}  # fmt: skip
            else:
                found = features_head_settings(
                    Path(a.folder).parent / "catsdogs", eps, tail, suite_cfg.calibration_steps
                )
                settings = {o: r["setting"] for o, r in found.items()}
                calibrations[f"eps{eps:g}_{tail}"] = found
            base = {"variant": as_coded_gate.VARIANT, "predictor": "mc", "measure": MEASURE, "tail": tail,
                    "eps": eps, "steps": suite_cfg.steps, "calibration": calibration}  # fmt: skip
            row = functools.partial(table_row, fit_scores=fit_scores, rounds=a.bootstrap, seed=a.seed, **base)

            judged = pgd_judged = judged_rows(inp, det, pgd, a.samples, a.seed)
            rows.append(row(judged, attack="pgd", attacker="", objective="", n_batches_attacked=""))
            images += _image_rows(judged, tail, eps, "pgd", "")
            for attacker in suite_cfg.attackers:
                stages = cascade(inp, cfg, suite_cfg, det, attacker, settings, eps, a.folder / as_coded_gate.VARIANT)
                for stage in stages[1:]:
                    curves += _curve(stage["first"], suite_cfg.steps, tail=tail, eps=eps, attacker=attacker,
                                     objective=stage["stage"])  # fmt: skip
                    judged = judged_rows(inp, det, stage["images"], a.samples, a.seed)
                    options = {k: settings[stage["stage"]].get(k, "") for k in ("c", "kappa", "margin", "update")}
                    rows.append(row(judged, attack="cascade", attacker=attacker, objective=stage["stage"],
                                    n_batches_attacked=stage["n_batches_attacked"], **options))  # fmt: skip
                rows.append(row(judged, pgd=pgd_judged, attack="worst-case", attacker=attacker, objective="",
                                n_batches_attacked=""))  # fmt: skip
                images += _image_rows(judged, tail, eps, "worst-case", attacker)
    folder = a.folder / as_coded_gate.VARIANT
    csv_path, images_path = folder / "adaptive.csv", folder / "adaptive_images.csv"
    artifacts.write_csv(csv_path, {c: [r.get(c, "") for r in rows] for c in COLUMNS})
    artifacts.write_csv(images_path, {c: [r[c] for r in images] for c in IMAGE_COLUMNS})
    curves_path = folder / "adaptive_curves.csv"
    artifacts.write_csv(curves_path, {c: [r[c] for r in curves] for c in CURVE_COLUMNS})
    # the ledger re-fits the threshold in each bootstrap round at its own level (claim 12): it needs these
    fit_path = folder / "adaptive_fit_scores.csv"
    artifacts.write_csv(fit_path, {"index": held["fit"], "batch": np.arange(len(fit_scores)) // BATCH, "u": fit_scores})
    record = artifacts.record({**cfg.recorded(), "suite": dataclasses.asdict(suite_cfg) | {"layout": None},
                               "calibration": calibration, "batch": BATCH, "fprs": list(FPRS)}, start,
                              evaluator_seed=eval_seed(a.seed), calibrations=calibrations, eps_run=passing,
                              sha256=artifacts.file_sha256(csv_path),
                              outputs=[csv_path.name, images_path.name, curves_path.name, fit_path.name])  # fmt: skip
    json_path = folder / "adaptive.json"
    artifacts.write_json(json_path, record)
    return [csv_path, images_path, json_path, curves_path, fit_path]


CURVE_COLUMNS = ("tail", "eps", "attacker", "objective", "iterate", "n_attacked", "n_evading")
CURVE_EVERY = 5  # iterates between the curve's points


def _curve(first: np.ndarray, steps: int, **key) -> list[dict]:
    """Evasion by the attacker's estimate against iterates: of the stage's attacked images (``first``
    ``[K]``, ``attack_batches``), how many had evaded by iterate k, every CURVE_EVERY and the last."""
    return [{**key, "iterate": k, "n_attacked": len(first), "n_evading": int(((first >= 0) & (first <= k)).sum())}
            for k in sorted(set(range(0, steps + 1, CURVE_EVERY)) | {steps})]  # fmt: skip


def _image_rows(judged: dict, tail: str, eps: float, attack: str, attacker: str) -> list[dict]:
    n = len(judged["u"])
    return [{"tail": tail, "eps": eps, "attack": attack, "attacker": attacker, "index": i, "batch": i // BATCH,
             "u": float(judged["u"][i]), "success": int(judged["success"][i]),
             **{name: "" if judged[name] is None else int(judged[name][i]) for name in _EVADED}}
            for i in range(n)]  # fmt: skip


_EVADED = tuple(f"evaded_fpr{int(round(f * 100)):02d}" for f in FPRS)


def findings(folder: Path) -> str:
    """The README block of the ablation folder: per tail, PGD's and each attacker's worst-case evasion at 5%
    FPR over the N images, and the detection left among the worst case's successful images (95% intervals
    resampling whole batches)."""
    path = folder / as_coded_gate.VARIANT / "adaptive.csv"
    if not path.is_file():
        return "(the suite has not run on as-coded here: `make catsdogs-adaptive` runs it)\n"
    table = artifacts.read_table(path)
    attackers = [a if isinstance(a, str) else "" for a in table["attacker"]]
    lines = ["| eps | tail | attack | evasion at 5% FPR [95% CI] | detection left [95% CI] of successful |",
             "|---|---|---|---|---|"]  # fmt: skip
    for i, attack in enumerate(table["attack"]):
        if attack == "cascade":
            continue
        who = "pgd" if attack == "pgd" else f"worst case, {attackers[i]}"
        r = {k: v[i] for k, v in table.items()}
        left = ("n/a" if r["n_successful"] == 0 else f"{r['detection_left']:.3f} [{r['detection_left_lo']:.2f}, "
                f"{r['detection_left_hi']:.2f}] of {int(r['n_successful'])}")  # fmt: skip
        lines.append(f"| {r['eps']:g} | {r['tail']} | {who} | {r['evasion_rate']:.3f} [{r['evasion_rate_lo']:.2f}, "
                     f"{r['evasion_rate_hi']:.2f}] | {left} |")  # fmt: skip
    return "\n".join(lines) + "\n"
