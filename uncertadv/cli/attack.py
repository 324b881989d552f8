"""``uncertadv attack``: one attack set (clean, noise and adversarial images) into RESULTS/attacks/."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import typer

from uncertadv.cli._common import PredictorName, Results, echo, quiet_tensorflow


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
    force: Annotated[bool, typer.Option(help="Recompute even if the attack set exists with the same config.")] = False,
) -> None:
    """Craft adversarial examples against the paper's models (and the matching clean and noise sets).

    Models come from RESULTS/models/; the default recipe trains any that are missing."""
    if eps < 0:
        raise ValueError(f"--eps must be >= 0 (0-255 pixel units), got {eps:g}")
    quiet_tensorflow()
    from uncertadv import data
    from uncertadv.attacks import AttackConfig
    from uncertadv.experiments import attack_sets
    from uncertadv.experiments.layout import Layout, ensure_classifiers, set_name

    layout = Layout.of(dataset, results)
    config = AttackConfig(
        method=method.value,
        eps=eps,
        predictor=predictor.value,
        samples=samples,
        iterations=iterations,
        step=step,
        seed=seed,
    )
    models, data_options = ensure_classifiers(layout, (predictor.value,))
    chosen, files = models[predictor.value]
    x, y = data.load(dataset, "test", **data_options)
    out = layout.attack_set(set_name(method.value, eps, predictor.value))
    record = attack_sets.build(
        chosen,
        files,
        x,
        y,
        config,
        n=n,
        layout=layout,
        model=layout.classifier(predictor.value),
        data_options=data_options,
        force=force,
    )
    echo(f"attack set: {out}")
    typer.echo(
        f"{method.value} eps={eps:g} on the {predictor.value} predictor, {n} images: success rate "
        f"{record['success_rate']:.3f} (label changed {record['label_changed_rate']:.3f}), mean L-inf {record['mean_linf_255']:.2f}/255, mean L2 {record['mean_l2']:.3f}"
    )
