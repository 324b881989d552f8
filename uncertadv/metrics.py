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


def resampled_auc(
    positive: np.ndarray, negative: np.ndarray, pos_idx: np.ndarray, neg_idx: np.ndarray, chunk: int = 256
) -> np.ndarray:
    """The ROC-AUC of each bootstrap resample, bit for bit ``rank_auc(positive[pos_idx], negative[neg_idx])``
    without sorting every resample: ``positive [P]``, ``negative [M]``, ``pos_idx [R, P]``, ``neg_idx [R, M]``
    -> ``[R]``. A resample holds original scores with multiplicities, so the negatives are sorted once, and
    the count of drawn negatives below (and tied with) each positive is read off per-resample cumulative
    counts. The Mann-Whitney U is a sum of half-integers, exact in float64, as the rank sum is."""
    p, m = pos_idx.shape[-1], neg_idx.shape[-1]  # the resamples' sizes
    order = np.argsort(negative, kind="stable")
    position = np.empty(len(negative), dtype=np.int64)
    position[order] = np.arange(len(negative))
    below = np.searchsorted(negative[order], positive, side="left")  # [P] sorted negatives < each positive
    upto = np.searchsorted(negative[order], positive, side="right")  # [P] sorted negatives <= each positive
    out = np.empty(len(pos_idx))
    for start in range(0, len(pos_idx), chunk):
        neg, pos = neg_idx[start : start + chunk], pos_idx[start : start + chunk]
        width = len(negative) + 1  # a row per resample: [0, count of sorted negative 0, ...]
        flat = (np.arange(len(neg))[:, None] * width + position[neg] + 1).ravel()
        counts = np.bincount(flat, minlength=len(neg) * width).reshape(len(neg), width)
        cumulative = counts.cumsum(axis=1)  # [r, M + 1]: drawn negatives among the first k sorted ones
        less = np.take_along_axis(cumulative, below[pos], axis=1)
        ties = np.take_along_axis(cumulative, upto[pos], axis=1) - less
        out[start : start + chunk] = (2 * less + ties).sum(axis=1) / 2 / (p * m)
    return out


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
    return _percentiles(resampled_auc(positive, negative, pos_idx, neg_idx), level)


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
    values = resampled_auc(positive_a, negative_a, pos_idx, neg_idx) - resampled_auc(
        positive_b, negative_b, pos_idx, neg_idx
    )
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


def _comparisons(positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """``[P, M]``: 1 where a positive outscores a negative, 0.5 on ties, else 0 (the AUC's pairs)."""
    return (positive[:, None] > negative[None, :]) + 0.5 * (positive[:, None] == negative[None, :])


def _cluster_draws(groups: np.ndarray, rounds: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``([rounds, K], [N])``: how often each of the K clusters is drawn per round when whole clusters are
    resampled, and each row's cluster (``groups [N]``, any ids)."""
    ids, inverse = np.unique(np.asarray(groups), return_inverse=True)
    k = len(ids)
    drawn = rng.integers(0, k, (rounds, k))
    # one bincount over all rounds (round r's clusters shifted to r * k ..): each round's counts
    counts = np.bincount((drawn + k * np.arange(rounds)[:, None]).ravel(), minlength=rounds * k)
    return counts.reshape(rounds, k).astype(float), inverse


def _cluster_counts(groups: np.ndarray, rounds: int, rng: np.random.Generator) -> np.ndarray:
    """``[rounds, N]``: how often each row is drawn when whole clusters (``groups [N]``) are resampled."""
    counts, inverse = _cluster_draws(groups, rounds, rng)
    return counts[:, inverse]


def _weighted_auc(comparisons: np.ndarray, w_pos: np.ndarray, w_neg: np.ndarray) -> np.ndarray:
    """AUC per round ``[rounds]`` with row weights ``w_pos [rounds, P]``, ``w_neg [rounds, M]``.

    The weights are counts and the comparisons 0, 0.5 or 1, so every partial sum is a multiple of 0.5 and
    exact in float64: a matrix product gives the very numerator of the elementwise sum, much faster."""
    return ((w_pos @ comparisons) * w_neg).sum(1) / (w_pos.sum(1) * w_neg.sum(1))


def cluster_bootstrap_auc_difference(
    positive_a: np.ndarray,
    negative_a: np.ndarray,
    positive_b: np.ndarray | None,
    negative_b: np.ndarray | None,
    positive_groups: np.ndarray,
    negative_groups: np.ndarray,
    *,
    rounds: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    joint: bool = False,
) -> tuple[float, float, float]:
    """AUC(a) - AUC(b), or AUC(a) alone when b is None, with a percentile bootstrap that resamples
    whole clusters: ``(value, lo, hi)``. Rows of a cluster (``positive_groups [P]``,
    ``negative_groups [M]``; e.g. images scored in one batch, whose outputs are coupled) are drawn
    together, each class apart, or with ``joint`` both classes in one draw over the ids of both (a
    batch that holds positives and negatives is drawn whole; a round without one class is drawn
    again, since it has no AUC); a and b score the same rows, so one draw serves both (paired).
    With ``joint``, an id shared by a positive and a negative row is one cluster: ids must be global
    (not numbered within each kind, as the ablation's ``batch`` column is)."""
    parts = [(positive_a, negative_a)] + ([] if positive_b is None else [(positive_b, negative_b)])
    if any(len(p) != len(positive_groups) or len(n) != len(negative_groups) for p, n in parts):
        raise ValueError("a cluster bootstrap needs a group for every row, and paired sets of equal size")
    if not all(_defined(np.asarray(p, float), np.asarray(n, float)) for p, n in parts):
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    if joint:  # a round that draws no positive (or no negative) has no AUC: it is drawn again
        groups = np.concatenate([np.asarray(positive_groups), np.asarray(negative_groups)])
        w = np.empty((0, len(groups)))
        while len(w) < rounds:
            more = _cluster_counts(groups, rounds, rng)
            more = more[(more[:, : len(positive_groups)].sum(1) > 0) & (more[:, len(positive_groups) :].sum(1) > 0)]
            w = np.concatenate([w, more])[:rounds]
        w_pos, w_neg = w[:, : len(positive_groups)], w[:, len(positive_groups) :]
    else:
        w_pos, w_neg = _cluster_counts(positive_groups, rounds, rng), _cluster_counts(negative_groups, rounds, rng)
    value = sum(s * roc_auc(np.asarray(p, float), np.asarray(n, float)) for s, (p, n) in zip((1, -1), parts))
    draws = sum(s * _weighted_auc(_comparisons(np.asarray(p, float), np.asarray(n, float)), w_pos, w_neg)
                for s, (p, n) in zip((1, -1), parts))  # fmt: skip
    return (float(value), *_percentiles(draws, level))


def cluster_bootstrap_mean_difference(
    a: np.ndarray, b: np.ndarray | None, groups: np.ndarray, *, rounds: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """mean(a) - mean(b) (or mean(a) when b is None) over the same N items ``[N]``, with a percentile
    bootstrap resampling whole clusters ``groups [N]``: ``(value, lo, hi)``."""
    a = np.asarray(a, dtype=float)
    diff = a - (0.0 if b is None else np.asarray(b, dtype=float))
    if len(diff) != len(groups) or len(diff) == 0:
        raise ValueError("a cluster bootstrap needs one group per item, and at least one item")
    w = _cluster_counts(groups, rounds, np.random.default_rng(seed))
    return (float(diff.mean()), *_percentiles(w @ diff / w.sum(1), level))


def cluster_bootstrap_ratio(
    numerator: np.ndarray,
    denominator: np.ndarray,
    groups: np.ndarray,
    *,
    rounds: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """sum(numerator) / sum(denominator) over N items ``[N]`` (a share of a subset, such as the top-entropy
    grid points that are also top-MI), with a percentile bootstrap that resamples whole clusters
    ``groups [N]`` (tiles of neighbouring grid points, which are not independent): ``(ratio, lo, hi)``.
    Rounds whose denominator is 0 are dropped."""
    num, den = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    if not len(num) == len(den) == len(groups) or len(num) == 0 or den.sum() == 0:
        raise ValueError("a ratio needs one group per item and a non-zero denominator")
    counts, inverse = _cluster_draws(groups, rounds, np.random.default_rng(seed))  # [R, K]: sums per cluster first
    top, bottom = counts @ np.bincount(inverse, num), counts @ np.bincount(inverse, den)
    return (float(num.sum() / den.sum()), *_percentiles(top[bottom > 0] / bottom[bottom > 0], level))


def mcnemar_exact(a: np.ndarray, b: np.ndarray, level: float = 0.95) -> dict:
    """Exact McNemar comparison of two 0/1 outcomes ``[N]`` on the same N items (success of two attacks,
    accuracy of two predictors). ``b``/``c``: the discordant counts (a=1, b=0 and a=0, b=1).
    Given b + c discordant items, b is Binomial(b + c, p) and p = 1/2 under no difference, so the
    Clopper-Pearson interval ``[p_lo, p_hi]`` of b/(b + c) maps to the difference of the two rates,
    (b - c)/n = (b + c)(2p - 1)/n: ``{"difference", "lo", "hi", "b", "c", "n", "p_value"}``.
    With no discordant item the interval is the point [0, 0] and the p-value 1."""
    from scipy.stats import binomtest

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) != len(b) or len(a) == 0:
        raise ValueError("a paired comparison needs both outcomes on the same, non-empty items")
    if not np.isin(a, (0, 1)).all() or not np.isin(b, (0, 1)).all():  # NaN or 0.5 is no outcome: never a success
        raise ValueError("an exact McNemar test needs 0/1 outcomes; NaN or other values found")
    a, b = a.astype(bool), b.astype(bool)
    n, only_a, only_b = len(a), int(np.sum(a & ~b)), int(np.sum(~a & b))
    m = only_a + only_b
    if m == 0:
        return {"difference": 0.0, "lo": 0.0, "hi": 0.0, "b": 0, "c": 0, "n": n, "p_value": 1.0}
    test = binomtest(only_a, m, 0.5)
    ci = test.proportion_ci(confidence_level=level, method="exact")
    scale = lambda p: m * (2 * p - 1) / n  # noqa: E731
    return {"difference": (only_a - only_b) / n, "lo": float(scale(ci.low)), "hi": float(scale(ci.high)),
            "b": only_a, "c": only_b, "n": n, "p_value": float(test.pvalue)}  # fmt: skip
