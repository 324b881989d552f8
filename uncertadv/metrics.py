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


def tpr_at_fpr(positive: np.ndarray, negative: np.ndarray, fpr: float = 0.05) -> float:
    """True-positive rate of the in-sample threshold with false-positive rate at most ``fpr``.

    The threshold is the ceil((1 - fpr) * M)-th smallest of the M negative scores, and an input
    is flagged when its score is above it. In-sample: the threshold is fitted on the very
    negatives it is judged on, so this is optimistic next to a detector fitted elsewhere."""
    if not _defined(positive, negative):
        return float("nan")
    k = int(np.ceil((1.0 - fpr) * len(negative)))
    threshold = np.sort(negative)[k - 1]
    return float(np.mean(positive > threshold))


def _draws(n_pos: int, n_neg: int, rounds: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified bootstrap indices: ``([rounds, n_pos], [rounds, n_neg])``, each class resampled apart."""
    rng = np.random.default_rng(seed)
    draws = [(rng.integers(0, n_pos, n_pos), rng.integers(0, n_neg, n_neg)) for _ in range(rounds)]
    return np.stack([d[0] for d in draws]), np.stack([d[1] for d in draws])


def _percentiles(values: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def bootstrap_auc(
    positive: np.ndarray, negative: np.ndarray, *, rounds: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the ROC-AUC, resampling each class separately."""
    if not _defined(positive, negative):
        return float("nan"), float("nan")
    pos_idx, neg_idx = _draws(len(positive), len(negative), rounds, seed)
    return _percentiles(rank_auc(positive[pos_idx], negative[neg_idx]), level)


def paired_bootstrap_auc_difference(
    positive_a: np.ndarray,
    negative_a: np.ndarray,
    positive_b: np.ndarray,
    negative_b: np.ndarray,
    *,
    rounds: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """AUC(a) - AUC(b) for two measures on the same rows, with a paired percentile bootstrap
    interval: ``(difference, lo, hi)``.

    ``positive_a [P]`` and ``positive_b [P]`` score the same P positive rows (likewise the M
    negatives), and every bootstrap round resamples the same rows for both measures, so the
    interval accounts for their correlation. Separate intervals per AUC do not."""
    if len(positive_a) != len(positive_b) or len(negative_a) != len(negative_b):
        raise ValueError("a paired comparison needs both measures on the same rows")
    if not (_defined(positive_a, negative_a) and _defined(positive_b, negative_b)):
        return float("nan"), float("nan"), float("nan")
    diff = roc_auc(positive_a, negative_a) - roc_auc(positive_b, negative_b)
    pos_idx, neg_idx = _draws(len(positive_a), len(negative_a), rounds, seed)
    values = rank_auc(positive_a[pos_idx], negative_a[neg_idx]) - rank_auc(positive_b[pos_idx], negative_b[neg_idx])
    return (float(diff), *_percentiles(values, level))


def wilson_interval(count: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``count / n``: ``(lo, hi)``; NaN for n = 0.
    Unlike the normal approximation it stays inside [0, 1] and is not empty at 0 or n."""
    if n == 0:
        return float("nan"), float("nan")
    from statistics import NormalDist

    z = NormalDist().inv_cdf(0.5 + level / 2)
    p = count / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    lo = 0.0 if count == 0 else max(0.0, centre - half)  # exact at the ends, not a rounding residue
    hi = 1.0 if count == n else min(1.0, centre + half)
    return float(lo), float(hi)


def paired_bootstrap_mean_difference(
    a: np.ndarray, b: np.ndarray, *, rounds: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """mean(a) - mean(b) for two outcomes ``[N]`` on the same N items (e.g. two attacks on the
    same source images), with a paired percentile bootstrap interval: ``(difference, lo, hi)``."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) != len(b) or len(a) == 0:
        raise ValueError("a paired comparison needs both outcomes on the same, non-empty items")
    idx = np.random.default_rng(seed).integers(0, len(a), (rounds, len(a)))
    return (float(a.mean() - b.mean()), *_percentiles(a[idx].mean(axis=1) - b[idx].mean(axis=1), level))
