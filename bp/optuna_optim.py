"""`python -m bp.optuna_optim --json_path configFile/hyper_bp/unsupervised`: search BP's hyperparameters."""
import sys

from bp.rule import RULE
from funcs.search import main

if __name__ == "__main__":
    sys.exit(main(RULE))
