"""Hebbian winner-take-all learning (SoftHebb, hard WTA, Krotov-Hopfield) as a registered rule (rules.json).

One learner (hebb/learner.py) with the competition code as a key; the presets
configFile/unsupervised_hebb/{softhebb,hard_wta,krotov} set each paper's
values. The shared keys keep their meaning: fcLayers (one layer, n_in and
n_out), lr (the rate amplitude), batchSize, epochs, lr_schedule and
lr_end_factor (the rate's schedule), the class_* keys (association and linear
classifier), seed. The learner has no dropout, and reads neither
activation_function, optimizer nor loss. With its own competition the shared
target (nudge, gamma) is built but not used: the presets set nudge 1 and
gamma 0; competition 'target' uses it (k = nudge winners of u - H).
"""
from funcs.config import fail
from funcs.rules import Rule, key
from hebb import learner

COMPETITIONS = ("soft", "hard", "krotov", "target")

FIELDS = {
    "competition": key("soft", "Hebbian: the competition code y of the update dW = y^T x - diag(sum y u) W: 'soft' "
                               "softmax(t_inv u) (SoftHebb), 'hard' one-hot of the largest u (hard WTA), 'krotov' +1 "
                               "for the top unit and -krotov_delta for the krotov_k-th (Krotov & Hopfield), 'target' "
                               "the shared self-defined target (nudge winners of u - H, homeostasis gamma)", "str",
                       choices=COMPETITIONS),
    "t_inv": key(12.0, "Hebbian, competition soft: inverse temperature of y = softmax(t_inv u) (SoftHebb: 12)",
                 "float", lo=0, lo_open=True),
    "krotov_k": key(7, "Hebbian, competition krotov: rank of the unit pushed away (Krotov & Hopfield's MNIST "
                       "network: 7)", "int", lo=2),
    "krotov_delta": key(0.4, "Hebbian, competition krotov: strength of the anti-Hebbian push on the krotov_k-th "
                             "unit (Krotov & Hopfield: 0.4)", "float", lo=0),
    "lebesgue_p": key(2.0, "Hebbian: Lebesgue power p; u = x (sign(W) abs(W)^(p-1))^T and the rows converge "
                           "to ‖w‖_p = 1 (SoftHebb: 2; Krotov & Hopfield's MNIST network: 3)", "float", lo=1),
    "adaptive_lr": key(True, "Hebbian: true gives each unit the rate lr abs(‖w‖_p - 1)^lr_norm_power (SoftHebb), "
                             "fast far from the unit sphere; false one rate lr for all (Krotov & Hopfield); both "
                             "times the schedule's factor", "bool"),
    "lr_norm_power": key(0.2, "Hebbian, adaptive_lr: power of abs(‖w‖_p - 1) in the rate (SoftHebb: 0.2)", "float",
                         lo=0, lo_open=True),
    "init": key("uniform", "Hebbian: initial weights; 'uniform' U(0, a) with expected row norm init_norm "
                           "(SoftHebb), 'normal' N(0, init_std^2) (Krotov & Hopfield)", "str",
                choices=("uniform", "normal")),
    "init_norm": key(35.0, "Hebbian, init uniform: expected p-norm of each row at the start (SoftHebb's MNIST "
                           "MLP: 35)", "float", lo=0, lo_open=True),
    "init_std": key(1.0, "Hebbian, init normal: standard deviation of each initial weight (Krotov & Hopfield: 1)",
                    "float", lo=0, lo_open=True),
    "normalize_input": key("none", "Hebbian: 'none' feeds the images in [0, 1] as every rule; 'readout' scales each "
                                   "image to unit length for the read-out only (association and linear classifier), "
                                   "as Krotov's classifier needs (its author, Biological_Learning issue 4: 92.7% "
                                   "without, about 98.5% with); 'always' for training too", "str",
                           choices=("none", "readout", "always")),
    "readout": key("softmax", "Hebbian: the features association and the linear classifier see: 'softmax' "
                              "softmax(readout_t_inv u) (SoftHebb), 'power' ReLU(u)^readout_power (Krotov & "
                              "Hopfield's classifier), 'linear' u", "str", choices=("softmax", "power", "linear")),
    "readout_product": key("lebesgue", "Hebbian: the pre-activation the read-out transforms: 'lebesgue' the "
                                       "training's u = x (sign(W) abs(W)^(p-1))^T, 'dot' the plain x W^T (Krotov & "
                                       "Hopfield's classifier, h = W v); the same for p = 2", "str",
                           choices=("lebesgue", "dot")),
    "readout_t_inv": key(5.0, "Hebbian, readout softmax: inverse temperature of the read-out (SoftHebb: 5)",
                         "float", lo=0, lo_open=True),
    "readout_power": key(4.5, "Hebbian, readout power: the power n of ReLU(u)^n (Krotov & Hopfield: 4.5)", "float",
                         lo=0, lo_open=True),
}


def check(cfg) -> None:
    """One Hebbian layer without dropout; the shared target matters only to competition 'target'."""
    if len(cfg.fcLayers) != 2:
        fail("fcLayers", f"the Hebbian rule trains one layer: give [n_in, n_out], got {list(cfg.fcLayers)}")
    if any(cfg.dropProb):
        fail("dropProb", f"the Hebbian learner has no dropout: give [0, 0], got {list(cfg.dropProb)}")
    if cfg.competition == "krotov" and cfg.krotov_k > cfg.n_out:
        fail("krotov_k", f"rank {cfg.krotov_k} but the layer has {cfg.n_out} units")
    if cfg.competition != "target" and cfg.gamma != 0:
        fail("gamma", f"competition '{cfg.competition}' does not use the shared target, so homeostasis does "
                      f"nothing: set gamma 0, or competition 'target'")
    if not cfg.losers_learn:
        fail("losers_learn", "the Hebbian update never moves a unit with y = 0; losers_learn false is the shared "
                             "target's ablation for BP and EP")


RULE = Rule(
    name="hebb", title="Hebbian winner-take-all learning (SoftHebb, hard WTA, Krotov-Hopfield)",
    actions={"unsupervised_hebb": "unsupervised"},
    build=learner.build, default_config="configFile/unsupervised_hebb/softhebb", fields=FIELDS, check=check,
    classifier_schedule="constant",  # SoftHebb's: its CustomStepLR (utils.py) never halves below 20 epochs
    network_keys=("lebesgue_p",),  # u depends on it; the read-out keys may change on a trained network
    main="hebb.main", search="hebb.optuna_optim", search_config="configFile/hyper_hebb/softhebb")
