"""``python -m landscape``: the command line (also what ``torchrun ... -m landscape`` runs)."""

from landscape.cli import main

main(prog_name="landscape")
