"""The adaptive report of the 10-step protocol before issue 19 (pgd, pgd-adaptive, pgd-adaptive-known).

Kept only so that ``uncertadv render`` can re-render the committed adaptive.md files that protocol
wrote (their adaptive.json has no ``tails``) until the suite's runs replace them; nothing runs it.
Its constants are that protocol's, as its files recorded them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from uncertadv import artifacts
from uncertadv.attacks import AttackConfig
from uncertadv.experiments.adaptive import hole_search
from uncertadv.experiments.layout import Layout, eval_seed

C_GRID = (0.1, 1.0, 10.0, 100.0)
N_CALIBRATION = 50
N_FIT = 1000
TARGET_FPR = 0.05


@dataclasses.dataclass(frozen=True)
class AdaptiveConfig:
    """What that protocol's adaptive.json recorded and its markdown reads."""

    layout: Layout
    eps: tuple[float, ...] = (76.0, 128.0)
    n: int = 200
    samples: int = 20
    seed: int = 0
    iterations: int = 10
    step: float | None = None
    hole_search: hole_search.HoleConfig | None = None

    def hole_config(self) -> hole_search.HoleConfig:
        return self.hole_search or hole_search.HoleConfig(n=self.n, seed=self.seed)


def is_legacy(layout: Layout) -> bool:
    """Whether the folder's adaptive.json was written by that protocol (it records no tails)."""
    return "tails" not in artifacts.read_json(layout.folder / "adaptive.json")["config"]


def recorded_config(layout: Layout) -> AdaptiveConfig:
    """The AdaptiveConfig that ``adaptive.json`` recorded (for rendering: no model is loaded)."""
    recorded = artifacts.read_json(layout.folder / "adaptive.json")["config"]
    fields = {f.name for f in dataclasses.fields(AdaptiveConfig)} - {"layout", "hole_search"}
    values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in recorded.items() if k in fields}
    holes = recorded.get("hole_search")
    return AdaptiveConfig(layout=layout, hole_search=None if holes is None else hole_search.HoleConfig(**holes),
                          **values)  # fmt: skip


def tables_from_csv(folder: Path) -> tuple[list[dict], list[dict] | None]:
    """adaptive.csv's rows and hole_search.csv's (None without one), as dicts with counts as ints."""

    def rows(path: Path, counts: tuple[str, ...]) -> list[dict]:
        cols = artifacts.read_table(path)
        n = len(next(iter(cols.values())))
        return [{k: (int(v[i]) if k in counts else v[i]) for k, v in cols.items()} for i in range(n)]

    table = rows(folder / "adaptive.csv", ("n", "n_negative", "n_successful", "n_evading"))
    holes_csv = folder / "hole_search.csv"
    return table, (rows(holes_csv, ("n", "n_successful", "n_holes")) if holes_csv.is_file() else None)


def rendered_markdown(layout: Layout) -> str:
    """adaptive.md from the folder's adaptive.csv, hole_search.csv and adaptive.json alone."""
    return markdown(recorded_config(layout), *tables_from_csv(layout.folder))


def _fmt(value, digits: int = 3) -> str:
    return "n/a" if _missing(value) else f"{value:.{digits}f}"


def _missing(value) -> bool:
    return value is None or (isinstance(value, (float, np.floating)) and np.isnan(value))


def _steps(cfg: AdaptiveConfig) -> str:
    """The PGD step per budget, as the attacks take it (the paper's rule unless --step is given)."""
    steps = [AttackConfig(method="pgd", eps=e, step=cfg.step).step_size for e in cfg.eps]
    return ", ".join(f"{s:g} at eps {e:g}" for s, e in zip(steps, cfg.eps))


def markdown(cfg: AdaptiveConfig, table: list[dict], holes: list[dict] | None) -> str:
    """adaptive.md: the table with its intervals, how it was made, and the hole search."""
    lines = [
        f"# Adaptive attacks on {cfg.layout.dataset}: what is left of each detector",
        "",
        f"Detectors: one per predictor and measure, threshold at {TARGET_FPR:.0%} FPR on "
        f"{N_FIT} clean test images that no attack set uses; they judge with the evaluator's networks "
        f"(seed {eval_seed(cfg.seed)}, T = {cfg.samples} per network). detector FPR: their false-positive rate on "
        f"the {cfg.n} clean evaluation images. Attacks: L-infinity PGD, {cfg.iterations} iterations "
        f"(step {_steps(cfg)}), from the same random "
        "start (eps in 0-255 units). pgd ignores the detector; pgd-adaptive maximises the loss of the MC-mean "
        "predictive minus c * max(0, U/τ - 1) with fresh networks at every step; pgd-adaptive-known does the same "
        "on the detector's own networks (it knows the seed). c is chosen from "
        f"{', '.join(f'{c:g}' for c in C_GRID)} by the evasion rate on {N_CALIBRATION} other "
        "clean test images, judged by the detector: the attacker is granted its verdicts on those images "
        "(calibration rates in adaptive.json).",
        "",
        f"N = {cfg.n} adversarial images per row, the same source images in every row of one predictor. "
        "success: correct when clean, wrong after the attack. AUC: adversarial vs the clean and noise negatives "
        "of the PGD set of the same eps and predictor (Table 1's), with a bootstrap 95% interval. TPR: share "
        "flagged at the detector's threshold. evasion: successful and not flagged (Wilson 95% interval). "
        "gain vs pgd: evasion minus pgd's evasion on the same images (paired bootstrap 95% interval; * when it "
        "excludes 0).",
        "",
        "| attack | eps | predictor | measure | c | success | AUC [95% CI] | TPR at τ | detector FPR "
        "| evasion [95% CI] | gain vs pgd [95% CI] |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table:
        gain = (
            ""
            if r["attack"] == "pgd"
            else (
                f"{r['evasion_gain']:+.3f} [{r['evasion_gain_lo']:+.3f}, {r['evasion_gain_hi']:+.3f}]"
                + (" *" if r["evasion_gain_lo"] > 0 or r["evasion_gain_hi"] < 0 else "")
            )
        )
        lines.append(
            "| "
            + " | ".join(
                [
                    r["attack"],
                    f"{r['eps']:g}",
                    r["predictor"],
                    r["measure"],
                    "n/a" if _missing(r["c"]) else f"{r['c']:g}",
                    _fmt(r["success_rate"]),
                    f"{_fmt(r['auc'])} [{_fmt(r['auc_lo'], 2)}, {_fmt(r['auc_hi'], 2)}]",
                    _fmt(r["tpr_at_threshold"]),
                    _fmt(r["detector_fpr"]),
                    f"{_fmt(r['evasion_rate'])} [{_fmt(r['evasion_rate_lo'], 2)}, {_fmt(r['evasion_rate_hi'], 2)}]",
                    gain,
                ]
            )
            + " |"
        )
    if holes is not None:
        config = cfg.hole_config()
        lines += [
            "",
            "## Hole search (MNIST)",
            "",
            f"For each of {config.n} test images the predictor gets right, target (label + 1) mod 10; "
            f"{config.steps} normalised-gradient steps of {config.step_size:g} in the VAE's 2-D latent space on "
            "log p(target) - c * max(0, U/τ - 1), fresh networks per step, within a latent radius of "
            f"{config.radius:g} of the image's encoding. Success: p(target) >= {hole_search.MIN_CONFIDENCE} "
            "and U < τ under the detector's networks. Medians over the successful searches; pixel L2 from the "
            "decoding of the source's encoding. A success is not necessarily a hole: the radius can reach the "
            "neighbouring class clusters, whose decodings are ordinary digits of the target class. n holes: the "
            f"successes farther than {hole_search.FAR_DISTANCE:g} from every encoded training image (Figure 5's "
            "definition of far from the data).",
            "",
            "| predictor | measure | c | success [95% CI] | n successful | median latent distance | median pixel L2 "
            "| n holes |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in holes:
            lines.append(
                f"| {r['predictor']} | {r['measure']} | {r['c']:g} | {_fmt(r['success_rate'])} "
                f"[{_fmt(r['success_rate_lo'], 2)}, {_fmt(r['success_rate_hi'], 2)}] | {r['n_successful']} of "
                f"{r['n']} | {_fmt(r['median_latent_distance'], 2)} | {_fmt(r['median_pixel_l2'], 2)} "
                f"| {r['n_holes']} of {r['n_successful']} |"
            )
    return "\n".join(lines) + "\n"
