"""A deployable detector: flag inputs whose uncertainty is above a threshold fitted on clean data.

The threshold is chosen on clean inputs at a target false-positive rate (the same rule as
``metrics.tpr_at_fpr``: the ceil((1 - fpr) * M)-th smallest of the M clean scores; an input is
flagged when its score is above it). A saved detector is bound to its model: it records a hash
of every weight, and ``Detector.load`` refuses another model.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np

from uncertadv import artifacts, measures, predictors


def weights_sha256(models: list) -> str:
    """sha256 over every weight of ``models``, in order: the identity of a trained model."""
    digest = hashlib.sha256()
    for model in models:
        for w in model.get_weights():
            digest.update(np.ascontiguousarray(w).tobytes())
    return digest.hexdigest()


class Detector:
    """Flags inputs ``x [N, ...]`` whose ``measure`` (higher = more uncertain) exceeds a threshold.

    models: the model file's models (a list); predictor: deterministic, mc or ensemble."""

    def __init__(self, models, measure: str = "mutual_information", *, predictor: str = "mc", samples: int = 20,
                 seed: int = 0, from_logits: bool = False):  # fmt: skip
        self.models = list(models) if isinstance(models, (list, tuple)) else [models]
        if measure not in measures.MEASURES:
            raise ValueError(f"unknown measure {measure!r}; choose from {', '.join(measures.MEASURES)}")
        predictors.check_predictor(predictor)
        if predictor == "deterministic" and measure != "predictive_entropy":
            raise ValueError(f"{measure} is not defined for the deterministic predictor (one network)")
        self.measure, self.predictor, self.samples, self.seed = measure, predictor, samples, seed
        self.from_logits = from_logits
        self.threshold: float | None = None
        self.fit_record: dict = {}

    def score(self, x: np.ndarray, *, strategy=None) -> np.ndarray:
        """The measure of each input: ``[N, ...] -> [N]``; ``strategy``: see ``mc.mc_predict``."""
        probs = predictors.predict(self.models, x, predictor=self.predictor, samples=self.samples, seed=self.seed,
                                   from_logits=self.from_logits, strategy=strategy)  # fmt: skip
        return getattr(measures, self.measure)(probs)

    def fit(self, x_clean: np.ndarray, fpr: float = 0.05) -> Detector:
        """Choose the threshold on clean inputs so that at most ``fpr`` of them are flagged."""
        return self.fit_scores(self.score(x_clean), fpr)

    def fit_scores(self, scores: np.ndarray, fpr: float = 0.05) -> Detector:
        """``fit`` from the clean inputs' scores ``[M]`` (this detector's measure, networks and T)."""
        if not 0 < fpr < 1:
            raise ValueError(f"the target false-positive rate must be in (0, 1), got {fpr}")
        k = math.ceil((1.0 - fpr) * len(scores))
        self.threshold = float(np.sort(scores)[k - 1])
        self.fit_record = {"target_fpr": fpr, "fit_fpr": float(np.mean(scores > self.threshold)),
                           "n_fit": int(len(scores))}  # fmt: skip
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Flags ``[N]`` bool: True where the input's score is above the threshold."""
        if self.threshold is None:
            raise ValueError("the detector has no threshold yet: fit it on clean data first")
        return self.score(x) > self.threshold

    def config(self) -> dict:
        return {"measure": self.measure, "predictor": self.predictor, "samples": self.samples, "seed": self.seed,
                "from_logits": self.from_logits}  # fmt: skip

    def save(self, path: Path | str, model_file: Path | str | None = None, fit_data: dict | None = None) -> None:
        """Write the detector as JSON, atomically, bound to its model's weights (and file).
        fit_data: how the clean inputs it was fitted on were chosen (recorded as given)."""
        if self.threshold is None:
            raise ValueError("the detector has no threshold yet: fit it on clean data first")
        path = Path(path)
        record = {**self.config(), "threshold": self.threshold, **self.fit_record,
                  "weights_sha256": weights_sha256(self.models)}  # fmt: skip
        if fit_data is not None:
            record["fit_data"] = fit_data
        if model_file is not None:
            record["model"] = str(Path(model_file).resolve())
            record["model_sha256"] = artifacts.file_sha256(model_file)
        artifacts.write_json(path, record)

    @classmethod
    def load(cls, path: Path | str, models) -> Detector:
        """A saved detector for ``models``; refused if they are not the models it was fitted with."""
        record = artifacts.read_json(path)
        missing = [
            k for k in ("measure", "predictor", "samples", "seed", "threshold", "weights_sha256") if k not in record
        ]
        if missing:
            raise ValueError(f"{path} is not a detector file (missing {', '.join(missing)})")
        detector = cls(models, record["measure"], predictor=record["predictor"], samples=record["samples"],
                       seed=record["seed"], from_logits=record.get("from_logits", False))  # fmt: skip
        if weights_sha256(detector.models) != record["weights_sha256"]:
            raise ValueError(f"{path} was fitted on another model (its weights differ); fit it again on this one")
        detector.threshold = float(record["threshold"])
        detector.fit_record = {k: record[k] for k in ("target_fpr", "fit_fpr", "n_fit", "fit_data") if k in record}
        return detector
