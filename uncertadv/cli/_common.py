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


def silence_native_logs() -> None:
    """Send what TensorFlow's C++ core writes to stderr (oneDNN, CUDA probes, CPU features)
    to /dev/null for the whole run, while Python's own stderr (errors, warnings, progress
    bars) still reaches the terminal.

    Those lines are written by C++ before and after TensorFlow's logging starts, so no
    environment variable silences them all; only the process's file descriptor 2 does.
    Called by the console entry point before TensorFlow is imported; UNCERTADV_DEBUG=1
    keeps everything."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # CPU-only machines: skip the cuInit probe
    if os.environ.get(DEBUG_ENV) or "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    python_stderr = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    sys.stderr = os.fdopen(python_stderr, "w", buffering=1, encoding=sys.stderr.encoding, errors="backslashreplace")


def quiet_tensorflow() -> None:
    """Import TensorFlow with its start-up chatter hidden, and its Python logger at ERROR.

    The console entry point has already silenced C++ output for the whole run; this also
    covers in-process callers (tests, notebooks) by muting stderr for the import only."""
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
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
    if not os.environ.get(DEBUG_ENV):
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
        help="Results folder [default: results/DATASET; $UNCERTADV_RESULTS replaces 'results'].", show_default=False
    ),
]


def comma_list(text: str, allowed: tuple[str, ...], name: str) -> tuple[str, ...]:
    """``"a,b"`` -> ``("a", "b")``, each checked against ``allowed``."""
    values = tuple(v.strip() for v in text.split(",") if v.strip())
    bad = [v for v in values if v not in allowed]
    if bad or not values:
        raise ValueError(f"unknown {name} {', '.join(bad) or '(none)'}; choose from {', '.join(allowed)}")
    return values
