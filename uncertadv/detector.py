"""A deployable detector: flag inputs whose uncertainty is above a threshold fitted on clean data.

The threshold is chosen on M clean inputs at a target false-positive rate, by one of two rules
(recorded in the file as ``rule``):

- ``empirical`` (the default, as in ``metrics.tpr_at_fpr``): the ceil((1 - fpr) M)-th smallest
  clean score, so that at most ``fpr`` of the fitting inputs are flagged;
- ``conformal``: the ceil((1 - fpr)(M + 1))-th smallest, so that FPR <= fpr holds out of sample
  for exchangeable clean inputs (split conformal; needs M >= 1/fpr - 1).

An input is flagged when its score is above the threshold (``tail`` "upper"), below a lower
threshold (``tail`` "lower": the floor(fpr (M + 1))-th smallest clean score by the conformal rule,
floor(fpr M)-th by the empirical one), or either (``tail`` "two-sided", which spends fpr/2 on each
tail: above the ceil((1 - fpr/2)(M + 1))-th or below the floor((fpr/2)(M + 1))-th smallest by the
conformal rule). A lower rank of 0 would flag nothing and is refused. The lower tail catches inputs
that are too certain: PGD's images on cats vs dogs have a lower MI than clean ones. A saved detector
(format 2) records its input contract (shape, dtype, ``pixel_max``), a hash of its models'
weights and of their configuration (so another dropout rate with the same weights is refused),
the model file relative to itself, and the provenance of every sidecar (command, versions, CPU,
threads, commit, wall time).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import warnings
from pathlib import Path

import numpy as np

from uncertadv import artifacts, inputs, mc, measures, predictors

FORMAT = 2
RULES = ("empirical", "conformal")
TAILS = ("upper", "lower", "two-sided")
# Measures that need T different networks: without a stochastic layer, MI, softmax variance and
# variation ratio are 0 for every input and expected entropy is predictive entropy.
SAMPLE_MEASURES = ("expected_entropy", "mutual_information", "softmax_variance", "variation_ratio")


def weights_sha256(models: list) -> str:
    """sha256 over every weight of ``models``, in order: the identity of a trained model."""
    digest = hashlib.sha256()
    for model in models:
        for w in model.get_weights():
            digest.update(np.ascontiguousarray(w).tobytes())
    return digest.hexdigest()


def config_sha256(models: list) -> str:
    """sha256 of every layer's class and configuration (names left out, which Keras numbers per
    session): the same weights with another dropout rate or activation hash differently."""
    from uncertadv import _keras_compat as compat

    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in ("name", "build_config")}
        if isinstance(value, (list, tuple)):
            return [strip(v) for v in value]
        return value

    layers = []
    for model in models:
        for layer in compat.all_layers(model, include_self=False):
            if hasattr(layer, "layers"):  # nested models: their layers are listed themselves
                continue
            layers.append([type(layer).__name__, strip(layer.get_config())])
    return hashlib.sha256(json.dumps(layers, sort_keys=True, default=str).encode()).hexdigest()


class Detector:
    """Flags inputs ``x [N, ...]`` whose ``measure`` (higher = more uncertain) exceeds a threshold.

    models: the model file's models (a list); predictor: deterministic, mc or ensemble.
    pixel_max: the models' input range [0, pixel_max]; inputs are checked against it (uint8 is
    scaled into it; see ``uncertadv.inputs``), None for inputs in another scale."""

    def __init__(self, models, measure: str = "mutual_information", *, predictor: str = "mc", samples: int = 20,
                 seed: int = 0, from_logits: bool = False, pixel_max: float | None = 1.0,
                 tail: str = "upper"):  # fmt: skip
        self.models = list(models) if isinstance(models, (list, tuple)) else [models]
        if measure not in measures.MEASURES:
            raise ValueError(f"unknown measure {measure!r}; choose from {', '.join(measures.MEASURES)}")
        predictors.check_predictor(predictor)
        if predictor == "deterministic" and measure != "predictive_entropy":
            raise ValueError(f"{measure} is not defined for the deterministic predictor (one network)")
        chosen = mc.check_models(predictors.members(self.models, predictor), from_logits)
        if measure in SAMPLE_MEASURES and not predictors.sampled(self.models, predictor, samples):
            raise ValueError(
                f"{predictors.one_network_reason(self.models, predictor, samples)}, so {measure} is not defined "
                "(it needs two distinct networks at least); use predictive_entropy, --samples 2 or more, or a "
                "model with dropout"
            )
        hint = inputs.scale_hint(chosen[0], pixel_max)
        if hint:
            warnings.warn(hint, stacklevel=2)
        inputs.check_pixel_max(pixel_max)
        if tail not in TAILS:
            raise ValueError(f"unknown tail {tail!r}; choose from {', '.join(TAILS)}")
        if int(seed) != seed or seed < 0:  # negative keys are the adaptive attacker's own stream
            raise ValueError(f"the detector's seed must be an integer >= 0, got {seed}")
        self.tail = tail
        self.lower_threshold: float | None = None
        self.measure, self.predictor, self.samples, self.seed = measure, predictor, samples, seed
        self.from_logits, self.pixel_max = from_logits, pixel_max
        self.threshold: float | None = None
        self.fit_record: dict = {}

    def score(self, x: np.ndarray, *, strategy=None) -> np.ndarray:
        """The measure of each input: ``[N, ...] -> [N]``; ``strategy``: see ``mc.mc_predict``."""
        probs = predictors.predict(self.models, x, predictor=self.predictor, samples=self.samples, seed=self.seed,
                                   from_logits=self.from_logits, strategy=strategy,
                                   pixel_max=self.pixel_max)  # fmt: skip
        return getattr(measures, self.measure)(probs)

    def fit(self, x_clean: np.ndarray, fpr: float = 0.05, *, rule: str = "empirical") -> Detector:
        """Choose the threshold on clean inputs ``[M, ...]`` at the target ``fpr`` by ``rule`` (module doc)."""
        self._check_fit(len(x_clean), fpr, rule)
        return self.fit_scores(self.score(x_clean), fpr, rule=rule)

    def fit_scores(self, scores: np.ndarray, fpr: float = 0.05, *, rule: str = "empirical") -> Detector:
        """``fit`` from the clean inputs' scores ``[M]`` (this detector's measure, networks and T)."""
        scores = np.asarray(scores, dtype=np.float64)
        self._check_fit(len(scores), fpr, rule)
        self.threshold, self.lower_threshold = thresholds(scores, fpr, rule, self.tail)
        self.fit_record = {"target_fpr": fpr, "fit_fpr": float(np.mean(self.flags(scores))), "n_fit": len(scores),
                           "rule": rule, "tail": self.tail}  # fmt: skip
        return self

    def flags(self, scores: np.ndarray) -> np.ndarray:
        """``[N]`` bool: True where a score ``[N]`` is outside the accepted range (above the upper
        threshold, or below the lower one)."""
        if self.threshold is None and self.lower_threshold is None:
            raise ValueError("the detector has no threshold yet: fit it on clean data first")
        scores = np.asarray(scores)
        high = scores > self.threshold if self.threshold is not None else np.zeros(scores.shape, bool)
        return high | (scores < self.lower_threshold) if self.lower_threshold is not None else high

    @staticmethod
    def _check_fit(m: int, fpr: float, rule: str) -> None:
        if not 0 < fpr < 1:
            raise ValueError(f"the target false-positive rate must be in (0, 1), got {fpr}")
        if rule not in RULES:
            raise ValueError(f"unknown threshold rule {rule!r}; choose from {', '.join(RULES)}")
        need = inputs.min_negatives(fpr) - (1 if rule == "conformal" else 0)
        if m < need:
            raise ValueError(
                f"a threshold at fpr={fpr:g} needs at least {need} clean inputs, got {m}: with fewer, it is the "
                "largest clean score and flags none of them by construction"
            )

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Flags ``[N]`` bool: True where the input's score is above the threshold."""
        return self.flags(self.score(x))

    def config(self) -> dict:
        out = {"measure": self.measure, "predictor": self.predictor, "samples": self.samples, "seed": self.seed,
               "from_logits": self.from_logits}  # fmt: skip
        return out if self.tail == "upper" else {**out, "tail": self.tail}  # upper: the keys of older files

    def check_models(self, models) -> None:
        """Refuse ``models`` that are not this detector's (other weights or configuration)."""
        models = list(models) if isinstance(models, (list, tuple)) else [models]
        if [id(m) for m in models] == [id(m) for m in self.models]:
            return
        if weights_sha256(models) != weights_sha256(self.models) or config_sha256(models) != config_sha256(self.models):
            raise ValueError("these models are not the detector's (their weights or configuration differ)")

    def save(self, path: Path | str, model_file: Path | str | None = None, fit_data: dict | None = None,
             started: float | None = None) -> None:  # fmt: skip
        """Write the detector as JSON (format 2), atomically, bound to its models and their file.
        fit_data: how the clean inputs it was fitted on were chosen (recorded as given);
        started: ``time.perf_counter()`` at the start of the work, for the recorded wall time."""
        if self.threshold is None and self.lower_threshold is None:
            raise ValueError("the detector has no threshold yet: fit it on clean data first")
        path = Path(path)
        record = {
            "format": FORMAT,
            **self.config(),
            "threshold": self.threshold,
            **({} if self.lower_threshold is None else {"lower_threshold": self.lower_threshold}),
            "rule": "empirical",
            "tail": self.tail,
            **self.fit_record,
            "input": inputs.contract(self.models[0], self.pixel_max),
            "weights_sha256": weights_sha256(self.models),
            "config_sha256": config_sha256(self.models),
        }
        if fit_data is not None:
            record["fit_data"] = fit_data
        if model_file is not None:  # relative to the detector file, so that the folder can move
            record["model"] = os.path.relpath(Path(model_file).resolve(), path.resolve().parent)
            record["model_sha256"] = artifacts.file_sha256(model_file)
        provenance = artifacts.record({}, time.perf_counter() if started is None else started)
        record.update({k: v for k, v in provenance.items() if k != "config"})
        artifacts.write_json(path, record)

    @classmethod
    def load(cls, path: Path | str, models) -> Detector:
        """A saved detector for ``models``; refused if they are not the models it was fitted with."""
        path = Path(path)
        record = read(path)
        detector = cls(models, record["measure"], predictor=record["predictor"], samples=record["samples"],
                       seed=record["seed"], from_logits=record.get("from_logits", False),
                       pixel_max=record["input"]["pixel_max"], tail=record.get("tail", "upper"))  # fmt: skip
        if weights_sha256(detector.models) != record["weights_sha256"]:
            raise ValueError(f"{path} was fitted on another model (its weights differ); fit it again on this one")
        if "config_sha256" in record and config_sha256(detector.models) != record["config_sha256"]:
            raise ValueError(
                f"{path} was fitted on another model (same weights, other configuration, e.g. a dropout rate); "
                "fit it again on this one"
            )
        shape = record["input"]["shape"]
        have = [None if d is None else int(d) for d in detector.models[0].inputs[0].shape[1:]]
        if shape is not None and shape != have:
            raise ValueError(f"{path} was fitted on inputs of shape {shape}; this model takes {have}")
        detector.threshold = None if record["threshold"] is None else float(record["threshold"])
        lower = record.get("lower_threshold")
        detector.lower_threshold = None if lower is None else float(lower)
        keep = ("target_fpr", "fit_fpr", "n_fit", "fit_data", "rule", "tail")
        detector.fit_record = {k: record[k] for k in keep if k in record}
        return detector


def thresholds(scores: np.ndarray, fpr: float, rule: str, tail: str) -> tuple[float | None, float | None]:
    """``(upper, lower)`` thresholds from clean scores ``[M]`` at the target ``fpr`` (module doc); None
    for a tail that is not used. A lower rank of 0 (too few clean scores for the tail) is refused."""
    m = len(scores)
    n = m + 1 if rule == "conformal" else m
    share = fpr / 2 if tail == "two-sided" else fpr
    ordered = np.sort(np.asarray(scores, dtype=np.float64))
    upper = lower = None
    if tail != "upper":
        k = math.floor(share * n + 1e-9)
        if k < 1:
            raise ValueError(
                f"the lower threshold at {share:g} per tail is the {k}-th smallest of {m} clean scores, which flags "
                f"nothing: fit on at least {math.ceil(1 / share) - (1 if rule == 'conformal' else 0)} clean inputs"
            )
        lower = float(ordered[k - 1])
    if tail != "lower":
        k = math.ceil((1.0 - share) * n - 1e-9)
        if k > m:
            raise ValueError(f"the upper threshold at {share:g} per tail is rank {k} of {m} clean scores: fit on more")
        upper = float(ordered[k - 1])
    return upper, lower


REQUIRED = ("measure", "predictor", "samples", "seed", "threshold", "weights_sha256")


def is_detector_file(path: Path) -> bool:
    """Whether ``path`` holds a detector, of any format (so that it may be refitted in place)."""
    try:
        record = artifacts.read_json(path)
    except (ValueError, OSError):
        return False
    return isinstance(record, dict) and all(k in record for k in REQUIRED)


def read(path: Path) -> dict:
    """A detector file's record, brought to format 2; a one-line error for other files.

    Format 1 (uncertadv before this format) recorded no input contract. Files that ``detect fit``
    wrote then (they name a model) may have been fitted at --pixel-max 255 and are refused with the
    command to refit; files without a model (``Detector.save`` and the adaptive protocol) load with
    pixel_max 1, the upper tail and the empirical rule, and a warning: pixel_max 1 was the only scale
    the adaptive protocol used, but ``Detector.save`` did not check what it was fitted on."""
    record = artifacts.read_json(path)
    missing = [k for k in REQUIRED if k not in record]
    if missing:
        raise ValueError(f"{path} is not a detector file (missing {', '.join(missing)})")
    fmt = record.get("format", 1)
    if fmt == 1:
        if "model" in record:
            raise ValueError(
                f"{path} was written by an older uncertadv and does not record its input scale; refit it: "
                "uncertadv detect fit --model MODEL --data CLEAN --out DETECTOR.json [--pixel-max 255]"
            )
        if "fit_data" not in record:  # the adaptive protocol's files name their fit data; Detector.save's do not
            warnings.warn(f"{path} was written by an older uncertadv, which did not record the input scale; it is "
                          "taken as [0, 1] (pixel_max 1): refit it if it was fitted on 0-255 inputs",
                          stacklevel=3)  # fmt: skip
        record = {**record, "rule": "empirical", "tail": "upper", "input": {"shape": None, "pixel_max": 1.0}}
    elif fmt != FORMAT:
        raise ValueError(f"{path} has detector format {fmt}, which this uncertadv does not know; upgrade uncertadv")
    if record.get("tail", "upper") not in TAILS:
        raise ValueError(f"{path} has tail {record['tail']!r}; this uncertadv knows {', '.join(TAILS)}")
    return record
