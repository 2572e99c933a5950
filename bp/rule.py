"""Backpropagation as a registered learning rule (rules.json): what it adds to the shared core."""
from bp import learner
from funcs import networks
from funcs.config import fail
from funcs.rules import Rule, Schedules


def check(cfg) -> None:
    """BP builds its MLP layer by layer: one activation name per entry of fcLayers."""
    if isinstance(cfg.activation_function, str):
        fail("activation_function", "BP needs a list with one name per entry of fcLayers")


RULE = Rule(
    name="bp", title="backpropagation",
    actions={"bp": "supervised", "unsupervised_bp": "unsupervised", "semi_supervised_bp": "semi_supervised"},
    build=learner.build, default_config="configFile/quickstart", check=check, check_input=networks.check_input,
    smooth_labels=0.2,  # the original code's label smoothing after BP (0.3 after EP)
    # The original BP code's schedules: phase 1 decays by 0.98 per epoch (the paper says 0.97), phase 2's
    # unsupervised half goes 0.001 -> 0.18, its supervised half 0.72 -> 0.05, ending 50 epochs early.
    semi_schedules=Schedules(0.98, (0.001, 0.18), (0.72, 0.05), 50),
    classifier_schedule="exponential",  # the paper's linear classifier after BP: x0.9 per epoch
    cnn=True, main="bp.main", search="bp.optuna_optim")
