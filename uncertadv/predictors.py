"""Predictors: the three ways the paper turns dropout networks into predictions.

- ``deterministic``: the first model with dropout off (one network, S = 1);
- ``mc``: the first model's T sampled dropout networks (S = T);
- ``ensemble``: T sampled networks of every model (S = K * T).

A model with one file gives ``deterministic`` and ``mc``; a list of K models adds ``ensemble``.
"""

from __future__ import annotations

import numpy as np

from uncertadv import mc
from uncertadv.measures import MEASURES, all_measures

PREDICTORS = ("deterministic", "mc", "ensemble")


def check_predictor(predictor: str) -> str:
    """``predictor`` if it is one of PREDICTORS, else a one-line ValueError."""
    if predictor not in PREDICTORS:
        raise ValueError(f"unknown predictor {predictor!r}; choose from {', '.join(PREDICTORS)}")
    return predictor


def members(models: list, predictor: str) -> list:
    """The models a predictor uses: the first one, or all of them for ``ensemble``."""
    check_predictor(predictor)
    models = list(models) if isinstance(models, (list, tuple)) else [models]
    if predictor == "ensemble" and len(models) < 2:
        raise ValueError("the ensemble predictor needs an ensemble manifest (two or more models)")
    return list(models) if predictor == "ensemble" else list(models[:1])


def predict(
    models: list,
    x: np.ndarray,
    *,
    predictor: str,
    samples: int,
    seed: int,
    batch_size: int | None = None,
    from_logits: bool = False,
    desc: str | None = None,
    strategy=None,
    pixel_max: float | None = 1.0,
) -> np.ndarray:
    """Probabilities ``[S, N, C]`` of ``x [N, ...]`` under one predictor (see the module doc).
    strategy: an optional ``tf.distribute`` strategy; pixel_max: the model's input range
    [0, pixel_max], checked (see ``mc.mc_predict``)."""
    chosen = members(models, predictor)
    if predictor == "deterministic":
        return mc.deterministic_predict(chosen, x, from_logits=from_logits, desc=desc, strategy=strategy,
                                        pixel_max=pixel_max)  # fmt: skip
    return mc.mc_predict(chosen, x, samples=samples, seed=seed, batch_size=batch_size, from_logits=from_logits,
                         desc=desc, strategy=strategy, pixel_max=pixel_max)  # fmt: skip


def distinct_networks(models: list, predictor: str, samples: int) -> int:
    """How many different networks a predictor draws: 1 for ``deterministic``; T for ``mc`` (1 on a model
    without dropout); K * T for ``ensemble`` (K at T = 1, or without dropout)."""
    chosen = members(models, predictor)
    if predictor == "deterministic":
        return 1
    per_model = samples if mc.stochastic_layers(chosen[0]) else 1
    return len(chosen) * per_model


def sampled(models: list, predictor: str, samples: int) -> bool:
    """Whether a predictor's networks differ, so that the sample measures (expected entropy, MI, softmax
    variance, variation ratio) carry information: two distinct networks at least. Not for
    ``deterministic``, nor for ``mc`` at T = 1 or on a model without dropout (T identical networks)."""
    return distinct_networks(models, predictor, samples) >= 2


def one_network_reason(models: list, predictor: str, samples: int) -> str:
    """Why ``sampled`` is False, in words a user can act on."""
    if predictor == "deterministic":
        return "the deterministic predictor has one network"
    if not mc.stochastic_layers(members(models, predictor)[0]):
        return f"model {members(models, predictor)[0].name!r} has no dropout layer: its T networks are identical"
    return f"the {predictor} predictor at --samples {samples} draws one network"


def scores(probs: np.ndarray, *, predictor: str) -> dict[str, np.ndarray]:
    """``pred``, ``confidence`` (max p̂) and the five measures of ``probs [S, N, C]``, each ``[N]``.

    A deterministic predictor has one network, so only predictive entropy is defined; the
    sample-based measures are NaN ("not applicable", written as empty cells), never 0."""
    check_predictor(predictor)
    mean = probs.mean(axis=0)  # [N, C]
    values = all_measures(probs)
    if predictor == "deterministic":
        values = {k: (v if k == "predictive_entropy" else np.full_like(v, np.nan)) for k, v in values.items()}
    return {"pred": mean.argmax(axis=-1), "confidence": mean.max(axis=-1), **{m: values[m] for m in MEASURES}}
