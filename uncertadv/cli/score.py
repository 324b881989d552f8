"""``uncertadv score``: predictions and the five measures of a test set or a saved attack set."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from uncertadv.cli._common import (
    SAMPLES_FIGURES,
    ClassesOption,
    ColorModeOption,
    DataOption,
    DistributeOption,
    FromLogitsOption,
    ImageSizeOption,
    PixelMaxOption,
    data_options,
    distributed,
    echo,
    quiet_tensorflow,
)
from uncertadv.data import Source


def score(
    ctx: typer.Context,
    model: Annotated[
        Optional[Path], typer.Option(help="A trained .keras classifier or ensemble manifest (test-set scoring).")
    ] = None,
    out: Annotated[Optional[Path], typer.Option(help="CSV to write for test-set scoring: one row per input.")] = None,
    attack: Annotated[
        Optional[Path],
        typer.Option(
            help="Instead: a saved attack set (.npz from `uncertadv attack`); its rows go to RESULTS/scores.csv."
        ),
    ] = None,
    dataset: Annotated[str, typer.Option(help="Data set whose test split is scored.")] = "mnist",
    samples: Annotated[int, typer.Option(min=1, help=SAMPLES_FIGURES)] = 50,
    seed: Annotated[int, typer.Option(help="Seed of the sampled dropout networks.")] = 0,
    batch_size: Annotated[
        Optional[int], typer.Option(min=1, help="Inputs per compiled call (speed and memory only).")
    ] = None,
    source: Annotated[
        Source, typer.Option(help="auto/bundled: the copy in the package (offline); tfds: tfds.load.")
    ] = Source.auto,
    limit: Annotated[Optional[int], typer.Option(min=1, help="Score only the first N test images.")] = None,
    data: DataOption = None,
    pixel_max: PixelMaxOption = 1.0,
    image_size: ImageSizeOption = None,
    from_logits: FromLogitsOption = False,
    classes: ClassesOption = None,
    color_mode: ColorModeOption = None,
    distribute: DistributeOption = None,
    force: Annotated[
        bool, typer.Option(help="Recompute even if OUT exists with the same config, model and data contents.")
    ] = False,
) -> None:
    """Score a test set (--model, --out), your own data (--model, --data, --out) or a saved attack set
    (--attack): predictions and the five measures, one row per input."""
    quiet_tensorflow()
    distributed(ctx, distribute)
    if attack is not None:
        _score_attack_set(attack)
        return
    if model is None or out is None:
        raise ValueError("give --model and --out to score a test set, or --attack to score an attack set")
    from uncertadv.experiments import scores

    options = None
    if data:
        options = data_options(data, pixel_max, image_size, from_logits, classes, color_mode)
    elif classes or color_mode:
        raise ValueError("--classes and --color-mode describe --data (your own data)")
    config = scores.ScoreConfig(
        model=str(model),
        dataset=None if options else dataset,
        source=None if options else source.value,
        samples=samples,
        seed=seed,
        limit=limit,
        data=options,
    )  # with --data, no built-in data set's name or source is recorded: the record names the data it scored
    table, reused = scores.score_test_set(config, out, batch_size=batch_size, force=force)
    echo(f"{'reused' if reused else 'wrote'} {out}")
    typer.echo(scores.summary(table, config))


def _score_attack_set(attack: Path) -> None:
    import time

    import numpy as np

    started = time.perf_counter()
    from uncertadv.experiments.table1 import report

    config, rows = report.score_set(attack)
    from uncertadv.experiments.layout import Layout

    scores_csv = Layout.containing(attack).scores
    report.merge_into_scores(scores_csv, config, rows, started)
    adv = rows["kind"] == "adversarial"
    echo(f"updated {scores_csv}")
    mi = rows["mutual_information"]
    mi_text = (
        "MI n/a (deterministic predictor)"
        if np.isnan(mi).all()
        else f"mean MI adversarial {mi[adv].mean():.4f} vs clean+noise {mi[~adv].mean():.4f}"
    )
    typer.echo(
        f"{attack.stem}: {int(adv.sum())} adversarial rows, success rate {rows['success'][adv].mean():.3f}, {mi_text}"
    )
