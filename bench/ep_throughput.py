"""Speed of the EP presets, and of each of EP's speed-ups against the code without it.

    python -m bench.ep_throughput [--presets unsupervised_ep/1layer unsupervised_ep/2layer] [--samples 1600]
                                  [--variants default per_layer_step ...]

Variants: "default" (every speed-up on), "no_input_cache" (the input's drive of
the first layer recomputed at every step instead of once per mini-batch),
"no_box_shortcut" (rho and rho' evaluated at every step instead of using
rho(s) = s, rho'(s) = 1 for clamped hard-sigmoid states); for a preset of two
or more hidden layers also "per_layer_step" and "dense_step" (each path forced,
where the default picks one per mini-batch by its cost estimate,
ep.network.EPNetwork.uses_dense_step); for a small-world preset also
"skip_product_per_block" and "skip_sparse_product" (the per-layer step's skip
drives each way forced, ep.small_world.SmallWorldNetwork.sparse). The 2-layer
preset is slow on a CPU: time a few hundred samples and read the extrapolation.
"""
import json

from bench import throughput
from funcs.figures_registry import REPO

VARIANTS = {
    "default": None,
    "no_input_cache": lambda learner: setattr(learner.net, "cache_input_drive", False),
    "no_box_shortcut": lambda learner: setattr(learner.net, "box", False),
}
DEEP_VARIANTS = {"per_layer_step": lambda learner: setattr(learner.net, "dense", False),
                 "dense_step": lambda learner: setattr(learner.net, "dense", True)}

SKIP_VARIANTS = {"skip_product_per_block": lambda learner: setattr(learner.net, "sparse", False),
                 "skip_sparse_product": lambda learner: setattr(learner.net, "sparse", True)}


def variants(preset: str) -> dict:
    cfg = json.loads((REPO / "configFile" / preset / "config.json").read_text())
    return {**VARIANTS, **(DEEP_VARIANTS if len(cfg["fcLayers"]) >= 4 else {}),
            **(SKIP_VARIANTS if cfg.get("topology") == "small_world" else {})}


def main(argv=None) -> None:
    args = throughput.parse(__doc__.splitlines()[0], ["unsupervised_ep/1layer", "unsupervised_ep/2layer"], argv,
                            variants=True)
    throughput.report([throughput.measure(p, args.samples, args.eval_samples, args.repeats, args.data_dir,
                                          variant, tweak)
                       for p in args.presets for variant, tweak in variants(p).items()
                       if not args.variants or variant in args.variants])


if __name__ == "__main__":
    main()
