"""`python -m ep.main --json_path configFile/unsupervised_ep/1layer`: train with equilibrium propagation."""
import sys

from ep import learner
from funcs.cli import Rule, main

RULE = Rule(name="ep", actions=("ep", "unsupervised_ep", "semi_supervised_ep", "train_class_layer"), build=learner.build,
            default_config="configFile/quickstart_ep")

if __name__ == "__main__":
    sys.exit(main(RULE))
