"""A network defined by its energy: EP's dynamics and EP's gradient follow from autograd of it.

A subclass writes `energy(s, x)` (per example, the Hopfield-like E of the
states s with the input x clamped), `cost(s, d)` (per example, C of the output
against the target d) and the sizes of its states. Then

    F(s) = E(s; x) + beta * C(s, d)                                      (total energy)
    step:        s <- project(s - dt * dF/ds)                 (clamp to [0, 1], dropout mask)
    EP gradient: dL/dtheta ~ (dE/dtheta(s+) - dE/dtheta(s-)) / (beta+ - beta-) + dC/dtheta(s_free)

(Scellier & Bengio 2017; the last term is the cost's own dependence on the
parameters, exact at the free state, non-zero only for a read-out layer). This
holds for any topology: a layered chain, a network with layer-skipping
connections. A subclass may override `step` and `ep_gradients` with a
hand-derived fast path; `autograd_step` and `autograd_ep_gradients` stay the
reference it is tested against (tests/test_ep.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ClampedInput:
    """A mini-batch's input x (dropout applied) and, where a network caches it, the drive x sends to layer 1."""
    x: torch.Tensor
    drive: torch.Tensor | None = None
    extra: tuple = ()  # other drives of x a network caches, e.g. (layer, drive) of its layer-skipping blocks


class EnergyModel(nn.Module):
    """States s (a list of (batch, n) tensors) relaxing down the gradient of an energy; see the module docstring."""

    dt: float = 0.2
    clamped: bool = True

    # --- what a subclass defines --------------------------------------------------------------

    def energy(self, s, x, d=None, beta: float = 0.0) -> torch.Tensor:
        """Per-example total energy F = E(s; x) + beta C(s, d), shape (batch,); x a tensor or ClampedInput."""
        raise NotImplementedError

    def cost(self, s, d) -> torch.Tensor:
        """Per-example cost C(s, d), shape (batch,)."""
        raise NotImplementedError

    @property
    def state_sizes(self) -> tuple[int, ...]:
        raise NotImplementedError

    def clamp_input(self, x) -> ClampedInput:
        """The mini-batch's clamped input (a subclass may cache what it sends to the first layer)."""
        return x if isinstance(x, ClampedInput) else ClampedInput(x)

    def output(self, s) -> torch.Tensor:
        """The network's output at state s (the last state by default)."""
        return s[-1]

    # --- dynamics, from the energy --------------------------------------------------------------

    def project(self, s, masks=None) -> None:
        """After a step: states clamped to [0, 1] (`clamped`), then times their layer's dropout mask."""
        for i, si in enumerate(s):
            if self.clamped:
                si.clamp_(0, 1)
            if masks is not None and masks[i] is not None:
                si.mul_(masks[i])

    def autograd_step(self, s, x, masks=None, d=None, beta: float = 0.0) -> None:
        """One step s <- project(s - dt dF/ds) in place, dF/ds by autograd of `energy` (synchronous update)."""
        inp = self.clamp_input(x)
        with torch.enable_grad():
            free = [si.detach().requires_grad_() for si in s]
            grads = torch.autograd.grad(self.energy(free, inp, d, beta).sum(), free)
        for si, g in zip(s, grads):
            si.sub_(g, alpha=self.dt)
        self.project(s, masks)

    def step(self, s, x, masks=None, d=None, beta: float = 0.0) -> None:
        """One step of the dynamics (the autograd one unless a subclass has a faster, equal one)."""
        self.autograd_step(s, x, masks, d, beta)

    def relax(self, s, x, steps: int, masks=None, d=None, beta: float = 0.0) -> list[torch.Tensor]:
        """`steps` steps from state s (in place); x (a tensor or a ClampedInput) is clamped throughout."""
        inp = self.clamp_input(x)
        for _ in range(steps):
            self.step(s, inp, masks, d, beta)
        return s

    def zero_state(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [x.new_zeros(x.shape[0], n) for n in self.state_sizes]

    @torch.no_grad()
    def free_phase(self, x, steps: int, masks=None) -> list[torch.Tensor]:
        inp = self.clamp_input(x)
        return self.relax(self.zero_state(inp.x), inp, steps, masks)

    @torch.no_grad()
    def nudged_phase(self, free, x, d, beta: float, steps: int, masks=None) -> list[torch.Tensor]:
        """`steps` nudged steps (strength beta towards d) from a copy of the free state."""
        return self.relax([si.clone() for si in free], x, steps, masks, d, beta)

    # --- learning, from the energy --------------------------------------------------------------

    def autograd_ep_gradients(self, x, plus, minus, beta_gap: float, free=None, d=None) -> list[torch.Tensor]:
        """EP's estimate of the loss gradient of every parameter (in `parameters()` order), batch-averaged.

        plus, minus: the states at nudging strengths beta_+ and beta_-, beta_gap = beta_+ - beta_-
        (one-sided: nudged and free, gap beta; symmetric: +beta and -beta, gap 2 beta).
        """
        inp = self.clamp_input(x)
        params = list(self.parameters())
        batch = inp.x.shape[0]
        with torch.enable_grad():
            gap = (self.energy(plus, inp).sum() - self.energy(minus, inp).sum()) / (beta_gap * batch)
            if free is not None and d is not None:
                gap = gap + self.cost(free, d).sum() / batch
            grads = torch.autograd.grad(gap, params, allow_unused=True)
        return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]

    def ep_gradients(self, x, plus, minus, beta_gap: float, free=None, d=None) -> list[torch.Tensor]:
        return self.autograd_ep_gradients(x, plus, minus, beta_gap, free, d)
