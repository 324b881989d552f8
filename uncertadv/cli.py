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

from uncertadv.data import Source

EXIT_BAD_INPUT = 2


class _OneLineErrors(typer.core.TyperGroup):
    """Turns usage errors and expected failures into one line on stderr."""

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except typer._click.exceptions.ClickException as err:
            _fail(err.format_message())
        except typer.Abort:
            _fail("aborted", code=1)
        except (ValueError, OSError, KeyError) as err:
            if os.environ.get("UNCERTADV_DEBUG"):
                raise
            _fail(_one_line(err))
        if isinstance(code, int) and code != 0:
            sys.exit(code)
        return code


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    message = text[0] if text else type(err).__name__
    if isinstance(err, FileNotFoundError) and err.filename:
        message = f"no such file: {err.filename}"
    return message


def _fail(message: str, code: int = EXIT_BAD_INPUT):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


app = typer.Typer(
    cls=_OneLineErrors,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Uncertainty measures and adversarial-example detection with MC dropout (Smith & Gal, UAI 2018).",
)
train_app = typer.Typer(cls=_OneLineErrors, no_args_is_help=True, help="Train the paper's models.")
app.add_typer(train_app, name="train")


def _quiet_tensorflow() -> None:
    """Import TensorFlow with its C++ start-up chatter (oneDNN, CUDA probes) hidden.

    Those lines are printed before absl logging starts, so no environment
    variable silences them; stderr is pointed at /dev/null for the import only."""
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # CPU-only machines: skip the cuInit probe
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow as tf

            tf.config.list_physical_devices()  # device probing logs here, not mid-run
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _echo(message: str) -> None:
    typer.echo(message, err=True)


@train_app.command("cnn")
def train_cnn(
    out: Annotated[Path, typer.Option(help="Where to save the model (.keras); a .json sidecar goes beside it.")],
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs (the paper used 12).")] = 3,
    seed: Annotated[int, typer.Option(help="Seed for weights, shuffling and dropout during training.")] = 0,
    batch_size: Annotated[int, typer.Option(min=1, help="Training batch size.")] = 128,
    learning_rate: Annotated[float, typer.Option(help="Adam learning rate (> 0).")] = 1e-3,
    samples: Annotated[int, typer.Option(min=1, help="MC samples T for the recorded MC test accuracy.")] = 50,
    dataset: Annotated[str, typer.Option(help="Data set to train on.")] = "mnist",
    source: Annotated[Source, typer.Option(help="auto/bundled: the copy in the package (offline); tfds: tfds.load.")] = Source.auto,
    limit_train: Annotated[Optional[int], typer.Option(min=1, help="Use only the first N training images (quick runs).")] = None,
    limit_test: Annotated[Optional[int], typer.Option(min=1, help="Evaluate on the first N test images only.")] = None,
    force: Annotated[bool, typer.Option(help="Retrain even if OUT exists with the same config.")] = False,
) -> None:
    """Train the paper's MNIST CNN and record deterministic and MC test accuracy."""
    _quiet_tensorflow()
    from uncertadv import artifacts
    from uncertadv.train import CNNConfig, save_model
    from uncertadv.train import train_cnn as fit

    config = CNNConfig(
        dataset=dataset, source=source.value, epochs=epochs, seed=seed, batch_size=batch_size,
        learning_rate=learning_rate, limit_train=limit_train, limit_test=limit_test, eval_samples=samples,
    )
    config.validate()
    if out.suffix != ".keras":
        raise ValueError(f"--out must end in .keras, got {out.name}")
    record_path = artifacts.sidecar_path(out)
    if not force and out.is_file() and record_path.is_file():
        record = artifacts.read_json(record_path)
        if record.get("config") == dataclasses.asdict(config):
            _echo(f"reusing {out} (same config; --force retrains)")
            _print_accuracy(record["metrics"])
            return
    start = time.perf_counter()
    model, metrics = fit(config, verbose=2)
    record = {
        "kind": "cnn",
        "command": artifacts.command_line(),
        "config": dataclasses.asdict(config),
        "metrics": metrics,
        "versions": artifacts.versions(),
        "wall_seconds": round(time.perf_counter() - start, 2),
    }
    save_model(model, out, record)
    _echo(f"saved {out} and {record_path}")
    _print_accuracy(metrics)


def _print_accuracy(metrics: dict) -> None:
    typer.echo(
        f"test accuracy on {metrics['n_test']} images: deterministic {metrics['test_accuracy_deterministic']:.4f}, "
        f"MC (T={metrics['mc_samples']}) {metrics['test_accuracy_mc']:.4f}"
    )


@app.command()
def score(
    model: Annotated[Path, typer.Option(help="A trained .keras classifier (from `uncertadv train`).")],
    out: Annotated[Path, typer.Option(help="CSV to write: one row per input.")],
    dataset: Annotated[str, typer.Option(help="Data set whose test split is scored.")] = "mnist",
    samples: Annotated[int, typer.Option(min=1, help="MC samples T.")] = 50,
    seed: Annotated[int, typer.Option(help="Seed of the sampled dropout networks.")] = 0,
    batch_size: Annotated[Optional[int], typer.Option(min=1, help="Inputs per compiled call (speed/memory only).")] = None,
    source: Annotated[Source, typer.Option(help="auto/bundled: the copy in the package (offline); tfds: tfds.load.")] = Source.auto,
    limit: Annotated[Optional[int], typer.Option(min=1, help="Score only the first N test images.")] = None,
    force: Annotated[bool, typer.Option(help="Recompute even if OUT exists with the same config.")] = False,
) -> None:
    """Score a test set: MC and deterministic predictions and the five uncertainty measures."""
    _quiet_tensorflow()
    from uncertadv import scoring

    config = scoring.ScoreConfig(
        model=str(model), dataset=dataset, source=source.value, samples=samples, seed=seed, limit=limit
    )
    table, reused = scoring.score_test_set(config, out, batch_size=batch_size, force=force)
    _echo(f"{'reused' if reused else 'wrote'} {out}")
    typer.echo(scoring.summary(table, config))


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
