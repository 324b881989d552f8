"""Shared pieces of the command line: one-line errors, quiet TensorFlow, shared options."""

from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

EXIT_BAD_INPUT = 2
DEBUG_ENV = "UNCERTADV_DEBUG"


class OneLineErrors(typer.core.TyperGroup):
    """Turns usage errors and expected failures into one line on stderr."""

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except typer._click.exceptions.ClickException as err:
            _fail(err.format_message())
        except typer.Abort:
            _fail("aborted", code=1)
        except (ValueError, OSError, KeyError) as err:
            if os.environ.get(DEBUG_ENV):
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


def quiet_tensorflow() -> None:
    """Import TensorFlow with its C++ start-up chatter hidden, and its Python logger at ERROR.

    The oneDNN, CUDA-probe and CPU-feature lines are written by C++ while TensorFlow loads
    and probes its devices, before its logging settings apply, so no environment variable
    silences them: stderr's file descriptor is pointed at /dev/null for the import and the
    device probe only. Everything later, C++ fatal errors included, reaches the terminal.
    UNCERTADV_DEBUG=1 keeps everything."""
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # C++ INFO and WARNING after start-up
    if os.environ.get(DEBUG_ENV):
        return
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
    tf.get_logger().setLevel("ERROR")


def echo(message: str) -> None:
    typer.echo(message, err=True)


class PredictorName(str, Enum):
    """The predictor kinds (see ``uncertadv.predictors``)."""

    deterministic = "deterministic"
    mc = "mc"
    ensemble = "ensemble"


Results = Annotated[
    Optional[Path],
    typer.Option(
        help="Results folder (default: results/DATASET; $UNCERTADV_RESULTS replaces 'results').", show_default=False
    ),
]


ModelOption = Annotated[
    Optional[Path],
    typer.Option("--model", help="Your own model: a .keras file or an ensemble manifest (.json); needs --data."),
]
DataOption = Annotated[
    Optional[str],
    typer.Option(
        "--data",
        help="Your own data: an .npz with x (and y), a folder of class subfolders of images, or tfds:NAME[:SPLIT].",
    ),
]
PixelMaxOption = Annotated[float, typer.Option(help="The model's input scale: 1.0, or 255 for models that take 0-255.")]
ImageSizeOption = Annotated[Optional[int], typer.Option(min=1, help="Resize folder and tfds images to this size.")]
FromLogitsOption = Annotated[
    bool, typer.Option(help="With --model: it outputs logits (a softmax output is found by itself).")
]


def own_data(
    model: Optional[Path], data: Optional[str], pixel_max: float, image_size: Optional[int], from_logits: bool = False
) -> dict | None:
    """The recorded options of --data, or None for the paper's data sets; --model and --data go together."""
    if (model is None) != (data is None):
        raise ValueError("--model and --data go together: your own model on your own data")
    if model is None:
        return None
    return {"spec": str(data), "pixel_max": float(pixel_max), "image_size": image_size, "from_logits": from_logits}


def comma_list(text: str, allowed: tuple[str, ...], name: str) -> tuple[str, ...]:
    """``"a,b"`` -> ``("a", "b")``, each checked against ``allowed``."""
    values = tuple(v.strip() for v in text.split(",") if v.strip())
    bad = [v for v in values if v not in allowed]
    if bad or not values:
        raise ValueError(f"unknown {name} {', '.join(bad) or '(none)'}; choose from {', '.join(allowed)}")
    return values
