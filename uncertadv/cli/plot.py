"""``uncertadv plot ...``: the MNIST figures (PNG) and the CSVs behind them."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from uncertadv.cli._common import SAMPLES_FIGURES, OneLineErrors, PredictorName, echo, quiet_tensorflow

plot_app = typer.Typer(
    cls=OneLineErrors, no_args_is_help=True, help="Draw the paper's figures; models default to RESULTS/models/."
)


class Measure(str, Enum):
    pair = "pair"
    mutual_information = "mutual_information"
    predictive_entropy = "predictive_entropy"
    expected_entropy = "expected_entropy"
    softmax_variance = "softmax_variance"
    variation_ratio = "variation_ratio"


Results = Annotated[
    Optional[Path],
    typer.Option(
        help="Folder for figures and CSVs; models default to its models/ folder "
        "(default: results/mnist; $UNCERTADV_RESULTS replaces 'results').",
        show_default=False,
    ),
]
Cnn = Annotated[Optional[Path], typer.Option(help="Dropout CNN (.keras) (default: RESULTS/models/cnn.keras).")]
Ensemble = Annotated[Optional[Path], typer.Option(help="Ensemble manifest (default: RESULTS/models/ensemble.json).")]
Vae = Annotated[Optional[Path], typer.Option(help="VAE manifest (default: RESULTS/models/vae.json).")]
Samples = Annotated[int, typer.Option(min=1, help=f"An ensemble of K uses K*T. {SAMPLES_FIGURES}")]
Seed = Annotated[int, typer.Option(help="Seed of the sampled dropout networks.")]
Grid = Annotated[int, typer.Option(min=2, help="Latent grid points per axis.")]
Extent = Annotated[float, typer.Option(min=0.0, help="Latent grid covers [-EXTENT, EXTENT]^2 (the paper's code: 10).")]
Pairs = Annotated[int, typer.Option(min=1, help="Random different-class test pairs.")]
PairSeed = Annotated[int, typer.Option(help="Seed for drawing the pairs.")]


def _mnist(results: Optional[Path]):
    from uncertadv.experiments.layout import Layout

    return Layout.of("mnist", results)


def _context(results: Optional[Path], cnn, ensemble, vae, samples: int, seed: int):
    quiet_tensorflow()
    from uncertadv.experiments.mnist_figures.figures import Context

    layout = _mnist(results)
    return Context(
        results=layout.folder,
        cnn=cnn or layout.cnn,
        ensemble=ensemble or layout.ensemble,
        vae=vae or layout.vae,
        samples=samples,
        seed=seed,
    )


def _written(paths) -> None:
    for p in paths:
        echo(f"wrote {p}")


@plot_app.command("latent")
def latent(
    measure: Annotated[
        Measure, typer.Option(help="Measure drawn as background; 'pair' = MI next to entropy (Figures 1, 4).")
    ] = Measure.pair,
    predictor: Annotated[
        PredictorName,
        typer.Option(help="mc: one dropout CNN; ensemble: K dropout CNNs (Figure 6); deterministic: dropout off."),
    ] = PredictorName.mc,
    grid: Grid = 150,
    extent: Extent = 10.0,
    samples: Samples = 50,
    seed: Seed = 0,
    results: Results = None,
    cnn: Cnn = None,
    ensemble: Ensemble = None,
    vae: Vae = None,
) -> None:
    """Uncertainty over the VAE's 2-D latent space, with the encoded test set on top."""
    from uncertadv.experiments.mnist_figures import figures as mnist_figures

    ctx = _context(results, cnn, ensemble, vae, samples, seed)
    _written(mnist_figures.run_latent(ctx, measure.value, predictor.value, grid, extent))


@plot_app.command("interpolation")
def interpolation(
    steps: Annotated[int, typer.Option(min=2, help="Points along each path.")] = 15,
    from_class: Annotated[
        int, typer.Option(min=0, max=9, help="Class of the first image (first such test image).")
    ] = 6,
    to_class: Annotated[int, typer.Option(min=0, max=9, help="Class of the second image.")] = 8,
    samples: Samples = 50,
    seed: Seed = 0,
    results: Results = None,
    cnn: Cnn = None,
    vae: Vae = None,
) -> None:
    """Figure 2: latent- vs pixel-space interpolation between two test digits, with entropy and MI along both."""
    from uncertadv.experiments.mnist_figures import figures as mnist_figures

    ctx = _context(results, cnn, None, vae, samples, seed)
    _written(mnist_figures.run_interpolation(ctx, steps, (from_class, to_class)))


@plot_app.command("midpoints")
def midpoints(
    pairs: Pairs = 3000,
    pair_seed: PairSeed = 0,
    samples: Samples = 50,
    seed: Seed = 0,
    results: Results = None,
    cnn: Cnn = None,
    vae: Vae = None,
) -> None:
    """Figure 3: entropy and MI of pixel vs latent midpoints, and each measure's ROC-AUC for telling them apart."""
    from uncertadv.experiments.mnist_figures import figures as mnist_figures

    ctx = _context(results, cnn, None, vae, samples, seed)
    paths, aucs = mnist_figures.run_midpoints(ctx, pairs, pair_seed)
    _written(paths)
    for name, auc in aucs.items():
        typer.echo(f"pixel vs latent midpoints, ROC-AUC of {name}: {auc:.3f}")


@plot_app.command("holes")
def holes(
    far_distance: Annotated[
        float,
        typer.Option(
            min=0.0, help="'Far from data': latent distance to the nearest encoded training image above this."
        ),
    ] = 1.0,
    min_confidence: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="A hole is confident: max probability at least this.")
    ] = 0.9,
    mi_quantile: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="A hole has low MI: at most this quantile of the model's MI on clean test digits."
        ),
    ] = 0.95,
    grid: Grid = 150,
    extent: Extent = 10.0,
    samples: Samples = 50,
    seed: Seed = 0,
    results: Results = None,
    cnn: Cnn = None,
    ensemble: Ensemble = None,
    vae: Vae = None,
) -> None:
    """Figure 5 and the Figure 6 claim: confident low-MI 'holes' far from data, single dropout model vs ensemble."""
    from uncertadv.experiments.mnist_figures import figures as mnist_figures

    ctx = _context(results, cnn, ensemble, vae, samples, seed)
    paths, rows = mnist_figures.run_holes(ctx, grid, extent, far_distance, min_confidence, mi_quantile)
    _written(paths)
    for r in rows:
        typer.echo(
            f"{r['predictor']}: holes cover {r['hole_share_of_far']:.1%} of the far-from-data area "
            f"({r['hole_points']} of {r['far_points']} grid points; MI threshold {r['mi_threshold']:.4f})"
        )


@plot_app.command("variance-mi")
def variance_mi(
    pairs: Pairs = 3000,
    pair_seed: PairSeed = 0,
    samples: Samples = 50,
    seed: Seed = 0,
    results: Results = None,
    cnn: Cnn = None,
    vae: Vae = None,
) -> None:
    """§3.2: softmax variance against MI on clean and midpoint inputs, with Spearman's rho."""
    from uncertadv.experiments.mnist_figures import figures as mnist_figures

    ctx = _context(results, cnn, None, vae, samples, seed)
    paths, rhos = mnist_figures.run_variance_vs_mi(ctx, pairs, pair_seed, _adversarial_group(ctx.results))
    _written(paths)
    for name, rho in rhos.items():
        typer.echo(f"Spearman rho(softmax variance, MI) on {name}: {rho:.3f}")


def _adversarial_group(results: Path) -> dict:
    """MC-predictor adversarial rows of Table 1's attacks in RESULTS/scores.csv, if `uncertadv report` has run
    (the settings table1.csv lists: not the adaptive attacks' rows, nor their extra PGD budgets)."""
    import numpy as np

    from uncertadv import artifacts
    from uncertadv.experiments.table1.figures import read_long_scores, table1_mask

    path = _mnist(results).scores
    if not path.is_file():
        return {}
    scores = read_long_scores(path)
    if "predictor" not in scores:
        return {}  # a scores.csv of an older uncertadv
    sel = (scores["predictor"] == "mc") & (scores["kind"] == "adversarial") & table1_mask(scores)
    table = _mnist(results).table1("csv")
    if table.is_file():  # only the budgets of Table 1
        sel &= np.isin(scores["eps"], np.asarray([float(e) for e in artifacts.read_csv(table)["eps"]]))
    if not sel.any():
        return {}
    return {
        "adversarial (MC predictor, all attacks)": {
            "softmax_variance": scores["softmax_variance"][sel],
            "mutual_information": scores["mutual_information"][sel],
        }
    }


@plot_app.command("roc")
def roc(
    dataset: Annotated[str, typer.Option(help="Data set; reads RESULTS/scores.csv from `uncertadv report`.")] = "mnist",
    results: Annotated[
        Optional[Path], typer.Option(help="Results folder (default: results/DATASET).", show_default=False)
    ] = None,
) -> None:
    """Figures 11-14: ROC and precision-recall curves per attack and eps, for each measure and predictor,
    with all adversarial inputs and with the successful ones only."""
    from uncertadv.experiments.layout import Layout
    from uncertadv.experiments.table1 import figures as adversarial_figures

    _written(adversarial_figures.run_roc(Layout.of(dataset, results)))


@plot_app.command("adversarial-examples")
def adversarial_examples(
    dataset: Annotated[str, typer.Option(help="Data set of the saved attack sets.")] = "mnist",
    method: Annotated[str, typer.Option(help="Attack method of the sets to show.")] = "mim",
    eps: Annotated[float, typer.Option(help="Budget of the sets to show, 0-255 units.")] = 76.0,
    count: Annotated[int, typer.Option(min=1, max=20, help="Images to show.")] = 8,
    results: Annotated[
        Optional[Path], typer.Option(help="Results folder (default: results/DATASET).", show_default=False)
    ] = None,
) -> None:
    """Figure 7: originals, adversarial images against the deterministic and MC predictors, amplified differences."""
    quiet_tensorflow()
    from uncertadv.experiments.layout import Layout
    from uncertadv.experiments.table1 import figures as adversarial_figures

    _written([adversarial_figures.run_examples(Layout.of(dataset, results), method, eps, count)])


@plot_app.command("adaptive")
def adaptive_figures(
    dataset: Annotated[
        str, typer.Option(help="Data set; reads RESULTS/adaptive.csv from `report --adaptive`.")
    ] = "mnist",
    results: Annotated[
        Optional[Path], typer.Option(help="Results folder (default: results/DATASET).", show_default=False)
    ] = None,
) -> None:
    """The adaptive suite: evasion against eps (PGD vs the per-image worst case, per measure, tail and
    predictor), the cascade's convergence curves, and a gallery of the chosen images beside their sources."""
    quiet_tensorflow()
    from uncertadv.experiments.adaptive import figures
    from uncertadv.experiments.layout import Layout

    layout = Layout.of(dataset, results)
    paths = [figures.run_evasion(layout), figures.run_curves(layout)]
    missing = next((p for p in figures.gallery_sets(layout) if not p.is_file()), None)
    if missing is None:
        paths.append(figures.run_gallery(layout))
    else:  # the gallery draws attack images, which are not committed: say so rather than stop
        echo(f"warning: gallery skipped: no {missing}; `uncertadv report --adaptive --dataset {layout.dataset}` "
             "makes it")  # fmt: skip
    _written(paths)


@plot_app.command("all")
def all_figures(
    samples: Samples = 50,
    seed: Seed = 0,
    grid: Grid = 150,
    extent: Extent = 10.0,
    pairs: Pairs = 3000,
    pair_seed: PairSeed = 0,
    results: Results = None,
    cnn: Cnn = None,
    ensemble: Ensemble = None,
    vae: Vae = None,
) -> None:
    """Every MNIST figure with its defaults (latent maps for the three models, interpolation,
    midpoints, holes, variance vs MI), then RESULTS/SUMMARY.md with the numbers."""
    from uncertadv.experiments.mnist_figures import figures as mnist_figures
    from uncertadv.experiments.mnist_figures.summary import write_mnist_summary

    ctx = _context(results, cnn, ensemble, vae, samples, seed)
    for predictor in ("mc", "ensemble", "deterministic"):
        _written(mnist_figures.run_latent(ctx, "pair", predictor, grid, extent))
    _written(mnist_figures.run_latent(ctx, "mutual_information", "ensemble", grid, extent))  # Figure 6
    _written(mnist_figures.run_interpolation(ctx, mnist_figures.STEPS, mnist_figures.CLASSES))
    _written(mnist_figures.run_midpoints(ctx, pairs, pair_seed)[0])
    _written(
        mnist_figures.run_holes(
            ctx, grid, extent, mnist_figures.FAR_DISTANCE, mnist_figures.MIN_CONFIDENCE, mnist_figures.MI_QUANTILE
        )[0]
    )
    _written(mnist_figures.run_variance_vs_mi(ctx, pairs, pair_seed, _adversarial_group(ctx.results))[0])
    summary = write_mnist_summary(ctx.results)
    echo(f"wrote {summary}")
    typer.echo(summary.read_text())
