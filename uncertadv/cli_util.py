"""Shared pieces of the command line: one-line errors, quiet TensorFlow start-up, messages."""

from __future__ import annotations

import os
import sys

import typer

EXIT_BAD_INPUT = 2


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


def quiet_tensorflow() -> None:
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


def echo(message: str) -> None:
    typer.echo(message, err=True)
