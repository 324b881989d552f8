"""``uncertadv attack`` and ``uncertadv report``: adversarial examples and Table 1."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from uncertadv.cli_util import echo, quiet_tensorflow


class Method(str, Enum):
    fgm = "fgm"
    bim = "bim"
    mim = "mim"
    pgd = "pgd"


class Target(str, Enum):
    deterministic = "deterministic"
    mc = "mc"
    ensemble = "ensemble"


def attack(
    method: Annotated[Method, typer.Option(help="fgm, bim, mim (cleverhans.tf2) or pgd (random start).")],
    eps: Annotated[float, typer.Option(help="L-infinity budget in 0-255 pixel units (the paper: 5, 10).")],
    model: Annotated[Target, typer.Option(help="Attacked model: deterministic (dropout off), mc (MC-mean predictive), ensemble.")] = Target.mc,
    dataset: Annotated[str, typer.Option(help="Data set; models come from RESULTS/models/.")] = "mnist",
    n: Annotated[int, typer.Option(min=1, help="Images per kind (clean, noise, adversarial).")] = 200,
    samples: Annotated[int, typer.Option(min=1, help="MC samples T per network, for attacking and evaluating.")] = 20,
    iterations: Annotated[int, typer.Option(min=1, help="Iterations of bim/mim/pgd.")] = 10,
    step: Annotated[Optional[float], typer.Option(help="Step per iteration, 0-255 units [default: 0.5 at eps 5, 1.2 at eps 10, else eps/10].")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the image draw, the noise and the attacker's networks (the evaluator uses SEED + 1000000).")] = 0,
    results: Annotated[Optional[Path], typer.Option(help="Results folder [default: results/DATASET].")] = None,
    force: Annotated[bool, typer.Option(help="Recompute even if the attack set exists with the same config.")] = False,
) -> None:
    """Craft adversarial examples (and the matching clean and noise sets) into RESULTS/attacks/."""
    if eps < 0:
        raise ValueError(f"--eps must be >= 0 (0-255 pixel units), got {eps:g}")
    quiet_tensorflow()
    from uncertadv import adversarial, data, table1
    from uncertadv.attacks import AttackConfig

    results = results or Path("results") / dataset
    config = AttackConfig(method=method.value, eps=eps, target=model.value, samples=samples, iterations=iterations,
                          step=step, seed=seed)
    if dataset not in table1.MODEL_SOURCES:
        raise ValueError(f"unknown dataset {dataset!r}; choose from {', '.join(table1.MODEL_SOURCES)}")
    sources, data_options = table1.MODEL_SOURCES[dataset](results, (model.value,))
    models, files = sources[model.value]
    x, y = data.load(dataset, "test", **data_options)
    out = results / "attacks" / f"{adversarial.set_name(config)}.npz"
    record = adversarial.build(models, files, x, y, config, n=n, out=out, dataset=dataset, data_options=data_options,
                               force=force)
    echo(f"attack set: {out}")
    typer.echo(f"{method.value} eps={eps:g} on the {model.value} model, {n} images: success rate "
               f"{record['success_rate']:.3f}, mean L-inf {record['mean_linf_255']:.2f}/255, mean L2 {record['mean_l2']:.3f}")


def report(
    dataset: Annotated[str, typer.Option(help="Data set whose Table 1 to build.")] = "mnist",
    methods: Annotated[str, typer.Option(help="Comma-separated attacks.")] = "fgm,bim,mim,pgd",
    eps: Annotated[Optional[str], typer.Option(help="Comma-separated budgets, 0-255 units [default: mnist 5,10,76].")] = None,
    models: Annotated[str, typer.Option(help="Comma-separated target models.")] = "deterministic,mc,ensemble",
    n: Annotated[int, typer.Option(min=1, help="Images per kind (the paper: 200).")] = 200,
    samples: Annotated[int, typer.Option(min=1, help="MC samples T per network (the paper: 20).")] = 20,
    seed: Annotated[int, typer.Option(help="Attacker and index seed (evaluator: SEED + 1000000).")] = 0,
    bootstrap: Annotated[int, typer.Option(min=10, help="Bootstrap rounds for the AUC intervals.")] = 1000,
    results: Annotated[Optional[Path], typer.Option(help="Results folder [default: results/DATASET].")] = None,
    force: Annotated[bool, typer.Option(help="Recompute every attack set and score.")] = False,
) -> None:
    """Table 1: train what is missing, attack, score, and write RESULTS/table1.{csv,md} and scores.csv."""
    quiet_tensorflow()
    from uncertadv import table1
    from uncertadv.attacks import METHODS, TARGETS

    method_list = tuple(m.strip() for m in methods.split(",") if m.strip())
    target_list = tuple(m.strip() for m in models.split(",") if m.strip())
    for name, allowed, values in (("method", METHODS, method_list), ("model", TARGETS, target_list)):
        bad = [v for v in values if v not in allowed]
        if bad or not values:
            raise ValueError(f"unknown {name} {', '.join(bad) or '(none)'}; choose from {', '.join(allowed)}")
    try:
        eps_list = tuple(float(e) for e in eps.split(",")) if eps else table1.DEFAULT_EPS.get(dataset, (5.0, 10.0))
    except ValueError:
        raise ValueError(f"--eps must be comma-separated numbers, got {eps!r}") from None
    if any(e < 0 for e in eps_list):
        raise ValueError(f"--eps values must be >= 0, got {eps}")
    cfg = table1.TableConfig(dataset=dataset, results=results or Path("results") / dataset, methods=method_list,
                             eps=eps_list, targets=target_list, n=n, samples=samples, seed=seed, bootstrap=bootstrap,
                             force=force)
    _, outputs = table1.run(cfg)
    for path in outputs:
        echo(f"wrote {path}")
    typer.echo((cfg.results / "table1.md").read_text())
