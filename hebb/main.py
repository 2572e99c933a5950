"""`python -m hebb.main --json_path configFile/unsupervised_hebb/softhebb`: train a Hebbian winner-take-all layer."""
import sys

from funcs.cli import main
from hebb.rule import RULE

if __name__ == "__main__":
    sys.exit(main(RULE))
