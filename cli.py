"""Run the uncertadv command line from a checkout: ``python cli.py --help``.

The same Typer app as the installed ``uncertadv`` command (uncertadv/cli/)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from uncertadv.cli import main  # noqa: E402

if __name__ == "__main__":
    main()
