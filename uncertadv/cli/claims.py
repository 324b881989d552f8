"""``uncertadv claims``: the paper's claims judged from the committed results (CLAIMS.md, claims.csv);
``uncertadv render``: every generated markdown under results/ again from its CSV and JSON files."""

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

    root = _root(results)
    for path in ledger.write(root):
        echo(f"wrote {path}")
    _render(root)


def render(
    results: Annotated[
        Optional[Path], typer.Option(help="The results root (default: results).", show_default=False)
    ] = None,
    check: Annotated[bool, typer.Option("--check", help="Write nothing; exit 1 if any file is stale.")] = False,
) -> None:
    """Re-render every generated markdown under RESULTS from its CSV and JSON files alone: CLAIMS.md,
    PROVENANCE.md, benchmarks.md, each table1.md, adaptive.md and SUMMARY.md, and the READMEs'
    generated blocks (no model, attack or bootstrap; seconds)."""
    from uncertadv.experiments.claims import documents

    root = _root(results)
    if check:
        stale = documents.stale(root)
        for path in stale:
            echo(f"stale: {path}")
        if stale:
            raise typer.Exit(1)
        echo(f"every generated file under {root} is current")
        return
    _render(root)


def _root(results: Path | None) -> Path:
    from uncertadv.experiments.layout import results_root

    root = results or results_root()
    if not root.is_dir():
        raise ValueError(f"no results folder at {root}")
    return root


def _render(root: Path) -> None:
    from uncertadv.experiments.claims import documents

    written = documents.render(root)
    for path in written:
        echo(f"wrote {path}")
    if not written:
        echo(f"every generated file under {root} was current")
