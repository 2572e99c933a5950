"""The target the output layer learns towards: self-defined (kWTA + homeostasis) or from labels.

Paper section 2 ("self-defined target"): for an unlabeled input the target d of
the output y has ones on the k largest entries of (y - H) and zeros elsewhere,
H being the homeostasis vector that raises the threshold of frequent winners.
Every learning rule receives d from here; none computes a target itself.
A regression dataset (funcs.data, task 'regression') has no classes: its target
is the value to fit itself, and only label targets make sense (`check_task`).
"""
from __future__ import annotations

import torch

from funcs import data as data_mod
from funcs import rules
from funcs.config import fail

# Label smoothing factors of the original code: 0.3 for the self-defined target (paper section 3.1, used
# with an energy-based rule); label targets take their rule's (Rule.smooth_labels).
SMOOTH_UNSUPERVISED = 0.3
SMOOTH_SUPERVISED = 0.2  # a Target built without a config


def kwta_target(y: torch.Tensor, k: int, h: torch.Tensor | None = None) -> torch.Tensor:
    """k-winners-take-all target: 1 on the k largest entries of (y - h) per row, 0 elsewhere.

    y: (batch, n_out) outputs; h: (n_out,) homeostasis thresholds, or None.
    """
    score = y if h is None else y - h
    d = torch.zeros_like(y)
    return d.scatter_(1, score.topk(k, dim=1).indices, 1.0)


def class_target(labels: torch.Tensor, n_out: int, n_class: int) -> torch.Tensor:
    """Supervised target: class c owns the n_out / n_class consecutive neurons starting at c * n_out / n_class.

    With n_out == n_class this is the one-hot code; with more outputs each class
    spreads over its block of neurons, as the paper's supervised baselines.
    """
    per_class = n_out // n_class
    owner = torch.arange(n_out, device=labels.device) // per_class  # (n_out,) class of each neuron
    return (owner.unsqueeze(0) == labels.unsqueeze(1)).to(torch.float32)


def check_task(cfg, spec) -> None:
    """What a regression dataset (spec: its funcs.data.DatasetSpec) refuses: anything that needs classes.

    Its target is y itself, so only a rule's supervised action trains on it: no self-defined (kWTA) target,
    no semi-supervised phases, no read-out of classes (direct association, the linear classifier). One
    UserError line naming the key; nothing for a classification dataset.
    """
    if spec.task != data_mod.REGRESSION:
        return
    what = f"{cfg.dataset} is a regression (its target is {spec.n_class} value(s) to fit, not classes)"
    if cfg.action == rules.READ_OUT:
        fail("action", f"{rules.READ_OUT} reads classes out of a network (direct association, linear "
                        f"classifier); {what}")
    if cfg.target_kind != "supervised":
        supervised = [a for a, kind in rules.get(cfg.rule).actions.items() if kind == "supervised"]
        fail("action", f"'{cfg.action}' trains towards a self-defined target of k winners (and reads classes "
                        f"out with the association and the linear classifier); {what}: use "
                        f"{' or '.join(repr(a) for a in supervised) or 'a supervised action'}")
    if cfg.n_class != spec.n_class:
        fail("n_class", f"{what}: give n_class {spec.n_class}, its number of target values")
    if cfg.n_out != spec.n_class:
        fail("fcLayers", f"{what}: the output layer needs {spec.n_class} neuron(s), not {cfg.n_out}")
    if cfg.loss != "MSE":
        fail("loss", f"{what}: fit it with MSE (the cost 1/2 ||y - s||^2), not {cfg.loss}")
    if cfg.smooth:
        fail("smooth", f"label smoothing spreads a class target; {what}")


def class_of_neuron(output: torch.Tensor, n_class: int) -> torch.Tensor:
    """Prediction of a supervised network: the class owning the most active neuron."""
    return output.argmax(dim=1) // (output.shape[1] // n_class)


def smooth(d: torch.Tensor, a: float, k: float) -> torch.Tensor:
    """Label smoothing that keeps each row's sum k: d <- d * (1 - a) + a * k / n_out."""
    return d * (1 - a) + a * k / d.shape[1]


class Homeostasis:
    """The homeostasis vector H: H <- H + gamma * (A - T), A the neurons' recent win rate.

    T is the desired win rate k / n_out, times (1 - p) under output dropout p
    because a dropped neuron cannot win (as the original code). Batch mode: A is
    the mean of the target over the mini-batch. Sequential mode (batch size 1):
    A is a moving average A <- eta * d + (1 - eta) * A. Both H and A start at zero
    every epoch (`reset`), as in the original code.
    """

    def __init__(self, n_out: int, gamma: float, rate: float, eta: float | None = None, device=None):
        self.gamma, self.rate, self.eta = gamma, rate, eta
        self.h = torch.zeros(n_out, device=device)
        self.activity = torch.zeros(n_out, device=device)

    @property
    def sequential(self) -> bool:
        return self.eta is not None

    def reset(self) -> None:
        self.h.zero_()
        self.activity.zero_()

    def update(self, d: torch.Tensor) -> None:
        """Move H towards equal win rates after a target d (batch, n_out) was used."""
        if self.sequential:
            self.activity.mul_(1 - self.eta).add_(d.mean(dim=0), alpha=self.eta)
        else:
            self.activity = d.mean(dim=0)
        self.h.add_(self.activity - self.rate, alpha=self.gamma)

    def state_dict(self) -> dict:
        return {"h": self.h.clone(), "activity": self.activity.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.h.copy_(state["h"])
        self.activity = state["activity"].to(self.h.device).clone()


class Target:
    """Builds the target d of each mini-batch: from labels ('supervised') or self-defined ('unsupervised').

    A regression's labels are the target values themselves (batch, n_out): d = y (`regression`).

    Semi-supervised training (issue #4) alternates the two on labeled and unlabeled batches.

    `__call__(y, labels, mask)` returns d (batch, n_out), what the output learns
    towards. The learner owns dropout (a rule with two phases holds its
    masks through both): y arrives with the dropped output neurons already at zero and
    `mask` says which they are. As in the original code they neither win the
    kWTA choice nor learn: their entries of d are zeroed. (A dropped neuron with
    a negative threshold can still take a place in the choice, which the mask
    then erases: that row has fewer than k winners, and the desired rate
    (1 - p) k / n_out allows for it.)
    """

    def __init__(self, kind: str, n_out: int, n_class: int, k: int, gamma: float, eta: float,
                 sequential: bool, smooth_target: bool, p_out: float, smooth_labels: float = SMOOTH_SUPERVISED,
                 device=None, losers_learn: bool = True, regression: bool = False):
        assert kind in ("supervised", "unsupervised"), kind
        assert kind == "supervised" or not regression, "a regression has no self-defined target (check_task)"
        self.kind, self.n_out, self.n_class, self.k, self.regression = kind, n_out, n_class, k, regression
        self.smooth_target, self.smooth_labels, self.losers_learn = smooth_target, smooth_labels, losers_learn
        self.homeostasis = Homeostasis(n_out, gamma, rate=(1 - p_out) * k / n_out,
                                       eta=eta if sequential else None, device=device)

    @classmethod
    def from_config(cls, cfg, kind: str | None = None, device=None) -> "Target":
        """The config's target; `kind` picks one half of a semi-supervised config."""
        return cls(kind or cfg.target_kind, cfg.n_out, cfg.n_class, cfg.nudge, cfg.gamma, cfg.eta,
                   sequential=cfg.batchSize == 1, smooth_target=cfg.smooth, p_out=cfg.drop_probs[-1],
                   smooth_labels=rules.get(cfg.rule).smooth_labels, device=device, losers_learn=cfg.losers_learn,
                   regression=data_mod.spec(cfg.dataset).task == data_mod.REGRESSION)

    def new_epoch(self) -> None:
        self.homeostasis.reset()

    def __call__(self, y: torch.Tensor, labels: torch.Tensor | None = None,
                 mask: torch.Tensor | None = None) -> torch.Tensor:
        """The target for outputs y (batch, n_out) whose dropped neurons (mask 0) are already zero."""
        if self.kind == "unsupervised":
            winners = kwta_target(y.detach(), self.k, self.homeostasis.h)
            d = smooth(winners, SMOOTH_UNSUPERVISED, self.k) if self.smooth_target else winners
        elif self.regression:
            d = labels  # (batch, n_out) the values to fit
        else:
            d = class_target(labels, self.n_out, self.n_class)
            if self.smooth_target:
                d = smooth(d, self.smooth_labels, self.n_out // self.n_class)
        if mask is not None:
            d = d * mask
        if self.kind == "unsupervised":
            self.homeostasis.update(d)
            if not self.losers_learn:  # a loser's target is its own output: no error, so no update
                d = torch.where(winners > 0, d, y.detach())
        return d

    def state_dict(self) -> dict:
        return {"homeostasis": self.homeostasis.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.homeostasis.load_state_dict(state["homeostasis"])
