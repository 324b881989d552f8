"""uncertadv: uncertainty measures and adversarial-example detection (Smith & Gal, UAI 2018).

The public API, for your own Keras model (imported lazily, so ``uncertadv --help`` stays fast)::

    import uncertadv as ua
    probs = ua.mc_predict(model, x, samples=50, seed=0)      # [T, N, C]
    mi = ua.mutual_information(probs)                         # [N]
    x_adv = ua.attack([model], x, y, ua.AttackConfig(method="mim", eps=8))
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# name -> module that defines it
_API = {
    "mc_predict": "mc",
    "mc_log_predictive": "mc",
    "deterministic_predict": "mc",
    "check_models": "mc",
    "stochastic_layers": "mc",
    "MEASURES": "measures",
    "entropy": "measures",
    "predictive_entropy": "measures",
    "expected_entropy": "measures",
    "mutual_information": "measures",
    "softmax_variance": "measures",
    "variation_ratio": "measures",
    "all_measures": "measures",
    "PREDICTORS": "predictors",
    "predict": "predictors",
    "scores": "predictors",
    "AttackConfig": "attacks",
    "attack": "attacks",
    "METHODS": "attacks",
    "roc_auc": "metrics",
    "aupr": "metrics",
    "fpr_at_tpr": "metrics",
    "bootstrap_auc": "metrics",
    "load_model": "io",
    "load_classifier": "io",
    "save_model": "io",
    "efficientnet_lite0": "backbones",
    "Detector": "detector",
}

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name: str):
    if name in _API:
        value = getattr(importlib.import_module(f"uncertadv.{_API[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'uncertadv' has no attribute {name!r}")


def __dir__():
    return __all__
