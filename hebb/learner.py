"""Hebbian winner-take-all learning of one layer: SoftHebb, hard WTA and Krotov-Hopfield as one learner.

The three rules share their update and differ in the competition code y of the
layer's units (Moraitis et al. 2022, "SoftHebb: Bayesian inference in unsupervised
Hebbian soft winner-take-all networks", and its code's hebblinear.py; Krotov &
Hopfield 2019, "Unsupervised learning by competing hidden units", and its
notebook in DimaKrotov/Biological_Learning):

    u  = x g(W)^T,  g(W) = sign(W) |W|^(p-1)          # (batch, n_out) pre-activation, Lebesgue power p
    y  = soft: softmax(t_inv u); hard: one-hot(argmax u); krotov: +1 on the top unit, -delta on the k-th
    dW = y^T x - diag(sum_b y * u) W                   # Oja-like, summed over the batch
    W <- W + eta_k dW / max|dW|                         # eta_k: SoftHebb's adaptive rate, or one scalar

The decay term keeps each row on the unit sphere of the p-norm: with the
adaptive rate eta_k = lr |‖w_k‖_p - 1|^lr_norm_power, a unit whose norm is far
from 1 learns fast and one on the sphere almost stops (SoftHebb's `update_lr`).
No unit is ever anti-Hebbian except Krotov's k-th ranked one.

The shared epoch loop builds a target d (kWTA + homeostasis, funcs.target)
from `output(x)`; this learner ignores it and uses its own competition, except
with competition 'target', where y is that d (k winners of u - H): the
self-defined target's competition with a Hebbian update.
"""
from __future__ import annotations

import math

import torch

# A unit counts as off the sphere in `epoch_metrics` when its norm is this far from 1 (SoftHebb's convergence() counts
# units within 5e-3; with a constant rate, Krotov's units only get within about the rate of it).
OFF_SPHERE = 0.1
# SoftHebb's hebblinear.update_lr adds this inside |‖w‖ - 1| so that a unit exactly on the sphere keeps a small
# rate ((1e-10) ** 0.2 = 0.01 of lr), and its delta_weight divides by max|dW| + 1e-30, as Krotov's `prec`.
NORM_EPS = 1e-10
MAX_EPS = 1e-30


def soft_competition(u: torch.Tensor, t_inv: float) -> torch.Tensor:
    """SoftHebb's soft winner-take-all: y = softmax(t_inv u) over the units of each row.

    u: (batch, n_out) pre-activations; t_inv: inverse temperature (SoftHebb: 12; large t_inv tends to hard WTA).
    """
    return torch.softmax(t_inv * u, dim=1)


def hard_competition(u: torch.Tensor) -> torch.Tensor:
    """Hard winner-take-all: 1 for the unit with the largest pre-activation of each row, 0 elsewhere."""
    return torch.zeros_like(u).scatter_(1, u.argmax(dim=1, keepdim=True), 1.0)


def krotov_competition(u: torch.Tensor, k: int, delta: float) -> torch.Tensor:
    """Krotov-Hopfield's g(Q): +1 for the top unit of each row, -delta for the k-th ranked one.

    k: rank of the unit pushed away (2 or more; 7 for their MNIST network); delta: anti-Hebbian strength (0.4).
    """
    ranked = u.topk(k, dim=1).indices  # (batch, k), largest first
    y = torch.zeros_like(u)
    y.scatter_(1, ranked[:, :1], 1.0)
    return y.scatter_(1, ranked[:, k - 1:k], -delta)


def lebesgue_weights(w: torch.Tensor, p: float) -> torch.Tensor:
    """g(W) = sign(W) |W|^(p-1), the weights as the p-inner product <W, x> sees them (W itself for p = 2)."""
    return w if p == 2 else torch.sign(w) * w.abs().pow(p - 1)


def hebbian_update(x: torch.Tensor, u: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The shared update dW = y^T x - diag(sum_b y * u) W, divided by its largest entry (both papers).

    x: (batch, n_in) inputs; u: (batch, n_out) pre-activations; y: (batch, n_out) competition code;
    w: (n_out, n_in) weights. Returns dW / max|dW|, whose largest entry is 1 (the rate sets the step).
    """
    dw = y.T @ x  # (n_out, n_in): Hebbian term
    dw.addcmul_((y * u).sum(dim=0, keepdim=True).T, w, value=-1.0)  # Oja-like decay towards the sphere
    return dw.div_(torch.linalg.vector_norm(dw, math.inf) + MAX_EPS)


def initial_weights(n_out: int, n_in: int, init: str, norm: float, std: float, p: float) -> torch.Tensor:
    """Initial W (n_out, n_in), from torch's global generator (seeded by the run).

    'uniform': SoftHebb's positive init, U(0, a) with a = ((p + 1) norm^p / n_in)^(1/p), so that each row's
    expected p-norm is `norm` (their train.check_dimension; radius 35 for the MNIST MLP).
    'normal': N(0, std^2) per entry (Krotov-Hopfield: mu 0, sigma 1).
    """
    if init == "uniform":
        return ((p + 1) * norm ** p / n_in) ** (1 / p) * torch.rand(n_out, n_in)
    return std * torch.randn(n_out, n_in)


class HebbLearner:
    """One Hebbian layer n_in -> n_out trained by its competition code (see the module docstring).

    `output(x)` returns the pre-activation u (no dropout mask); `learn(d)` applies the Hebbian update with the
    configured competition and ignores d unless competition is 'target'; `infer(x)` is the read-out that
    association and the linear classifier see: softmax(readout_t_inv u) (SoftHebb), ReLU(u)^readout_power
    (Krotov-Hopfield) or u, of the image scaled to unit length if `normalize_input` says so, with u the
    training's p-inner product or the plain x W^T (`readout_product`).
    The loss is 1 - the best Hölder cosine between the input and a unit's weights (`best_match_loss`).
    """

    def __init__(self, weight: torch.Tensor, lr: float, *, competition: str, t_inv: float, krotov_k: int,
                 krotov_delta: float, p: float, adaptive_lr: bool, lr_norm_power: float, normalize_input: str,
                 readout: str, readout_t_inv: float, readout_power: float, readout_product: str):
        self.w = weight  # (n_out, n_in), shared with siblings
        self.base_lr, self.lr = lr, lr
        self.competition, self.t_inv, self.k, self.delta = competition, t_inv, krotov_k, krotov_delta
        self.p, self.adaptive_lr, self.lr_norm_power = p, adaptive_lr, lr_norm_power
        self.normalize_input, self.readout = normalize_input, readout
        self.readout_t_inv, self.readout_power, self.readout_product = readout_t_inv, readout_power, readout_product
        self._x = self._u = None

    def _options(self) -> dict:
        return dict(competition=self.competition, t_inv=self.t_inv, krotov_k=self.k, krotov_delta=self.delta,
                    p=self.p, adaptive_lr=self.adaptive_lr, lr_norm_power=self.lr_norm_power,
                    normalize_input=self.normalize_input, readout=self.readout, readout_t_inv=self.readout_t_inv,
                    readout_power=self.readout_power, readout_product=self.readout_product)

    def sibling(self, lrs) -> "HebbLearner":
        """A learner of the same weights with its own rate."""
        return HebbLearner(self.w, lrs[0], **self._options())

    def _inputs(self, x: torch.Tensor, readout: bool) -> torch.Tensor:
        x = x.flatten(1)
        if self.normalize_input == "always" or (readout and self.normalize_input == "readout"):
            # Krotov-Hopfield's classifier sees unit-length images: its features do not depend on brightness
            # (with rows of unit 2-norm, W x is a cosine)
            x = torch.nn.functional.normalize(x, dim=1)
        return x

    def pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        """u = x g(W)^T, (batch, n_out), for flattened inputs x (batch, n_in)."""
        return x @ lebesgue_weights(self.w, self.p).T

    def output(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        """The pre-activation u, kept with x for the following `learn`; no dropout, so no mask."""
        self._x = self._inputs(x, readout=False)
        self._u = self.pre_activation(self._x)
        return self._u, None

    def code(self, u: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """The competition code y of the batch: the configured rule's, or the shared target d ('target')."""
        if self.competition == "soft":
            return soft_competition(u, self.t_inv)
        if self.competition == "hard":
            return hard_competition(u)
        if self.competition == "krotov":
            return krotov_competition(u, self.k, self.delta)
        return d

    def row_norms(self) -> torch.Tensor:
        """‖w_k‖_p of every unit, (n_out,)."""
        return torch.linalg.vector_norm(self.w, self.p, dim=1)

    def rates(self, norms: torch.Tensor) -> torch.Tensor:
        """eta_k of every unit, (n_out,): lr |‖w_k‖_p - 1|^lr_norm_power (adaptive), else lr for all."""
        if not self.adaptive_lr:
            return torch.full_like(norms, self.lr)
        return self.lr * ((norms - 1).abs() + NORM_EPS).pow(self.lr_norm_power)

    def learn(self, d: torch.Tensor) -> torch.Tensor:
        """One Hebbian step on the batch of the last `output`; d is used only by competition 'target'."""
        x, u = self._x, self._u
        norms = self.row_norms()
        loss = best_match_loss(x, u, norms, self.p)
        dw = hebbian_update(x, u, self.code(u, d), self.w)
        self.w.addcmul_(self.rates(norms).unsqueeze(1), dw)
        self._x = self._u = None
        return loss

    @torch.no_grad()
    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """The read-out features (batch, n_out) for association and the linear classifier."""
        x = self._inputs(x, readout=True)
        # Krotov & Hopfield's classifier reads h = W x, the plain dot product, whatever p the learning used
        u = x @ self.w.T if self.readout_product == "dot" else self.pre_activation(x)
        if self.readout == "softmax":
            return torch.softmax(self.readout_t_inv * u, dim=1)
        if self.readout == "power":
            return torch.relu(u).pow(self.readout_power)
        return u

    def set_lr_factor(self, factor: float) -> None:
        """The schedule's factor times the configured rate (Krotov's linear decay; SoftHebb keeps 1)."""
        self.lr = self.base_lr * factor

    def epoch_metrics(self) -> dict[str, float]:
        """Row norms ‖w_k‖_p after the epoch (mean, min, max) and the share of units more than OFF_SPHERE from 1
        (units that never win keep their initial norm): SoftHebb trains until the norms reach 1."""
        norms = self.row_norms()
        return {"row_norm_mean": norms.mean().item(), "row_norm_min": norms.min().item(),
                "row_norm_max": norms.max().item(),
                "share_off_sphere": ((norms - 1).abs() > OFF_SPHERE).float().mean().item()}

    def state_dict(self) -> dict:
        return {"model": {"weight": self.w}}

    def load_state_dict(self, state: dict) -> None:
        self.w.copy_(state["model"]["weight"])


def best_match_loss(x: torch.Tensor, u: torch.Tensor, norms: torch.Tensor, p: float) -> torch.Tensor:
    """1 - the batch mean of max_k u_k / (‖w_k‖_p^(p-1) ‖x‖_p): 0 when a unit's weights are parallel to x.

    By Hölder's inequality the ratio (the p-metric's cosine) lies in [-1, 1] and equals 1 when w_k is
    proportional to x; the loss reports how well the units' weights match the inputs as prototypes. No rule
    descends it, but each drives it down.
    """
    cos = u / norms.pow(p - 1).clamp_min(MAX_EPS) / torch.linalg.vector_norm(x, p, dim=1, keepdim=True).clamp_min(
        MAX_EPS)
    return 1 - cos.amax(dim=1).mean()


def build(cfg, device) -> HebbLearner:
    """The Hebbian learner a config asks for, on `device` (weights drawn from the run's seeded generator)."""
    n_in, n_out = cfg.fcLayers
    weight = initial_weights(n_out, n_in, cfg.init, cfg.init_norm, cfg.init_std, cfg.lebesgue_p).to(device)
    return HebbLearner(weight, cfg.lr[0], competition=cfg.competition, t_inv=cfg.t_inv, krotov_k=cfg.krotov_k,
                       krotov_delta=cfg.krotov_delta, p=cfg.lebesgue_p, adaptive_lr=cfg.adaptive_lr,
                       lr_norm_power=cfg.lr_norm_power, normalize_input=cfg.normalize_input, readout=cfg.readout,
                       readout_t_inv=cfg.readout_t_inv, readout_power=cfg.readout_power,
                       readout_product=cfg.readout_product)
