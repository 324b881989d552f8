"""Figures. Each function returns a matplotlib Figure; ``save_figure`` writes it atomically."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from uncertadv import artifacts  # noqa: E402

LABELS = {
    "predictive_entropy": "predictive entropy (nats)",
    "expected_entropy": "expected entropy (nats)",
    "mutual_information": "mutual information (nats)",
    "softmax_variance": "softmax variance",
    "variation_ratio": "variation ratio",
    "confidence": "max probability",
}
SHORT = {
    "predictive_entropy": "entropy",
    "mutual_information": "MI",
    "expected_entropy": "expected entropy",
    "softmax_variance": "softmax variance",
    "variation_ratio": "variation ratio",
}


def save_figure(fig, path: Path | str, dpi: int = 130) -> None:
    """Write ``fig`` as PNG atomically and close it."""
    with artifacts.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)


def figure_record(path: Path, config: dict, started: float, inputs: list[Path]) -> Path:
    """The sidecar of figure ``path`` (same stem, .json): the command, config, versions and wall time
    that drew it, the figure's sha256, and the sha256 of each file it was drawn from (named relative
    to the figure; a later run may rewrite those)."""

    def name(p: Path) -> str:
        p = Path(p)
        return str(p.relative_to(path.parent)) if p.is_relative_to(path.parent) else str(p)

    sidecar = artifacts.sidecar_path(path)
    files = {name(p): artifacts.file_sha256(p) for p in inputs}
    record = artifacts.record(config, started, inputs=files, outputs=[path.name], sha256=artifacts.file_sha256(path))
    artifacts.write_json(sidecar, record)
    return sidecar


def latent_maps(
    panels: list[tuple[np.ndarray, str, str]], extent: float, z_test: np.ndarray, y_test: np.ndarray, suptitle: str
):
    """One panel per ``(values [size, size], title, colour-bar label)``: the measure as the
    background, the encoded test set on top coloured by class."""
    fig, axes = plt.subplots(1, len(panels), figsize=(6.4 * len(panels), 6.4), squeeze=False, layout="constrained")
    for ax, (values, title, label) in zip(axes[0], panels):
        image = ax.imshow(
            values, origin="lower", extent=(-extent, extent, -extent, extent), cmap="Greys", aspect="equal"
        )
        inside = (np.abs(z_test) <= extent).all(axis=1)
        points = ax.scatter(
            z_test[inside, 0],
            z_test[inside, 1],
            c=y_test[inside],
            cmap="tab10",
            vmin=-0.5,
            vmax=9.5,
            s=1.5,
            alpha=0.5,
            linewidths=0,
        )
        fig.colorbar(image, ax=ax, shrink=0.8, label=label)
        ax.set(title=title, xlabel="$z_1$", ylabel="$z_2$")
    legend = fig.colorbar(points, ax=axes[0].tolist(), location="bottom", shrink=0.5, aspect=40, ticks=range(10))
    legend.set_label("class of the encoded test image")
    legend.solids.set(alpha=1)
    fig.suptitle(suptitle)
    return fig


def interpolation(
    pixel_images: np.ndarray,
    latent_images: np.ndarray,
    t: np.ndarray,
    pixel_scores: dict,
    latent_scores: dict,
    title: str,
):
    """Figure 2: image strips for both paths, and entropy and MI along them."""
    steps = len(t)
    fig = plt.figure(figsize=(max(10, steps * 0.8), 6.5), layout="constrained")
    grid = fig.add_gridspec(3, steps, height_ratios=[1, 1, 3.5])
    for row, (images, name) in enumerate(((latent_images, "latent"), (pixel_images, "pixel"))):
        for i in range(steps):
            ax = fig.add_subplot(grid[row, i])
            ax.imshow(images[i, ..., 0], cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
            if i == 0:
                ax.set_ylabel(name, rotation=0, ha="right", va="center")
    ax = fig.add_subplot(grid[2, :])
    for scores, name, style in ((latent_scores, "latent", "-"), (pixel_scores, "pixel", "--")):
        ax.plot(t, scores["predictive_entropy"], style, color="tab:blue", marker="o", ms=3, label=f"entropy, {name}")
        ax.plot(t, scores["mutual_information"], style, color="tab:red", marker="o", ms=3, label=f"MI, {name}")
    ax.set(xlabel="interpolation t", ylabel="nats")
    ax.legend(ncol=2)
    fig.suptitle(title)
    return fig


def midpoint_histograms(values: dict[str, dict[str, np.ndarray]], aucs: dict[str, float], title: str):
    """Figure 3. Top: one panel per space with entropy and MI; bottom: one panel per
    measure comparing the spaces, with the pixel-vs-latent AUC."""
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    measures = ("predictive_entropy", "mutual_information")
    colours = {
        "predictive_entropy": "tab:blue",
        "mutual_information": "tab:red",
        "pixel": "tab:orange",
        "latent": "tab:green",
    }
    top = max(np.nanmax(values[s][m]) for s in values for m in measures)
    bins = np.linspace(0, top, 40)
    for ax, space in zip(axes[0], ("pixel", "latent")):
        for m in measures:
            ax.hist(values[space][m], bins=bins, alpha=0.55, color=colours[m], label=SHORT[m])
        ax.set(title=f"{space}-space midpoints", xlabel="nats", ylabel="images")
        ax.legend()
    for ax, m in zip(axes[1], measures):
        for space in ("pixel", "latent"):
            ax.hist(values[space][m], bins=bins, alpha=0.55, color=colours[space], label=f"{space} midpoints")
        ax.set(title=f"{SHORT[m]}: pixel vs latent, ROC-AUC {aucs[m]:.3f}", xlabel="nats", ylabel="images")
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def gallery(images: np.ndarray, captions: list[str], title: str, columns: int = 8):
    """A grid of images ``[M, H, W, 1]`` with a caption under each."""
    rows = max(1, int(np.ceil(len(images) / columns)))
    fig, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.9 * rows + 0.6), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image, caption in zip(axes.ravel(), images, captions):
        ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=1)
        ax.set_title(caption, fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def hole_maps(panels: list[tuple[np.ndarray, np.ndarray, str]], extent: float, z_train: np.ndarray, title: str):
    """One panel per ``(far [size, size], hole [size, size], title)``: far-from-data area in
    light grey, holes in red, encoded training images in black."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5.6 * len(panels), 5.4), squeeze=False)
    for ax, (far, hole, name) in zip(axes[0], panels):
        image = np.where(hole, 2, np.where(far, 1, 0))
        cmap = matplotlib.colors.ListedColormap(["white", "#d9d9d9", "#d62728"])
        ax.imshow(image, origin="lower", extent=(-extent, extent, -extent, extent), cmap=cmap, vmin=0, vmax=2)
        inside = (np.abs(z_train) <= extent).all(axis=1)
        ax.scatter(z_train[inside, 0], z_train[inside, 1], s=0.2, c="black", alpha=0.3, linewidths=0)
        ax.set(title=name, xlabel="$z_1$", ylabel="$z_2$")
    handles = [
        matplotlib.patches.Patch(color=colour, label=label)
        for colour, label in (
            ("#d9d9d9", "far from data"),
            ("#d62728", "hole: far, confident, low MI"),
            ("black", "encoded training images"),
        )
    ]
    fig.legend(handles=handles, loc="lower center", ncol=3, bbox_to_anchor=(0.5, -0.04))
    fig.suptitle(title)
    return fig


def variance_vs_mi(groups: dict[str, tuple[np.ndarray, np.ndarray]], rhos: dict[str, float], title: str):
    """§3.2: softmax variance against MI, one colour per input group, Spearman's rho in the legend."""
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    for name, (variance, mi) in groups.items():
        ax.scatter(variance, mi, s=4, alpha=0.4, linewidths=0, label=f"{name} (Spearman ρ = {rhos[name]:.3f})")
    ax.set(xlabel=LABELS["softmax_variance"], ylabel=LABELS["mutual_information"], title=title)
    ax.legend(markerscale=4)
    return fig


def roc_pr(curves: dict[str, dict[str, tuple]], title: str):
    """Figures 11-14: ROC and precision-recall curves. ``curves[subset][label] = (fpr, tpr, recall,
    precision, auc)`` for subsets such as "all adversarial" and "successful only"."""
    subsets = list(curves)
    fig, axes = plt.subplots(len(subsets), 2, figsize=(11, 4.8 * len(subsets)), squeeze=False, layout="constrained")
    for row, subset in enumerate(subsets):
        roc_ax, pr_ax = axes[row]
        for label, (fpr, tpr, recall, precision, auc) in curves[subset].items():
            style = "--" if "entropy" in label else "-"
            (line,) = roc_ax.plot(fpr, tpr, style, label=f"{label} (AUC {auc:.3f})")
            pr_ax.plot(recall, precision, style, color=line.get_color(), label=label)
        roc_ax.plot([0, 1], [0, 1], ":", color="grey", lw=1)
        roc_ax.set(title=f"ROC, {subset}", xlabel="false-positive rate", ylabel="true-positive rate")
        pr_ax.set(
            title=f"precision-recall, {subset} (adversarial = positive)",
            xlabel="recall",
            ylabel="precision",
            ylim=(0, 1.02),
        )
        roc_ax.legend(fontsize=8, loc="lower right")
        pr_ax.legend(fontsize=8, loc="lower left")
    fig.suptitle(title)
    return fig


def adversarial_examples(rows: list[tuple[str, np.ndarray, list[str]]], title: str):
    """Figure 7: one row per ``(row label, images [K, H, W, C], captions)``."""
    columns = len(rows[0][1])
    fig, axes = plt.subplots(
        len(rows), columns, figsize=(1.7 * columns, 2.0 * len(rows)), squeeze=False, layout="constrained"
    )
    for r, (label, images, captions) in enumerate(rows):
        for c in range(columns):
            ax = axes[r, c]
            image = images[c]
            ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(captions[c], fontsize=7)
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
    fig.suptitle(title)
    return fig
