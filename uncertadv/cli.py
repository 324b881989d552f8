"""The ``uncertadv`` command line: thin Typer commands over the package modules.

Bad input ends in one line on stderr and exit code 2, never a traceback
(set UNCERTADV_DEBUG=1 to see one). Results are written atomically, and a
re-run whose recorded config matches reuses the finished artefact.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from uncertadv.cli_util import OneLineErrors, echo, quiet_tensorflow
from uncertadv import cli_adv
from uncertadv.cli_plot import plot_app
from uncertadv.data import Source

app = typer.Typer(
    cls=OneLineErrors,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Uncertainty measures and adversarial-example detection with MC dropout (Smith & Gal, UAI 2018).",
)
train_app = typer.Typer(cls=OneLineErrors, no_args_is_help=True, help="Train the paper's models.")
app.add_typer(train_app, name="train")
app.add_typer(plot_app, name="plot")
app.command("attack")(cli_adv.attack)
app.command("report")(cli_adv.report)


def _reuse(record_path: Path, config: dict, files: list[Path]) -> dict | None:
    from uncertadv import artifacts

    return artifacts.reusable_record(record_path, config, files)


@train_app.command("cnn")
def train_cnn(
    out: Annotated[Path, typer.Option(help="Where to save: a .keras file, or with --members > 1 an ensemble manifest .json "
                                           "(members are saved beside it as NAME-memberK.keras).")],
    members: Annotated[int, typer.Option(min=1, help="Train K CNNs from seeds SEED..SEED+K-1: one ensemble of K*T samples.")] = 1,
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs (the paper used 12).")] = 3,
    seed: Annotated[int, typer.Option(help="Seed for weights, shuffling and dropout during training.")] = 0,
    batch_size: Annotated[int, typer.Option(min=1, help="Training batch size.")] = 128,
    learning_rate: Annotated[float, typer.Option(help="Adam learning rate (> 0).")] = 1e-3,
    samples: Annotated[int, typer.Option(min=1, help="MC samples T for the recorded MC test accuracy.")] = 50,
    dataset: Annotated[str, typer.Option(help="Data set to train on.")] = "mnist",
    source: Annotated[Source, typer.Option(help="auto/bundled: the copy in the package (offline); tfds: tfds.load.")] = Source.auto,
    limit_train: Annotated[Optional[int], typer.Option(min=1, help="Use only the first N training images (quick runs).")] = None,
    limit_test: Annotated[Optional[int], typer.Option(min=1, help="Evaluate on the first N test images only.")] = None,
    first_member: Annotated[Optional[Path], typer.Option(help="With --members: an existing CNN trained by the same recipe with seed SEED, used as member 0.")] = None,
    force: Annotated[bool, typer.Option(help="Retrain even if OUT exists with the same config.")] = False,
) -> None:
    """Train the paper's MNIST CNN (or an ensemble of them) and record deterministic and MC test accuracy."""
    quiet_tensorflow()
    from uncertadv import artifacts
    from uncertadv import train as training

    config = training.CNNConfig(
        dataset=dataset, source=source.value, epochs=epochs, seed=seed, batch_size=batch_size,
        learning_rate=learning_rate, limit_train=limit_train, limit_test=limit_test, eval_samples=samples,
    )
    config.validate()
    if members > 1:
        _train_ensemble(config, members, out, first_member, force)
        return
    if out.suffix != ".keras":
        raise ValueError(f"--out must end in .keras, got {out.name}")
    record = None if force else training.reusable(out, config)
    if record is None:
        start = time.perf_counter()
        model, metrics = training.train_cnn(config)
        record = training.cnn_record(config, metrics, time.perf_counter() - start)
        training.save_model(model, out, record)
        echo(f"saved {out} and {artifacts.sidecar_path(out)}")
    else:
        echo(f"reusing {out} (same config; --force retrains)")
    _print_accuracy(record["metrics"])


def _train_ensemble(config, members: int, out: Path, first_member: Path | None, force: bool) -> None:
    from uncertadv import artifacts
    from uncertadv import train as training

    if out.suffix != ".json":
        raise ValueError(f"with --members > 1, --out must be an ensemble manifest ending in .json, got {out.name}")
    want = {**dataclasses.asdict(config), "members": members,
            "first_member": str(first_member) if first_member else None}
    paths = training.member_paths(out, members)
    if first_member is not None:
        paths[0] = first_member
    record = None if force else _reuse(out, want, paths)
    if record is not None:
        echo(f"reusing {out} (same config; --force retrains)")
        _print_accuracy(record["metrics"])
        return
    if force:  # forget our members' records so they retrain; a --first-member file is never touched
        for path in training.member_paths(out, members)[1 if first_member else 0:]:
            artifacts.sidecar_path(path).unlink(missing_ok=True)
    start = time.perf_counter()
    _, metrics, paths = training.train_ensemble(config, members, out, first_member=first_member)
    record = {"kind": "ensemble", "command": artifacts.command_line(), "config": want, "metrics": metrics,
              "versions": artifacts.versions(), "wall_seconds": round(time.perf_counter() - start, 2)}
    training.save_manifest(out, paths, record)
    echo(f"saved {out} ({members} members)")
    _print_accuracy(metrics)


@train_app.command("vae")
def train_vae(
    out: Annotated[Path, typer.Option(help="VAE manifest (.json); encoder and decoder are saved beside it as NAME-encoder.keras and NAME-decoder.keras.")],
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs (the paper used 50).")] = 20,
    seed: Annotated[int, typer.Option(help="Seed for weights, shuffling and the reparameterisation noise.")] = 0,
    batch_size: Annotated[int, typer.Option(min=1, help="Training batch size.")] = 100,
    learning_rate: Annotated[float, typer.Option(help="Adam learning rate (> 0).")] = 1e-3,
    limit_train: Annotated[Optional[int], typer.Option(min=1, help="Use only the first N training images (quick runs).")] = None,
    source: Annotated[Source, typer.Option(help="auto/bundled: the copy in the package (offline); tfds: tfds.load.")] = Source.auto,
    force: Annotated[bool, typer.Option(help="Retrain even if OUT exists with the same config.")] = False,
) -> None:
    """Train the paper's MNIST VAE with a 2-D latent space (784-400-256-2, ELU, sigmoid output)."""
    quiet_tensorflow()
    from uncertadv import artifacts
    from uncertadv import train as training

    config = training.VAEConfig(epochs=epochs, seed=seed, batch_size=batch_size, learning_rate=learning_rate,
                                limit_train=limit_train, source=source.value)
    config.validate()
    if out.suffix != ".json":
        raise ValueError(f"--out must be a VAE manifest ending in .json, got {out.name}")
    record = None if force else _reuse(out, dataclasses.asdict(config), list(training.vae_paths(out)))
    if record is None:
        start = time.perf_counter()
        vae, metrics = training.train_vae(config)
        record = {"kind": "vae", "command": artifacts.command_line(), "config": dataclasses.asdict(config),
                  "metrics": metrics, "versions": artifacts.versions(),
                  "wall_seconds": round(time.perf_counter() - start, 2)}
        training.save_vae(vae, out, record)
        echo(f"saved {out} with its encoder and decoder")
    else:
        echo(f"reusing {out} (same config; --force retrains)")
    m = record["metrics"]
    typer.echo(f"VAE negative ELBO: train {m['train_loss_final']:.2f}, test {m['test_loss']:.2f} nats (KL {m['test_kl']:.2f})")


@train_app.command("catsdogs")
def train_catsdogs(
    out: Annotated[Path, typer.Option(help="Manifest (.json); members are saved beside it as NAME-memberK.keras.")] = Path("results/catsdogs/models/catsdogs.json"),
    backbone: Annotated[str, typer.Option(help="small: a CNN trunk trained here from scratch; resnet50: the paper's ImageNet ResNet50.")] = "small",
    weights: Annotated[str, typer.Option(help="resnet50 only: 'imagenet' (downloaded by Keras), a local .h5 file, or 'none'.")] = "imagenet",
    image_size: Annotated[Optional[int], typer.Option(min=8, help="Input size in pixels [default: 64 for small, 224 for resnet50].")] = None,
    trunk_epochs: Annotated[int, typer.Option(min=1, help="small only: epochs of the deterministic first stage.")] = 12,
    head_epochs: Annotated[int, typer.Option(min=1, help="Epochs of each dropout head on the frozen trunk's features.")] = 20,
    members: Annotated[int, typer.Option(min=1, help="Dropout heads (seeds SEED..SEED+K-1); member 0 is the single model.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the split, the trunk and head 0.")] = 0,
    batch_size: Annotated[int, typer.Option(min=1, help="Training batch size.")] = 64,
    samples: Annotated[int, typer.Option(min=1, help="MC samples T for the recorded MC test accuracy.")] = 20,
    data_dir: Annotated[Optional[Path], typer.Option(help="The PetImages folder (Cat/*.jpg, Dog/*.jpg) [default: $UNCERTADV_PETIMAGES].")] = None,
    source: Annotated[Source, typer.Option(help="auto/bundled: the PetImages folder; tfds: tfds.load('cats_vs_dogs').")] = Source.auto,
    limit_train: Annotated[Optional[int], typer.Option(min=1, help="Use only N training images (quick runs).")] = None,
    limit_test: Annotated[Optional[int], typer.Option(min=1, help="Evaluate on N test images only.")] = None,
    force: Annotated[bool, typer.Option(help="Retrain even if OUT exists with the same config.")] = False,
) -> None:
    """Train the cats-vs-dogs models: a frozen deterministic trunk and K retrained Dropout(0.5) -> Dense(2) heads."""
    quiet_tensorflow()
    from uncertadv import train_catsdogs as tc

    size = image_size or (224 if backbone == "resnet50" else 64)
    config = tc.CatsDogsConfig(
        backbone=backbone, weights=None if weights.lower() == "none" else weights, image_size=size,
        trunk_epochs=trunk_epochs, head_epochs=head_epochs, members=members, seed=seed, batch_size=batch_size,
        source=source.value, data_dir=str(data_dir) if data_dir else None, limit_train=limit_train,
        limit_test=limit_test, eval_samples=samples)
    config.validate()
    if out.suffix != ".json":
        raise ValueError(f"--out must be a manifest ending in .json, got {out.name}")
    from uncertadv import train as training

    record = None if force else _reuse(out, dataclasses.asdict(config), training.member_paths(out, members))
    if record is None:
        start = time.perf_counter()
        models, metrics = tc.train(config)
        tc.save(models, out, config, metrics, time.perf_counter() - start)
        record = {"metrics": metrics}
        echo(f"saved {out} ({members} members)")
    else:
        echo(f"reusing {out} (same config; --force retrains)")
    m = record["metrics"]
    typer.echo(f"{config.title}\ntest accuracy of member 0: dropout off {m['test_accuracy_deterministic']:.4f}, "
               f"MC (T={m['mc_samples']}) {m['test_accuracy_mc']:.4f}; ensemble of {members}: "
               f"dropout off {m['ensemble_test_accuracy_deterministic']:.4f}, MC {m['ensemble_test_accuracy_mc']:.4f}")


def _print_accuracy(metrics: dict) -> None:
    typer.echo(
        f"test accuracy on {metrics['n_test']} images: deterministic {metrics['test_accuracy_deterministic']:.4f}, "
        f"MC (T={metrics['mc_samples']}) {metrics['test_accuracy_mc']:.4f}"
    )


@app.command()
def score(
    model: Annotated[Optional[Path], typer.Option(help="A trained .keras classifier or ensemble manifest (test-set scoring).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="CSV to write for test-set scoring: one row per input.")] = None,
    attack: Annotated[Optional[Path], typer.Option(help="Instead: a saved attack set (.npz from `uncertadv attack`); its rows go to RESULTS/scores.csv.")] = None,
    dataset: Annotated[str, typer.Option(help="Data set whose test split is scored.")] = "mnist",
    samples: Annotated[int, typer.Option(min=1, help="MC samples T.")] = 50,
    seed: Annotated[int, typer.Option(help="Seed of the sampled dropout networks.")] = 0,
    batch_size: Annotated[Optional[int], typer.Option(min=1, help="Inputs per compiled call (speed/memory only).")] = None,
    source: Annotated[Source, typer.Option(help="auto/bundled: the copy in the package (offline); tfds: tfds.load.")] = Source.auto,
    limit: Annotated[Optional[int], typer.Option(min=1, help="Score only the first N test images.")] = None,
    force: Annotated[bool, typer.Option(help="Recompute even if OUT exists with the same config.")] = False,
) -> None:
    """Score a test set (--model, --out) or a saved attack set (--attack): predictions and the five measures."""
    quiet_tensorflow()
    if attack is not None:
        import numpy as np

        from uncertadv import table1

        config, rows = table1.score_set(attack)
        scores_csv = attack.parent.parent / "scores.csv"
        table1.merge_into_scores(scores_csv, config, rows)
        adv = rows["kind"] == 2
        echo(f"updated {scores_csv}")
        mi = rows["mutual_information"]
        mi_text = ("MI n/a (deterministic model)" if np.isnan(mi).all() else
                   f"mean MI adversarial {mi[adv].mean():.4f} vs clean+noise {mi[~adv].mean():.4f}")
        typer.echo(f"{attack.stem}: {int(adv.sum())} adversarial rows, success rate {rows['success'][adv].mean():.3f}, "
                   f"{mi_text}")
        return
    if model is None or out is None:
        raise ValueError("give --model and --out to score a test set, or --attack to score an attack set")
    from uncertadv import scoring

    config = scoring.ScoreConfig(
        model=str(model), dataset=dataset, source=source.value, samples=samples, seed=seed, limit=limit
    )
    table, reused = scoring.score_test_set(config, out, batch_size=batch_size, force=force)
    echo(f"{'reused' if reused else 'wrote'} {out}")
    typer.echo(scoring.summary(table, config))


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
