"""``uncertadv migrate``: carry a results folder's records over to the current protocol."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from uncertadv.cli._common import echo, quiet_tensorflow


def migrate(
    folders: Annotated[
        list[Path], typer.Argument(help="Results folders (e.g. results/mnist).", exists=True, file_okay=False)
    ],
) -> None:
    """Bring protocol-2 attack sets and score tables (keyed by the data's path) to protocol 3 (keyed by
    its contents) where the data they name can be checked to be the data they were made from; the
    others are left to be remade. Nothing is recomputed and no number changes."""
    quiet_tensorflow()
    from uncertadv.experiments import migrate as migration

    for folder in folders:
        lines = migration.migrate(folder)
        for line in lines:
            typer.echo(f"{folder}: {line}")
        if not lines:
            echo(f"{folder}: nothing to migrate")
