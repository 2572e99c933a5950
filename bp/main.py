"""`python -m bp.main --json_path configFile/unsupervised_bp/1layer`: train with backpropagation."""
import sys

from bp.rule import RULE
from funcs.cli import main

if __name__ == "__main__":
    sys.exit(main(RULE))
