"""Equilibrium propagation as a registered learning rule (rules.json): its actions, keys and checks."""
from ep import learner
from funcs import activations
from funcs.config import fail
from funcs.rules import Rule, Schedules, key

FIELDS = {
    "dt": key(0.2, "EP: discretisation step of the dynamics", "float", lo=0, lo_open=True),
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
    network_keys=("loss", "dt", "T", "clamped"),  # what the free phase computes depends on these too
    main="ep.main", search="ep.optuna_optim")
