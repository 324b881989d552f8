"""The ``uncertadv`` command line: thin Typer commands, one module per group.

Bad input ends in one line on stderr and exit code 2, never a traceback
(set UNCERTADV_DEBUG=1 to see one). Results are written atomically, and a
re-run whose recorded config matches reuses the finished artefact.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from uncertadv.cli._common import OneLineErrors, quiet_tensorflow
from uncertadv.cli.attack import attack
from uncertadv.cli.claims import claims, render
from uncertadv.cli.detect import detect_app
from uncertadv.cli.migrate import migrate
from uncertadv.cli.plot import plot_app
from uncertadv.cli.report import report
from uncertadv.cli.score import score
from uncertadv.cli.train import train_app

app = typer.Typer(
    cls=OneLineErrors,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Uncertainty measures and adversarial-example detection with MC dropout (Smith & Gal, UAI 2018).",
)


def _version(value: bool) -> None:
    if value:
        from uncertadv import __version__

        typer.echo(f"uncertadv {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Uncertainty measures and adversarial-example detection with MC dropout (Smith & Gal, UAI 2018)."""


app.add_typer(train_app, name="train")
app.command("score")(score)
app.command("attack")(attack)
app.command("report")(report)
app.add_typer(plot_app, name="plot")
app.add_typer(detect_app, name="detect")
app.command("migrate")(migrate)
app.command("claims")(claims)
app.command("render")(render)


def main() -> None:
    """Console-script entry point."""
    if not any(arg in ("--help", "-h", "--version") for arg in sys.argv[1:]) and len(sys.argv) > 1:
        quiet_tensorflow()  # before any command imports it; --help stays fast
    app()
