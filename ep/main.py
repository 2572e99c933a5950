"""`python -m ep.main --json_path configFile/unsupervised_ep/1layer`: train with equilibrium propagation."""
import sys

from ep.rule import RULE
from funcs.cli import main

if __name__ == "__main__":
    sys.exit(main(RULE))
