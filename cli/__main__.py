"""``python -m cli`` runs the ``landscape`` command (also under torchrun)."""

from cli.main import main

main()
