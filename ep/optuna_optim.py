"""`python -m ep.optuna_optim --json_path configFile/hyper_ep/unsupervised`: search EP's hyperparameters."""
import sys

from ep.rule import RULE
from funcs.search import main

if __name__ == "__main__":
    sys.exit(main(RULE))
