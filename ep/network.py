"""A layered network with symmetric connections that relaxes to an equilibrium: the chain EP trains.

Entries follow fcLayers, input first: `layers[j]` (an nn.Linear, weight of shape
(n_{j+1}, n_j)) connects entry j to entry j + 1 both ways, bottom-up through W
and top-down through W transposed. The input is clamped; every other entry is
a state s that follows the gradient of the Hopfield-like energy

    E(s) = sum_i s_i^2 / 2 - sum_j rho(s_{j+1}) . (W_j rho(s_j) + b_j)

discretised with step dt (paper, "EP as used in the paper"):

    s <- s + dt * (-s + rho'(s) * drive),   drive_i = W_{i-1} rho(s_{i-1}) + b_{i-1} + W_i^T rho(s_{i+1})

then clamped to [0, 1] (`clamped`) and multiplied by the layer's dropout mask,
which stays the same through the free and the nudged phase of a mini-batch.
The nudged phase adds beta * (d - s_out) to the output's update: the force of
the cost C = ||d - s_out||^2 / 2. EP's update is then
(1 / beta) (dE/dtheta at the free state - dE/dtheta at the nudged state),
which tends to -dC/dtheta at the free equilibrium as beta -> 0
(Scellier & Bengio 2017). Gammell et al.'s code nudges otherwise (`nudge_form`
'after_step', see NUDGE_FORMS); the update is the same.

With `softmax_readout` (the cross-entropy variant) the last weight layer is not
part of the dynamics: the output is softmax(W_L rho(s_last) + b_L), the cost is
the cross-entropy, whose force nudges the last hidden layer, and W_L learns from
the exact gradient of that cost (`readout_gradients`) at the nudged state, as the
original code, or at the free state (EPLearner's `readout_state`).

`energy` and `cost` below define the network (ep.energy derives the dynamics
and EP's gradient from them by autograd, for any topology); `step` and
`ep_gradients` here are the same derivatives written out by hand for this
chain, the fast path, held to the autograd one by tests/test_ep.py.

States are plain tensors in a list, updated in place. Three shortcuts make a step
cheap, each switchable for the benchmark: the input's drive of the first layer
is computed once per batch (the input is clamped, W does not move within a
phase); hard-sigmoid states clamped to [0, 1] have rho(s) = s and
rho'(s) = 1, so the step is a linear blend with no activation to evaluate; and
a network of several narrow layers can step all its states at once (the dense
step): every connection between two dynamic layers sits in one symmetric
(N, N) matrix M built once per mini-batch, so that a step is
drive = base + rho(s) M for the N states side by side (base: the biases and the
input's drives), a handful of tensor operations however deep the network,
where the per-layer step costs a few per layer and two per layer-skipping block,
or one sparse product for them all where that costs less (ep/small_world.py;
Gammell et al.'s code keeps its whole network in one such matrix). Which of
the two a mini-batch takes is a cost estimate (`uses_dense_step`): N^2
multiply-adds per example against the blocks' own, each operation of a step
counted as STEP_OVERHEAD_MACS more.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import accumulate

import torch
from torch import nn

from ep.energy import ClampedInput, EnergyModel
from funcs.activations import ENERGY_ACTIVATIONS

XAVIER_GAIN = 0.5  # initialisation of the original code (as BP's); biases start at zero
# What one tensor operation of a step costs beyond its arithmetic, in multiply-adds: about 3.5 us on this project's
# 2-core CPU, which does ~30 G multiply-adds a second in these products (steps timed quietly, batch 20: 784-100x5-10
# layered 0.13 ms per-layer / 0.17 ms dense; small-world 0.30 / 0.17; 784-500x3-10 small-world 0.94 / 1.57; the
# small-world per-layer steps with a product per skip block, before the sparse product of ep/small_world.py).
STEP_OVERHEAD_MACS = 100_000
DENSE_STEP_OPS = 5  # product, nudge, blend, clamp, copy back
# How the nudged phase pulls the output towards its target d: 'force', the cost's force beta (d - s) inside each
# step (the energy F = E + beta C, the paper's original code); 'after_step', Gammell et al.'s code: after each
# free step the output moves by 2 dt beta (d - s), a pull twice as strong applied after the step.
NUDGE_FORMS = ("force", "after_step")


@dataclass(frozen=True)
class DenseInput(ClampedInput):
    """A clamped input with the dense step's operator (M, base) of this mini-batch (see the module docstring)."""
    dense: tuple = ()


class EPNetwork(EnergyModel):
    """The layers (input first, as fcLayers) and the dynamics of the module docstring; states live outside."""

    def __init__(self, sizes, activation: str = "hardsigm", dt: float = 0.2, clamped: bool = True,
                 softmax_readout: bool = False, cache_input_drive: bool = True, box_shortcut: bool = True,
                 xavier_gain: float = XAVIER_GAIN, dense_step: bool | None = None, nudge_form: str = "force"):
        super().__init__()
        if softmax_readout and len(sizes) < 3:
            raise ValueError("a softmax read-out needs at least one hidden layer")
        if nudge_form not in NUDGE_FORMS or (nudge_form == "after_step" and softmax_readout):
            raise ValueError(f"nudge_form: one of {NUDGE_FORMS}; 'after_step' only without a softmax read-out")
        self.sizes, self.dt, self.clamped, self.softmax_readout = tuple(sizes), dt, clamped, softmax_readout
        self.nudge_form = nudge_form
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        for layer in self.layers:
            nn.init.xavier_uniform_(layer.weight, gain=xavier_gain)
            nn.init.zeros_(layer.bias)
        self.rho, self.rho_prime = ENERGY_ACTIVATIONS[activation]
        self.cache_input_drive = cache_input_drive
        self.box = box_shortcut and activation == "hardsigm" and clamped
        self.dense = dense_step  # None: chosen per mini-batch by its cost (`uses_dense_step`)

    @classmethod
    def from_config(cls, cfg) -> "EPNetwork":
        return cls(cfg.fcLayers, cfg.activation_function, cfg.dt, cfg.clamped,
                   softmax_readout=cfg.loss == "Cross-entropy", xavier_gain=cfg.xavier_gain,
                   nudge_form=cfg.nudge_form)

    @property
    def n_states(self) -> int:
        """Number of dynamic layers (all but the input, and but the read-out if there is one)."""
        return len(self.sizes) - 1 - self.softmax_readout

    @property
    def state_sizes(self) -> tuple[int, ...]:
        return self.sizes[1:1 + self.n_states]

    def layer_parameters(self):
        """Weight and bias of each layer, input first: one group per learning rate (see `group_lrs`)."""
        return [list(layer.parameters()) for layer in self.layers]

    def group_lrs(self, lrs) -> list[float]:
        """The learning rate of each group of `layer_parameters`, from the config's one rate per layer."""
        return list(lrs)

    def connections(self) -> list[int]:
        """Number of connections of each adjacent-layer weight block (for the per-layer update size)."""
        return [layer.weight.numel() for layer in self.layers]

    # --- the energy: what defines the network -------------------------------------------------

    def energy(self, s, x, d=None, beta: float = 0.0) -> torch.Tensor:
        """F = sum_i ||s_i||^2 / 2 - sum_j rho(s_{j+1}) . (W_j rho(s_j) + b_j) + beta C(s, d), per example.

        s_0 = x is the clamped input; with a softmax read-out the last layer is in C, not in E.
        """
        x = x.x if isinstance(x, ClampedInput) else x
        below = [self.rho(x)] + [self.rho(si) for si in s[:-1]]
        e = sum(0.5 * (si * si).sum(1) for si in s)
        for j, si in enumerate(s):
            e = e - (self.rho(si) * self.layers[j](below[j])).sum(1)
        return e if d is None else e + beta * self.cost(s, d)

    def cost(self, s, d) -> torch.Tensor:
        """C per example: ||d - s_out||^2 / 2, or the read-out's cross-entropy -sum d log softmax."""
        if self.softmax_readout:
            return -(d * torch.log_softmax(self.layers[-1](self.rho(s[-1])), dim=1)).sum(1)
        return 0.5 * ((d - s[-1]) ** 2).sum(1)

    # --- dynamics: the fast path ---------------------------------------------------------------

    def act(self, s: torch.Tensor) -> torch.Tensor:
        return s if self.box else self.rho(s)

    def input_drive(self, x: torch.Tensor) -> torch.Tensor:
        """W_0 rho(x) + b_0: what the clamped input sends to the first dynamic layer."""
        return self.layers[0](self.rho(x))

    def readout(self, s: list[torch.Tensor]) -> torch.Tensor:
        """Pre-softmax output of the read-out (softmax_readout only)."""
        return self.layers[-1](self.act(s[-1]))

    def output(self, s: list[torch.Tensor]) -> torch.Tensor:
        """The network's output at state s: the last state, or the read-out's softmax."""
        return torch.softmax(self.readout(s), dim=1) if self.softmax_readout else s[-1]

    def clamp_input(self, x: torch.Tensor) -> "ClampedInput":
        """The (masked) input of a mini-batch, with its drive of the first layer if cached (and of any other layer
        it reaches, `input_extra`), and with `dense`, the dense step's operator."""
        if isinstance(x, ClampedInput):
            return x
        inp = ClampedInput(x, self.input_drive(x) if self.cache_input_drive else None, self.input_extra(x))
        if not self.uses_dense_step(x.shape[0]):
            return inp
        return DenseInput(inp.x, inp.drive, inp.extra, self.dense_operator(inp))

    def uses_dense_step(self, batch: int) -> bool:
        """Whether a mini-batch of `batch` examples steps through the dense matrix: as `dense` says if set, else
        where it costs fewer multiply-adds than the per-layer step, each operation counted STEP_OVERHEAD_MACS
        more. Only for two or more dynamic layers, with the cached input drive (the matrix's `base`) and no
        read-out outside the dynamics."""
        if self.n_states < 2 or not self.cache_input_drive or self.softmax_readout:
            return False
        if self.dense is not None:
            return self.dense
        dense = batch * sum(self.state_sizes) ** 2 + STEP_OVERHEAD_MACS * DENSE_STEP_OPS
        return dense < self.per_layer_step_macs(batch)

    def per_layer_step_macs(self, batch: int) -> int:
        """The per-layer step's estimated cost: each block between dynamic layers used both ways, plus
        STEP_OVERHEAD_MACS for each operation."""
        chain = self.layers[1:self.n_states]
        return batch * 2 * sum(layer.weight.numel() for layer in chain) + \
            STEP_OVERHEAD_MACS * 2 * (self.n_states + len(chain))

    def input_extra(self, x: torch.Tensor) -> tuple:
        """Drives of the clamped input beyond the first layer's, as (layer, drive) pairs: none in a chain."""
        return ()

    def state_blocks(self):
        """(i, k, W) for every weight block between two dynamic entries i < k (fcLayers' entries, input 0):
        entry k's drive gains W rho(s_i), entry i's gains W^T rho(s_k). In the chain, layers 1 .. n_states - 1."""
        return [(j, j + 1, self.layers[j].weight) for j in range(1, self.n_states)]

    def state_columns(self) -> list[slice]:
        """Each dynamic entry's columns among the states side by side (the N of the dense step's matrix and of
        ep/small_world.py's skip operator): entry j's (fcLayers' entries, input 0) are [j - 1]."""
        ends = list(accumulate(self.state_sizes))
        return [slice(end - n, end) for n, end in zip(self.state_sizes, ends)]

    @torch.no_grad()
    def dense_operator(self, inp: ClampedInput) -> tuple:
        """(M, base, sizes, out) of the dense step for this mini-batch: drive = base + rho(s) M, s the states side
        by side.

        M (N, N), symmetric: block (i, k) holds W^T and block (k, i) holds W for each `state_blocks` entry.
        base (batch, N): each layer's bias, plus the input's drives (first layer, then `input_extra`).
        sizes: the states' sizes (their columns, in order); out: the output layer's columns, where the cost pulls."""
        cols = self.state_columns()
        m = self.layers[0].weight.new_zeros(cols[-1].stop, cols[-1].stop)
        for i, k, w in self.state_blocks():
            m[cols[i - 1], cols[k - 1]] = w.t()
            m[cols[k - 1], cols[i - 1]] = w
        batch = inp.x.shape[0]
        base = torch.cat([inp.drive] + [self.layers[j].bias.expand(batch, -1) for j in range(1, self.n_states)], 1)
        for layer, drive in inp.extra:
            base[:, cols[layer - 1]] += drive
        return m, base, self.state_sizes, cols[-1]

    def _dense_step(self, s, operator, masks, d, beta) -> None:
        """`step` with the dense operator: the same update of every state, computed side by side."""
        m, base, sizes, out = operator
        u = torch.cat(s, 1)  # (batch, N)
        drive = torch.addmm(base, self.act(u), m)
        if self.box:  # rho'(s) = 1: the cost's force beta (d - s) joins the drive, s <- (1 - dt) s + dt drive
            if d is not None:
                drive[:, out].add_(d - u[:, out], alpha=beta)
            u.lerp_(drive, self.dt)
        else:
            change = self.rho_prime(u) * drive - u
            if d is not None:
                change[:, out].add_(d - u[:, out], alpha=beta)
            u.add_(change, alpha=self.dt)
        if self.clamped:
            u.clamp_(0, 1)
        torch._foreach_copy_(s, u.split(sizes, 1))  # one call for every layer's copy back
        for si, mask in zip(s, masks or ()):
            if mask is not None:
                si.mul_(mask)

    def _drives(self, s, inp: "ClampedInput"):
        """Drive of every dynamic layer from the current states (synchronous update); never writes inp.drive."""
        r = [self.act(si) for si in s]
        drives = []
        for i in range(len(s)):
            if i > 0:
                drive = self.layers[i](r[i - 1])
            else:
                drive = inp.drive if inp.drive is not None else self.input_drive(inp.x)
            if i + 1 < len(s):  # top-down through W transposed (a new tensor: inp.drive stays as it is)
                drive = torch.addmm(drive, r[i + 1], self.layers[i + 1].weight)
            drives.append(drive)
        return drives, r

    def step(self, s, x, masks=None, d=None, beta=0.0) -> None:
        """One step of the dynamics, in place on the states s; nudged towards d with strength beta if given.

        -dF/ds of `energy` written out for this chain (EnergyModel.autograd_step is the reference). With
        nudge_form 'after_step' the nudge is Gammell et al.'s instead: a free step, then the output moves by
        2 dt beta (d - s_out) (with dt 0.5 and beta 1 it lands on d; beta -1 pushes it as far the other way)."""
        if d is not None and self.nudge_form == "after_step":
            self.step(s, x, masks)
            out = s[-1]
            out.add_(d - out, alpha=2 * self.dt * beta)
            if self.clamped:
                out.clamp_(0, 1)
            if masks is not None and masks[-1] is not None:
                out.mul_(masks[-1])
            return
        inp = self.clamp_input(x)
        if isinstance(inp, DenseInput):
            return self._dense_step(s, inp.dense, masks, d, beta)
        drives, r = self._drives(s, inp)
        last = len(s) - 1
        if d is not None and self.softmax_readout:
            y = torch.softmax(self.layers[-1](r[last]), dim=1)
            drives[last] = torch.addmm(drives[last], d - y, self.layers[-1].weight, alpha=beta)
        for i, (si, drive) in enumerate(zip(s, drives)):
            # the cost's force beta (d - s) acts on the output state (MSE; the read-out's is in its drive)
            nudged = d is not None and i == last and not self.softmax_readout
            if self.box and not nudged:  # rho'(s) = 1: s <- (1 - dt) s + dt drive, one kernel
                si.lerp_(drive, self.dt)
            elif self.box:  # ... + dt beta (d - s)
                si.mul_(1 - self.dt * (1 + beta)).add_(drive, alpha=self.dt).add_(d, alpha=self.dt * beta)
            else:
                change = self.rho_prime(si) * drive - si
                if nudged:
                    change.add_(d - si, alpha=beta)
                si.add_(change, alpha=self.dt)
            if self.clamped:
                si.clamp_(0, 1)
            if masks is not None and masks[i] is not None:
                si.mul_(masks[i])

    # --- learning: the fast path ---------------------------------------------------------------

    @torch.no_grad()
    def ep_gradients(self, x, plus, minus, beta_gap: float, free=None, d=None) -> list[torch.Tensor]:
        """Estimated loss gradients of every parameter (layers in order: weight, bias), as EP measures them.

        EnergyModel.autograd_ep_gradients written out for this chain.
        plus, minus: the states at nudging strengths beta_+ and beta_- with
        beta_gap = beta_+ - beta_- (one-sided: the nudged and the free state,
        gap beta; symmetric: +beta and -beta, gap 2 beta). The estimate of
        dC/dW_j is -(rho(u_{j+1}) rho(u_j)^T at plus - the same at minus) / beta_gap,
        averaged over the batch. With a softmax read-out its weights get the exact
        cross-entropy gradient at the state `free` (target `d`).
        """
        x = x.x if isinstance(x, ClampedInput) else x
        batch = x.shape[0]
        scale = 1.0 / (beta_gap * batch)
        rx = self.rho(x)
        up_plus, up_minus = [self.act(si) for si in plus], [self.act(si) for si in minus]
        grads = []
        for j in range(self.n_states):
            if j == 0:  # the input is the same in both states: one product
                gw = torch.mm((up_minus[0] - up_plus[0]).t(), rx)
            else:
                gw = torch.mm(up_minus[j].t(), up_minus[j - 1])
                gw.addmm_(up_plus[j].t(), up_plus[j - 1], alpha=-1.0)
            gb = (up_minus[j] - up_plus[j]).sum(0)
            grads += [gw.mul_(scale), gb.mul_(scale)]
        if self.softmax_readout:
            grads += self.readout_gradients(free, d)
        return grads

    @torch.no_grad()
    def readout_gradients(self, s, d) -> list[torch.Tensor]:
        """The cross-entropy's exact gradient for the softmax read-out's weight and bias at the state s."""
        err = torch.softmax(self.readout(s), dim=1) - d  # dC/dlogits
        batch = err.shape[0]
        return [torch.mm(err.t(), self.act(s[-1])) / batch, err.sum(0) / batch]
