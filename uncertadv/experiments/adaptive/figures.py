"""Figures of the adaptive attacks: evasion rate against eps, standard vs adaptive, and galleries
of adaptive and hole-seeking images beside their sources. Read from adaptive.csv and the sets."""

from __future__ import annotations

import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from uncertadv import artifacts  # noqa: E402
from uncertadv.experiments import attack_sets, plots  # noqa: E402
from uncertadv.experiments.adaptive import hole_search, protocol  # noqa: E402
from uncertadv.experiments.layout import Layout, ensure_vae, set_name  # noqa: E402
from uncertadv.experiments.table1.figures import model_title  # noqa: E402

STYLE = {"pgd": (":", "o"), "pgd-adaptive": ("-", "s"), "pgd-adaptive-known": ("--", "^")}
COLOURS = {"mc": "tab:blue", "ensemble": "tab:orange"}


def run_evasion(layout: Layout) -> Path:
    """One panel per measure: evasion rate (Wilson 95% bars) against eps, a line per attack and predictor."""
    started = time.perf_counter()
    path = layout.folder / "adaptive.csv"
    if not path.is_file():
        raise ValueError(f"no {path}; run `uncertadv report --adaptive --dataset {layout.dataset}` first")
    table = artifacts.read_table(path)
    measures = [m for m in protocol.MEASURES if m in set(table["measure"])]
    fig, axes = plt.subplots(1, len(measures), figsize=(4.2 * len(measures), 3.8), squeeze=False, sharey=True,
                             layout="constrained")  # fmt: skip
    budgets = sorted(set(table["eps"]))
    dodge = 0.012 * (budgets[-1] - budgets[0] or budgets[0])  # side by side, so the bars do not hide each other
    for ax, measure in zip(axes[0], measures):
        for p, predictor in enumerate(protocol.PREDICTORS):
            for a, attack in enumerate(protocol.ATTACKS):
                sel = (table["measure"] == measure) & (table["predictor"] == predictor) & (table["attack"] == attack)
                if not sel.any():
                    continue
                order = np.argsort(table["eps"][sel])
                eps, rate = table["eps"][sel][order], table["evasion_rate"][sel][order]
                err = [rate - table["evasion_rate_lo"][sel][order], table["evasion_rate_hi"][sel][order] - rate]
                shift = (3 * p + a - 2.5) * dodge
                ax.errorbar(eps + shift, rate, yerr=err, linestyle=STYLE[attack][0], marker=STYLE[attack][1],
                            capsize=3, color=COLOURS[predictor], label=f"{predictor}, {attack}")  # fmt: skip
        ax.set_title(f"detector: {plots.SHORT.get(measure, measure)}")
        ax.set_xlabel("eps (0-255, L-inf)")
        ax.set_xticks(budgets)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("evasion rate (fooled and not flagged)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=6, fontsize=8)
    fig.suptitle(f"{layout.dataset}: evasion of detectors at 5% FPR, standard vs adaptive PGD\n{model_title(layout)}")
    out = layout.folder / "adaptive_evasion.png"
    plots.save_figure(fig, out)
    plots.figure_record(out, {"figure": "adaptive_evasion"}, started, [path])
    return out


def missing_gallery_set(layout: Layout, predictor: str = "mc", measure: str = "mutual_information") -> Path | None:
    """The first attack set of the gallery whose images are missing (a checkout holds only their records)."""
    eps = float(max(artifacts.read_table(layout.folder / "adaptive.csv")["eps"]))
    paths = [layout.attack_set(set_name("pgd", eps, predictor))]
    paths += [layout.attack_set(protocol.adaptive_name(m, eps, predictor, measure)) for m in protocol.ADAPTIVE_METHODS]
    return next((p for p in paths if not p.is_file()), None)


def run_gallery(layout: Layout, predictor: str = "mc", measure: str = "mutual_information", count: int = 8) -> Path:
    """Sources and their pgd, pgd-adaptive and pgd-adaptive-known images at the largest eps."""
    from uncertadv import data

    started = time.perf_counter()
    table = artifacts.read_table(layout.folder / "adaptive.csv")
    eps = float(max(table["eps"]))
    _, record = attack_sets.load(layout.attack_set(set_name("pgd", eps, predictor)))
    x, _ = data.load(layout.dataset, "test", **record["config"]["data_options"])
    detector = artifacts.read_json(protocol.detector_path(layout, predictor, measure))
    sets = {"pgd": attack_sets.load(layout.attack_set(set_name("pgd", eps, predictor)))[0]}
    for method in protocol.ADAPTIVE_METHODS:
        sets[method] = attack_sets.load(layout.attack_set(protocol.adaptive_name(method, eps, predictor, measure)))[0]
    scores = artifacts.read_table(layout.scores)
    index = sets["pgd"]["adversarial_index"][:count]
    rows = [("source", x[index], [f"#{i}" for i in index])]
    for method, arrays in sets.items():
        sel = ((scores["attack"] == method) & (scores["eps"] == eps) & (scores["predictor"] == predictor)
               & (scores["kind"] == "adversarial"))  # fmt: skip
        if method != "pgd":
            sel &= scores["detector_measure"] == measure
        u, success = scores[measure][sel][:count], scores["success"][sel][:count]
        captions = [
            f"{'fooled' if s == 1 else 'not fooled'}, {'flagged' if v > detector['threshold'] else 'not flagged'}"
            for s, v in zip(success, u)
        ]
        rows.append((method, arrays["x_adv"][:count], captions))
    title = (f"{layout.dataset}: PGD eps = {eps:g}/255 on the {predictor} predictor vs its "
             f"{plots.SHORT.get(measure, measure)} detector\n{model_title(layout)}")  # fmt: skip
    out = layout.folder / "adaptive_gallery.png"
    plots.save_figure(plots.adversarial_examples(rows, title), out)
    inputs = [layout.folder / "adaptive.csv", layout.scores, protocol.detector_path(layout, predictor, measure)]
    inputs += [layout.attack_set(set_name("pgd", eps, predictor))]
    inputs += [layout.attack_set(protocol.adaptive_name(m, eps, predictor, measure)) for m in protocol.ADAPTIVE_METHODS]
    config = {"figure": "adaptive_gallery", "predictor": predictor, "measure": measure, "eps": eps, "count": count}
    plots.figure_record(out, config, started, inputs)
    return out


def run_holes_gallery(layout: Layout, measure: str = "mutual_information", count: int = 8) -> Path:
    """For each predictor: decoded sources and the hole search's images (successful ones first)."""
    from uncertadv import io
    from uncertadv.experiments import latent

    started = time.perf_counter()
    _, decoder = io.load_vae(ensure_vae(layout))
    rows, inputs = [], []
    for predictor in protocol.PREDICTORS:
        path = hole_search.path(layout, predictor, measure)
        if not path.is_file():
            continue
        inputs.append(path)
        with np.load(path, allow_pickle=False) as npz:
            result = {k: npz[k] for k in npz.files}
        order = np.argsort(~result["success"].astype(bool), kind="stable")[:count]
        rows.append((f"{predictor}: source", latent.decode(decoder, result["z0"][order]),
                     [f"#{i}" for i in result["index"][order]]))  # fmt: skip
        captions = [
            f"-> {t}: p={p:.2f} {'ok' if s else 'fail'}{', far' if d > hole_search.FAR_DISTANCE else ''}"
            for t, p, s, d in zip(
                result["target"][order],
                result["p_target"][order],
                result["success"][order],
                result["data_distance"][order],
            )
        ]
        rows.append((f"{predictor}: found", latent.decode(decoder, result["z"][order]), captions))
    if not rows:
        raise ValueError(f"no hole search in {layout.folder}; run `uncertadv report --adaptive --dataset mnist`")
    title = (
        f"Hole search vs the {plots.SHORT.get(measure, measure)} detector: decoded source and the image found\n"
        f"(target = label + 1; ok = p >= 0.9 and not flagged; far = a hole, > {hole_search.FAR_DISTANCE:g} from "
        "the encoded training data)"
    )
    out = layout.folder / "hole_search_gallery.png"
    plots.save_figure(plots.adversarial_examples(rows, title), out)
    plots.figure_record(out, {"figure": "hole_search_gallery", "measure": measure, "count": count}, started, inputs)
    return out
