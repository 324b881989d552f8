"""``uncertadv claims``: the paper's claims judged from the committed results (CLAIMS.md, claims.csv)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from uncertadv.cli._common import echo


def claims(
    results: Annotated[
        Optional[Path],
        typer.Option(
            help="The results root holding mnist/, catsdogs/, catsdogs-small/ (default: results).", show_default=False
        ),
    ] = None,
) -> None:
    """Judge each of the paper's claims from the committed files by rules fixed in code, and write
    RESULTS/CLAIMS.md, claims.csv and claims.json (reading and bootstrapping only)."""
    from uncertadv.experiments.claims import ledger
    from uncertadv.experiments.layout import results_root

    root = results or results_root()
    if not root.is_dir():
        raise ValueError(f"no results folder at {root}")
    for path in ledger.write(root):
        echo(f"wrote {path}")
