"""``python -m uncertadv``."""

from uncertadv.cli import main

main()
