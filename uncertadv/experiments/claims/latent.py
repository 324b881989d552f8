"""Claims 1-5 of the ledger, from the MNIST figures' files (Figs. 3, 4, 5, 6 and Sec. 3.2).

The latent grid (Fig. 4) is GRID x GRID points, z1 varying fastest. Neighbouring points see nearly the
same images, so they are not independent: claims 2, 3 and 4 resample tiles of TILE x TILE points
(a block bootstrap, revision 3), not single points.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from uncertadv import artifacts, metrics
from uncertadv.experiments.claims import rules

ROUNDS = 1000
SEED = 0
TILE = 10  # grid points per tile side
CLAIM_2_ROWS = 2  # claim 2 on the whole grid and near the data
NO_LATENT = "no latent space in this setting (the paper's VAE is MNIST's)"


def _row(claim, setting, name, value, lo, hi, n, verdict, reason, source) -> dict:
    return dict(claim=claim, setting=setting, row=name, value=value, lo=lo, hi=hi, n=n, verdict=verdict,
                reason=reason, source=source)  # fmt: skip


def tiles(grid_points: int) -> np.ndarray:
    """``[grid_points]``: the tile of each point of a square grid stored row by row (z1 fastest)."""
    side = int(round(np.sqrt(grid_points)))
    if side * side != grid_points:
        raise ValueError(f"the latent grid has {grid_points} points, not a square number")
    i = np.arange(grid_points)
    per_row = -(-side // TILE)  # tiles along z1
    return (i // side // TILE) * per_row + (i % side) // TILE


def near_data(grid_points: int, far_grid: dict[str, np.ndarray]) -> np.ndarray:
    """``[grid_points]`` bool: within the hole rule's far distance of an encoded training image, i.e. not
    listed in holes_grid.csv (which lists every far point)."""
    near = np.ones(grid_points, bool)
    near[far_grid["grid_index"].astype(int)] = False
    return near


def top_share(pe: np.ndarray, mi: np.ndarray, tile: np.ndarray) -> tuple[float, float, float, int]:
    """Claim 2's statistic over the points given (``[P]`` each): of the top 10% by entropy, the share also
    in the top 10% by MI, cuts taken over these points; ``(share, lo, hi, n top-entropy points)`` with a
    tile bootstrap interval at claim 2's Bonferroni level."""
    top_pe, top_mi = pe >= np.quantile(pe, 0.9), mi >= np.quantile(mi, 0.9)
    k = CLAIM_2_ROWS  # the whole grid and near the data: each row at 1 - 0.05/k, as the registry takes a claim
    share, lo, hi = metrics.cluster_bootstrap_ratio(top_pe & top_mi, top_pe, tile, rounds=rules.bootstrap_rounds(k),
                                                    seed=SEED, level=1 - 0.05 / k)  # fmt: skip
    return share, lo, hi, int(top_pe.sum())


def claims(setting: str, folder: Path, root: Path) -> list[dict]:
    """Rows of claims 1-5 for one setting (not testable without a latent space)."""
    files = {"1": folder / "interpolation_midpoints.csv", "2": folder / "cache" / "latent_grid_mc.csv",
             "3": folder / "holes.csv", "4": folder / "holes_grid.csv", "5": folder / "test_scores.csv"}  # fmt: skip
    out = softmax_variance_claim(setting, files["5"], root)
    if not files["2"].is_file():
        return out + [_row(c, setting, "all", np.nan, np.nan, np.nan, None, rules.NOT_TESTABLE, NO_LATENT, "")
                      for c in ("1", "2", "3", "4")]  # fmt: skip
    src = {c: str(f.relative_to(root)) for c, f in files.items()}
    mid = artifacts.read_table(files["1"])  # Fig. 3: pixel (positive) vs latent midpoints, the same pairs
    pixel, latent = mid["space"] == "pixel", mid["space"] == "latent"
    args = [mid["mutual_information"][pixel], mid["mutual_information"][latent]]
    args += [mid["predictive_entropy"][pixel], mid["predictive_entropy"][latent]]
    diff, lo, hi = metrics.paired_bootstrap_auc_difference(*args, rounds=ROUNDS, seed=SEED)
    out.append(_row("1", setting, "MI AUC - entropy AUC", diff, lo, hi, int(pixel.sum() + latent.sum()),
                   rules.interval_verdict(lo, hi, 0.0), "", src["1"]))  # fmt: skip
    grid = artifacts.read_table(files["2"])  # Fig. 4: the mc predictor's latent grid
    pe, mi = grid["predictive_entropy"], grid["mutual_information"]
    tile = tiles(len(pe))
    holes = artifacts.read_table(files["3"])
    out += _between_classes(setting, pe, mi, tile, files["4"], holes, src)
    if "mc" in set(holes["predictor"]):  # Fig. 5: far, confident, low-MI grid points
        out.append(_holes_share(setting, files["4"], holes, tile, root))
    return out + [ensemble_holes_claim(setting, files["4"], holes, root)]


def _between_classes(setting, pe, mi, tile, far_path: Path, holes: dict, src: dict) -> list[dict]:
    """Claim 2 on the whole grid, and near the data (revision 3): the paper speaks of the region between
    the classes, among the data, where the whole grid is mostly far from every training image."""
    share, lo, hi, n = top_share(pe, mi, tile)
    out = [_row("2", setting, "whole grid: top-10% entropy points also top-10% MI", share, lo, hi, n,
               rules.interval_verdict(lo, hi, 0.5, "below"), f"{TILE}x{TILE} tile bootstrap", src["2"])]  # fmt: skip
    if not far_path.is_file():
        return out + [_row("2", setting, "near the data", np.nan, np.nan, np.nan, None, rules.NOT_TESTABLE,
                          "no per-grid-point distances (holes_grid.csv)", "")]  # fmt: skip
    near = near_data(len(pe), artifacts.read_table(far_path))
    share, lo, hi, n = top_share(pe[near], mi[near], tile[near])
    distance = float(holes["far_distance"][0])
    return out + [_row("2", setting, f"near the data (within {distance:g} of a training code): top-10% entropy "
                      "points also top-10% MI", share, lo, hi, n, rules.interval_verdict(lo, hi, 0.5, "below"),
                      f"{int(near.sum())} grid points near the data; {TILE}x{TILE} tile bootstrap",
                      src["4"])]  # fmt: skip


def _hole_flags(path: Path, holes: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``{predictor: [grid_points] 0/1}`` from holes_grid.csv (far points; every other point is no hole)."""
    far = artifacts.read_table(path)
    grid_points = int(holes["grid_points"][0])
    flags = {p: np.zeros(grid_points) for p in ("mc", "ensemble")}
    for p in flags:
        flags[p][far["grid_index"].astype(int)] = far[f"hole_{p}"]
        if flags[p].sum() != holes["hole_points"][holes["predictor"] == p].sum():  # one run's files, not two
            raise ValueError(f"{path} and holes.csv disagree on the {p} hole count; run `uncertadv plot all` again")
    return flags


def _holes_share(setting: str, path: Path, holes: dict, tile: np.ndarray, root: Path) -> dict:
    """Claim 3 (Fig. 5): the mc predictor's share of grid points that are holes, tile bootstrap."""
    if not path.is_file():
        return _row("3", setting, "all", np.nan, np.nan, np.nan, None, rules.NOT_TESTABLE,
                   "no per-grid-point hole flags (holes_grid.csv, written by `uncertadv plot all`)", "")  # fmt: skip
    flags = _hole_flags(path, holes)["mc"]
    share, lo, hi = metrics.cluster_bootstrap_mean_difference(flags, None, tile, rounds=ROUNDS, seed=SEED)
    return _row(
        "3",
        setting,
        "mc: share of grid points that are holes",
        share,
        lo,
        hi,
        len(flags),
        rules.interval_verdict(lo, hi, 0.0),
        f"{TILE}x{TILE} tile bootstrap",
        str(path.relative_to(root)),
    )


def ensemble_holes_claim(setting: str, path: Path, holes: dict[str, np.ndarray], root: Path) -> dict:
    """Claim 4 (Fig. 6): the ensemble's share of grid points that are holes minus the mc one's, paired
    by grid point, tiles resampled."""
    if not path.is_file():
        return _row("4", setting, "all", np.nan, np.nan, np.nan, None, rules.NOT_TESTABLE,
                   "no per-grid-point hole flags (holes_grid.csv, written by `uncertadv plot all`)", "")  # fmt: skip
    flags = _hole_flags(path, holes)
    tile = tiles(len(flags["mc"]))
    diff, lo, hi = metrics.cluster_bootstrap_mean_difference(flags["ensemble"], flags["mc"], tile, rounds=ROUNDS,
                                                             seed=SEED)  # fmt: skip
    return _row("4", setting, "ensemble - mc: share of grid points that are holes", diff, lo, hi, len(tile),
               rules.interval_verdict(lo, hi, 0.0, "below"), f"paired by grid point; {TILE}x{TILE} tile bootstrap",
               str(path.relative_to(root)))  # fmt: skip


def softmax_variance_claim(setting: str, path: Path, root: Path) -> list[dict]:
    """Claim 5 (Sec. 3.2): softmax variance against MI on the test images."""
    test = artifacts.read_table(path) if path.is_file() else {}
    if "softmax_variance" not in test or "mutual_information" not in test:
        reason = "no per-image test scores of softmax variance and MI are committed for this setting"
        return [_row("5", setting, "all", np.nan, np.nan, np.nan, None, rules.NOT_TESTABLE, reason, "")]
    rho, lo, hi = spearman_interval(test["softmax_variance"], test["mutual_information"])
    return [_row("5", setting, "Spearman(softmax variance, MI), test images", rho, lo, hi, len(test["index"]),
                rules.interval_verdict(lo, hi, 0.9), "", str(path.relative_to(root)))]  # fmt: skip


def spearman_interval(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """Spearman's rho of ``a`` and ``b`` ``[N]`` with a percentile bootstrap 95% interval (pairs resampled)."""
    from scipy.stats import spearmanr

    idx = np.random.default_rng(SEED).integers(0, len(a), (ROUNDS, len(a)))
    rhos = np.array([spearmanr(a[i], b[i]).statistic for i in idx])
    return float(spearmanr(a, b).statistic), float(np.percentile(rhos, 2.5)), float(np.percentile(rhos, 97.5))
