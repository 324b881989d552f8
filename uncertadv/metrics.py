"""Detection metrics: adversarial inputs are the positive class, clean and noisy ones the negative.

Pure functions over score arrays; a measure that is undefined (NaN, e.g. the MI of a
deterministic model) gives NaN, never a made-up 0.5.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve


def _labelled(positive: np.ndarray, negative: np.ndarray):
    scores = np.concatenate([positive, negative]).astype(np.float64)
    labels = np.concatenate([np.ones(len(positive)), np.zeros(len(negative))])
    return labels, scores


def _defined(positive, negative) -> bool:
    return len(positive) > 0 and len(negative) > 0 and not (np.isnan(positive).any() or np.isnan(negative).any())


def roc_auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """ROC-AUC of scores ``[P]`` (positive) vs ``[M]`` (negative); higher score = more adversarial."""
    return float(roc_auc_score(*_labelled(positive, negative))) if _defined(positive, negative) else float("nan")


def aupr(positive: np.ndarray, negative: np.ndarray) -> float:
    """Area under the precision-recall curve (average precision), positives = adversarial."""
    return (
        float(average_precision_score(*_labelled(positive, negative))) if _defined(positive, negative) else float("nan")
    )


def fpr_at_tpr(positive: np.ndarray, negative: np.ndarray, tpr: float = 0.95) -> float:
    """False-positive rate at the first threshold that reaches ``tpr`` true positives."""
    if not _defined(positive, negative):
        return float("nan")
    fpr, tprs, _ = roc_curve(*_labelled(positive, negative))
    return float(fpr[np.searchsorted(tprs, tpr - 1e-12)])


def rank_auc(positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """ROC-AUC by ranks (Mann-Whitney, ties count half), vectorised over leading axes:
    ``positive [..., P]``, ``negative [..., M]`` -> ``[...]``. Equals sklearn's roc_auc_score."""
    from scipy.stats import rankdata

    p, m = positive.shape[-1], negative.shape[-1]
    ranks = rankdata(np.concatenate([positive, negative], axis=-1), axis=-1)
    return (ranks[..., :p].sum(axis=-1) - p * (p + 1) / 2) / (p * m)


def bootstrap_auc(
    positive: np.ndarray, negative: np.ndarray, *, rounds: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the ROC-AUC, resampling each class separately."""
    if not _defined(positive, negative):
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    draws = [
        (rng.integers(0, len(positive), len(positive)), rng.integers(0, len(negative), len(negative)))
        for _ in range(rounds)
    ]
    values = rank_auc(positive[np.stack([d[0] for d in draws])], negative[np.stack([d[1] for d in draws])])
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)
