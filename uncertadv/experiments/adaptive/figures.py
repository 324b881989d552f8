"""Figures of the adaptive suite: evasion against eps (PGD vs the per-image worst case), the attacker's
evasion against iterations per cascade stage (the plateau), and a gallery of the chosen images.
Read from adaptive.csv, adaptive_curves.csv and the suite's attack sets."""

from __future__ import annotations

import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from uncertadv import artifacts  # noqa: E402
from uncertadv.experiments import attack_sets, plots  # noqa: E402
from uncertadv.experiments.adaptive import legacy, suite  # noqa: E402
from uncertadv.experiments.layout import Layout  # noqa: E402
from uncertadv.experiments.table1.figures import model_title  # noqa: E402

SERIES = {("pgd", ""): (":", "o"), ("worst-case", "known"): ("-", "s"), ("worst-case", "fresh"): ("--", "^")}
COLOURS = {"mc": "tab:blue", "ensemble": "tab:orange"}
STAGE_COLOURS = dict(zip(suite.OBJECTIVES, ("tab:blue", "tab:green", "tab:red", "tab:purple")))


def _table(layout: Layout) -> dict:
    path = layout.folder / "adaptive.csv"
    if not path.is_file():
        raise ValueError(f"no {path}; run `uncertadv report --adaptive --dataset {layout.dataset}` first")
    if legacy.is_legacy(layout):
        raise ValueError(f"{path} is from the 10-step protocol before the suite; run `uncertadv report --adaptive "
                         f"--dataset {layout.dataset}` to replace it")  # fmt: skip
    table = artifacts.read_table(path)
    table["attacker"] = np.array([a if isinstance(a, str) else "" for a in table["attacker"]])
    return table


def run_evasion(layout: Layout) -> Path:
    """A panel per (tail, measure): evasion at 5% FPR (Wilson 95% bars) against eps, PGD and the worst case
    of each attacker, a colour per predictor."""
    started = time.perf_counter()
    table = _table(layout)
    measures = [m for m in suite.protocol.MEASURES if m in set(table["measure"])]
    tails = [t for t in suite.TAILS if t in set(table["tail"])]
    fig, axes = plt.subplots(len(tails), len(measures), figsize=(4.2 * len(measures), 3.6 * len(tails)),
                             squeeze=False, sharey=True, layout="constrained")  # fmt: skip
    budgets = sorted(set(table["eps"]))
    dodge = 0.012 * (budgets[-1] - budgets[0] or budgets[0])
    pad = 0.1 * (budgets[-1] - budgets[0]) or 12 * dodge
    for row, tail in enumerate(tails):
        for ax, measure in zip(axes[row], measures):
            for p, predictor in enumerate(COLOURS):
                for s, (attack, attacker) in enumerate(SERIES):
                    sel = (table["measure"] == measure) & (table["predictor"] == predictor) & (table["tail"] == tail)
                    sel &= (table["attack"] == attack) & (table["attacker"] == attacker)
                    if not sel.any():
                        continue
                    order = np.argsort(table["eps"][sel])
                    eps, rate = table["eps"][sel][order], table["evasion_rate"][sel][order]
                    err = [rate - table["evasion_rate_lo"][sel][order], table["evasion_rate_hi"][sel][order] - rate]
                    name = "pgd" if attack == "pgd" else f"worst case, {attacker}"
                    line, marker = SERIES[(attack, attacker)]
                    ax.errorbar(eps + (3 * p + s - 2.5) * dodge, rate, yerr=err, linestyle=line, marker=marker,
                                capsize=3, color=COLOURS[predictor], label=f"{predictor}, {name}")  # fmt: skip
            panel = (table["measure"] == measure) & (table["tail"] == tail)
            if not (panel & (table["attack"] == "worst-case")).any():  # the suite skips only this case
                ax.text(0.5, 0.5, "not attacked further:\nPGD already evades\nwherever it succeeds",
                        transform=ax.transAxes, ha="center", va="center", fontsize=9, color="0.4")  # fmt: skip
            ax.set_title(f"{plots.SHORT.get(measure, measure)}, {tail}")
            ax.set_xlabel("eps (0-255, L-inf)")
            ax.set_xticks(budgets)
            ax.set_xlim(budgets[0] - pad, budgets[-1] + pad)  # centred, also with a single eps
            ax.set_ylim(-0.02, 1.02)
            ax.grid(alpha=0.3)
        axes[row, 0].set_ylabel("evasion (fooled, not flagged)")
    handles = {}  # every series once, from whichever panel has it (a skipped tail has PGD alone)
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncol=6, fontsize=8)
    fig.suptitle(f"{layout.dataset}: evasion of detectors at 5% FPR, PGD vs the per-image worst case\n"
                 f"{model_title(layout)}")  # fmt: skip
    out = layout.folder / "adaptive_evasion.png"
    plots.save_figure(fig, out)
    plots.figure_record(out, {"figure": "adaptive_evasion"}, started, [layout.folder / "adaptive.csv"])
    return out


def run_curves(layout: Layout, predictor: str = "mc", measure: str = suite.FULL_MEASURE) -> Path:
    """A panel per (eps, tail): the share of each stage's attacked images that evade by the attacker's own
    estimate, against iterates (restarts continue the count), known solid, fresh dashed."""
    started = time.perf_counter()
    path = layout.folder / "adaptive_curves.csv"
    if not path.is_file():
        raise ValueError(f"no {path}; run `uncertadv report --adaptive --dataset {layout.dataset}` first")
    curves = artifacts.read_table(path)
    mine = (curves["predictor"] == predictor) & (curves["measure"] == measure)
    budgets = sorted(set(curves["eps"][mine]))
    tails = [t for t in suite.TAILS if t in set(curves["tail"][mine])]
    fig, axes = plt.subplots(len(budgets), len(tails), figsize=(5.0 * len(tails), 3.4 * len(budgets)),
                             squeeze=False, sharey=True, layout="constrained")  # fmt: skip
    for r, eps in enumerate(budgets):
        for c, tail in enumerate(tails):
            ax = axes[r, c]
            for objective in suite.OBJECTIVES:
                for attacker, style in (("known", "-"), ("fresh", "--")):
                    sel = mine & (curves["eps"] == eps) & (curves["tail"] == tail)
                    sel &= (curves["objective"] == objective) & (curves["attacker"] == attacker)
                    n = curves["n_attacked"][sel]
                    if not sel.any() or n[0] == 0:
                        continue
                    label = f"{objective}, {attacker} (n={int(n[0])})"
                    ax.plot(curves["iterate"][sel], curves["n_evading"][sel] / n, style,
                            color=STAGE_COLOURS[objective], label=label)  # fmt: skip
            ax.set_title(f"eps {eps:g}, {tail}")
            ax.set_xlabel("iterate (restarts continue the count)")
            ax.set_ylim(-0.02, 1.02)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=6)
        axes[r, 0].set_ylabel("share evading (attacker's estimate)")
    fig.suptitle(f"{layout.dataset}: the cascade's convergence, {predictor} predictor, "
                 f"{plots.SHORT.get(measure, measure)} detector\n{model_title(layout)}")  # fmt: skip
    out = layout.folder / "adaptive_curves.png"
    plots.save_figure(fig, out)
    plots.figure_record(out, {"figure": "adaptive_curves", "predictor": predictor, "measure": measure}, started,
                        [path])  # fmt: skip
    return out


def gallery_tail(table: dict, predictor: str = "mc", measure: str = suite.FULL_MEASURE) -> str:
    """The tail the gallery shows: the first of ``suite.TAILS`` with worst-case rows for ``predictor`` and
    ``measure`` at the largest eps, the one it draws (the suite skips a tail where PGD already evades
    wherever it succeeds, as the upper tail on cats vs dogs); the first tail when there is none."""
    worst = (table["attack"] == "worst-case") & (table["predictor"] == predictor) & (table["measure"] == measure)
    worst &= table["eps"] == max(table["eps"])
    return next((t for t in suite.TAILS if t in set(table["tail"][worst])), suite.TAILS[0])


def gallery_sets(layout: Layout, predictor: str = "mc", measure: str = suite.FULL_MEASURE,
                 tail: str | None = None) -> list[Path]:  # fmt: skip
    """The attack sets the gallery draws: PGD's and each attacker's worst case at the largest eps, for
    ``tail`` (default: ``gallery_tail``)."""
    table = _table(layout)
    eps, tail = float(max(table["eps"])), tail or gallery_tail(table, predictor, measure)
    return [layout.attack_set(suite.stem("pgd", eps, predictor))] + [
        layout.attack_set(suite.stem("worst-case", a, eps, predictor, measure, tail)) for a in suite.ATTACKERS
    ]


def run_gallery(layout: Layout, predictor: str = "mc", measure: str = suite.FULL_MEASURE, tail: str | None = None,
                count: int = 8) -> Path:  # fmt: skip
    """Sources, their PGD images and each attacker's worst-case images at the largest eps, captioned with
    the evaluator's verdict; the first ``count`` images that PGD does not already make evade. tail: as in
    ``gallery_sets``."""
    from uncertadv import data

    started = time.perf_counter()
    tail = tail or gallery_tail(_table(layout), predictor, measure)
    paths = gallery_sets(layout, predictor, measure, tail)
    pgd, record = attack_sets.load(paths[0])
    x, _ = data.load(layout.dataset, "test", **record["config"]["data_options"])
    images = artifacts.read_table(layout.folder / "adaptive_images.csv")
    attackers = np.array([a if isinstance(a, str) else "" for a in images["attacker"]])
    eps = float(record["config"]["attack"]["eps"])
    key = (images["eps"] == eps) & (images["predictor"] == predictor) & (images["measure"] == measure)
    key &= images["tail"] == tail
    pgd_evaded = images["evaded_fpr05"][key & (attackers == "")].astype(bool)
    pick = np.flatnonzero(~pgd_evaded)[:count]
    if len(pick) < count:
        pick = np.r_[pick, np.flatnonzero(pgd_evaded)[: count - len(pick)]]
    index = pgd["adversarial_index"][pick]
    rows = [("source", x[index], [f"#{i}" for i in index])]
    for label, attacker, path in (("pgd", "", paths[0]), *(("worst case, " + a, a, p) for a, p in
                                                           zip(suite.ATTACKERS, paths[1:]))):  # fmt: skip
        with np.load(path, allow_pickle=False) as npz:
            shown = npz["x_adv"][pick]
        mine = key & (attackers == attacker)
        success, evaded = images["success"][mine][pick], images["evaded_fpr05"][mine][pick]
        captions = [("evades" if e else "fooled, flagged" if s else "not fooled") for s, e in zip(success, evaded)]
        rows.append((label, shown, captions))
    title = (f"{layout.dataset}: eps = {eps:g}/255, {predictor} predictor, {plots.SHORT.get(measure, measure)} "
             f"detector ({tail}), judged by the evaluator\n{model_title(layout)}")  # fmt: skip
    out = layout.folder / "adaptive_gallery.png"
    plots.save_figure(plots.adversarial_examples(rows, title), out)
    config = {"figure": "adaptive_gallery", "predictor": predictor, "measure": measure, "tail": tail, "eps": eps,
              "count": count}  # fmt: skip
    plots.figure_record(out, config, started, [layout.folder / "adaptive_images.csv", *paths])
    return out
