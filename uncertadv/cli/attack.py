"""``uncertadv attack``: one attack set (clean, noise and adversarial images) into RESULTS/attacks/."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import typer

from uncertadv.cli._common import (
    DataOption,
    FromLogitsOption,
    ImageSizeOption,
    ModelOption,
    PixelMaxOption,
    PredictorName,
    Results,
    echo,
    own_data,
    quiet_tensorflow,
)


class Method(str, Enum):
    fgm = "fgm"
    bim = "bim"
    mim = "mim"
    pgd = "pgd"


def attack(
    method: Annotated[Method, typer.Option(help="fgm, bim, mim (cleverhans.tf2) or pgd (random start).")],
    eps: Annotated[float, typer.Option(help="L-infinity budget in 0-255 pixel units (the paper: 5, 10).")],
    predictor: Annotated[
        PredictorName,
        typer.Option(help="Predictor attacked: deterministic (dropout off), mc (MC-mean predictive), ensemble."),
    ] = PredictorName.mc,
    dataset: Annotated[str, typer.Option(help="Data set: mnist or catsdogs.")] = "mnist",
    n: Annotated[int, typer.Option(min=1, help="Images per kind (clean, noise, adversarial).")] = 200,
    samples: Annotated[int, typer.Option(min=1, help="MC samples T per network, for attacking and evaluating.")] = 20,
    iterations: Annotated[int, typer.Option(min=1, help="Iterations of bim/mim/pgd.")] = 10,
    step: Annotated[
        Optional[float],
        typer.Option(help="Step per iteration, 0-255 units (default: 0.5 at eps 5, 1.2 at eps 10, else eps/10)."),
    ] = None,
    seed: Annotated[
        int,
        typer.Option(
            help="Seed of the image draw, the noise and the attacker's networks (the evaluator uses SEED + 1000000)."
        ),
    ] = 0,
    results: Results = None,
    model: ModelOption = None,
    data: DataOption = None,
    pixel_max: PixelMaxOption = 1.0,
    image_size: ImageSizeOption = None,
    from_logits: FromLogitsOption = False,
    force: Annotated[bool, typer.Option(help="Recompute even if the attack set exists with the same config.")] = False,
) -> None:
    """Craft adversarial examples (and the matching clean and noise sets) into RESULTS/attacks/.

    Against the paper's models (from RESULTS/models/; the default recipe trains any that are
    missing), or with --model and --data against your own (RESULTS defaults to results/own)."""
    if eps < 0:
        raise ValueError(f"--eps must be >= 0 (0-255 pixel units), got {eps:g}")
    quiet_tensorflow()
    from uncertadv import data as datasets
    from uncertadv.attacks import AttackConfig
    from uncertadv.experiments import attack_sets, own
    from uncertadv.experiments.layout import Layout, ensure_classifiers, eval_seed, own_layout, set_name

    options = own_data(model, data, pixel_max, image_size, from_logits)
    layout = own_layout(results) if options else Layout.of(dataset, results)
    config = AttackConfig(
        method=method.value,
        eps=eps,
        predictor=predictor.value,
        samples=samples,
        iterations=iterations,
        step=step,
        seed=seed,
        pixel_max=pixel_max if options else 1.0,
    )
    if options:
        chosen, files = own.classifiers(model, (predictor.value,), from_logits)[predictor.value]
        x, y = own.load(options, chosen, predictor.value, samples, eval_seed(seed))
        data_options = options
    else:
        models, data_options = ensure_classifiers(layout, (predictor.value,))
        chosen, files = models[predictor.value]
        x, y = datasets.load(dataset, "test", **data_options)
    out = layout.attack_set(set_name(method.value, eps, predictor.value))
    record = attack_sets.build(
        chosen,
        files,
        x,
        y,
        config,
        n=n,
        layout=layout,
        model=model or layout.classifier(predictor.value),
        data_options=data_options,
        force=force,
    )
    echo(f"attack set: {out}")
    typer.echo(
        f"{method.value} eps={eps:g} on the {predictor.value} predictor, {n} images: success rate "
        f"{record['success_rate']:.3f} (label changed {record['label_changed_rate']:.3f}), mean L-inf {record['mean_linf_255']:.2f}/255, mean L2 {record['mean_l2']:.3f}"
    )
