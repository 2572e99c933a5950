"""`python -m hebb.optuna_optim --json_path configFile/hyper_hebb/softhebb`: search a Hebbian rule's hyperparameters."""
import sys

from funcs.search import main
from hebb.rule import RULE

if __name__ == "__main__":
    sys.exit(main(RULE))
