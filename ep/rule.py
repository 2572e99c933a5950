"""Equilibrium propagation as a registered learning rule (rules.json): its actions, keys and checks."""
from ep import learner
from ep.network import NUDGE_FORMS
from funcs import activations
from funcs.config import fail
from funcs.rules import Rule, Schedules, key

FIELDS = {
    "dt": key(0.2, "EP: discretisation step of the dynamics (above 1 a step overshoots its fixed point)", "float",
              lo=0, lo_open=True, hi=1),
    "T": key(40, "EP: free phase steps", "int", lo=1),
    "Kmax": key(10, "EP: nudged phase steps", "int", lo=1),
    "beta": key(0.2, "EP: nudging strength", "float", lo=0, lo_open=True),
    "clamped": key(True, "EP: clamp neuron states to [0, 1]", "bool"),
    "error_estimate": key("one-sided", "EP: 'one-sided' or 'symmetric' nudging", "str",
                          choices=("one-sided", "symmetric")),
    "compile": key(False, "EP: run the relaxation through torch.compile (about 10% faster on a CPU, "
                          "bench/ep_compile; compiling costs a minute or two at the start)", "bool"),
    "dropout": key(True, "EP: enable the dropout of dropProb (false: no dropout anywhere, as the original EP "
                         "code's switch)", "bool"),
    "beta_sign": key("random", "EP, one-sided estimate: 'random' draws the sign of beta for each mini-batch (the "
                               "original code, and Gammell et al.'s toggle), 'positive' always nudges with +beta",
                     "str", choices=("random", "positive")),
    "nudge_form": key("force", "EP: how the nudged phase pulls the output towards its target: 'force' adds the "
                               "cost's force beta (d - s) to each step (the paper's code), 'after_step' moves the "
                               "output by 2 dt beta (d - s) after each free step (Gammell et al.'s code; dt 0.5 and "
                               "beta 1 put it on the target)", "str", choices=NUDGE_FORMS),
    "readout_state": key("nudged", "EP with a softmax read-out (loss Cross-entropy): the state at which the read-out "
                                   "learns the exact cross-entropy gradient: 'nudged' (the nudged state, the mean "
                                   "over both with a symmetric estimate: the original code) or 'free' (the free "
                                   "state: our code before 2026-12-01, whose 100-label semi-supervised run collapsed; "
                                   "simuResults/README.md)", "str", choices=("nudged", "free")),
    "xavier_gain": key(0.5, "EP: gain of the Xavier-uniform initial weights (0.5: the original code; 1: Glorot's, "
                            "as Gammell et al.)", "float", lo=0, lo_open=True),
    "topology": key("layered", "EP: 'layered' (each layer talks to its neighbours) or 'small_world' (each adjacent "
                               "connection rewired with probability rewire_p into a layer-skipping one, seeded "
                               "by `seed`; Gammell et al. 2021)", "str", choices=("layered", "small_world")),
    "rewire_p": key(0.1, "EP, small_world: probability of rewiring each adjacent-layer connection", "float",
                    lo=0, hi=1),
    "skip_magnitude": key(0.1, "EP, small_world: layer-skipping weights start uniform in [-m, m] (Gammell et al.: "
                               "0.0829 for 784-500x3-10, 0.168 for 784-100x5-10)", "float", lo=0),
    "skip_lr": key("mean", "EP, small_world: a skip block between layers a and b learns at the mean, min or max "
                           "of the rates of the layers it spans", "str", choices=("mean", "min", "max")),
    "persistent_states": key(False, "EP: each training example's free phase starts where its previous one "
                                    "ended, not at zero (Gammell et al.'s persistent particles); evaluation still "
                                    "starts at zero", "bool"),
    "log_update_sizes": key(False, "EP: write each layer's mean update size ||dW|| / sqrt(connections) per epoch "
                                   "into results.csv (update_size_<layer>; dW is EP's estimate before the learning "
                                   "rate, as Gammell et al.'s Figure 3)", "bool"),
}


def check(cfg) -> None:
    """EP's network: one activation with a known derivative for every layer; a read-out needs a hidden layer."""
    name = cfg.activation_function
    if not isinstance(name, str):
        fail("activation_function", "EP uses one activation for every layer: give one name such as "
                                    "\"hardsigm\", not a list")
    if name not in activations.ENERGY_ACTIVATIONS:
        fail("activation_function", f"EP needs an activation with a derivative for its dynamics: "
                                    f"{', '.join(activations.ENERGY_ACTIVATIONS)}; got '{name}'")
    if cfg.loss == "Cross-entropy" and len(cfg.fcLayers) < 3:
        fail("loss", "EP with cross-entropy uses a softmax read-out of the last hidden layer: fcLayers needs "
                     "at least one hidden layer")
    if cfg.loss == "Cross-entropy" and cfg.drop_probs[-1] > 0:
        fail("dropProb", "EP's softmax read-out (loss Cross-entropy) has no dropout: set the last entry to 0")
    if cfg.nudge_form == "after_step" and cfg.loss == "Cross-entropy":
        fail("nudge_form", "'after_step' moves the output state, which the softmax read-out (loss Cross-entropy) "
                           "does not have: use 'force'")
    if cfg.readout_state == "free" and cfg.loss != "Cross-entropy":
        fail("readout_state", "'free' says where the softmax read-out (loss Cross-entropy) learns; this config has "
                              f"none (loss {cfg.loss})")
    if cfg.topology == "small_world":
        if cfg.loss == "Cross-entropy":
            fail("topology", "a small-world network has no softmax read-out: use loss MSE")
        if len(cfg.fcLayers) < 3:
            fail("topology", "a small-world network needs a hidden layer for connections to skip")
        sizes = cfg.fcLayers
        adjacent = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
        skipping = sum(sizes[a] * sizes[b] for a in range(len(sizes)) for b in range(a + 2, len(sizes)))
        if cfg.rewire_p * adjacent > 0.5 * skipping:  # the expected rewirings must fit the free skip pairs
            fail("rewire_p", f"{cfg.rewire_p} would move about {round(cfg.rewire_p * adjacent)} of {adjacent} "
                             f"connections, but fcLayers {list(sizes)} has only {skipping} layer-skipping pairs")
    if cfg.log_update_sizes and cfg.target_kind == "semi_supervised":
        fail("log_update_sizes", "per-layer update sizes are written for unsupervised and supervised runs only")


def drop_probs(cfg) -> tuple[float, ...]:
    """dropProb, or no dropout at all with `dropout: false`."""
    return cfg.dropProb if cfg.dropout else (0.0,) * len(cfg.dropProb)


RULE = Rule(
    name="ep", title="equilibrium propagation",
    actions={"ep": "supervised", "unsupervised_ep": "unsupervised", "semi_supervised_ep": "semi_supervised"},
    build=learner.build, default_config="configFile/quickstart_ep", fields=FIELDS, check=check,
    drop_probs=drop_probs,
    smooth_labels=0.3,  # the original code's label smoothing after EP (0.2 after BP)
    # The original EP code's schedules: phase 1 decays by 0.96 per epoch, phase 2's unsupervised half goes
    # 0.001 -> 0.1 and its supervised half 0.2 -> 0.03 over all of phase 2.
    semi_schedules=Schedules(0.96, (0.001, 0.1), (0.2, 0.03), 0),
    classifier_schedule="linear",  # the paper's linear classifier after EP: 1 down to 0.5
    # what the free phase computes depends on these too (the wiring is drawn from `seed`)
    network_keys=("loss", "dt", "T", "clamped", "topology", "rewire_p"),
    main="ep.main", search="ep.optuna_optim")
