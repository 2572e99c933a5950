"""`python -m bp.main --json_path configFile/unsupervised_bp/1layer`: train with backpropagation."""
import sys

from bp import learner
from funcs.cli import Rule, main

RULE = Rule(name="bp", actions=("bp", "unsupervised_bp", "semi_supervised_bp", "train_class_layer"), build=learner.build,
            default_config="configFile/quickstart", check=learner.check)

if __name__ == "__main__":
    sys.exit(main(RULE))
