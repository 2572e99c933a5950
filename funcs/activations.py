"""Activation functions by the names the configs use."""
from __future__ import annotations

import torch
from torch import nn


class HardSigmoid(nn.Module):
    """rho(s) = clamp(s, 0, 1): the paper's 'hardsigm', for feed-forward networks.

    As hardtanh(s, 0, 1): the same values, and a backward pass that is one fused kernel where clamp's is four
    (two comparisons, an and, a where); on a 16-example batch of 2000 outputs that is a tenth of a batch on a CPU. Its
    derivative at exactly 0 and 1 is 0 where clamp's is 1: a pre-activation lands on those two floats with
    probability ~0. A rule that relaxes an energy uses ENERGY_ACTIVATIONS below, whose rho' keeps the clamp's
    boundaries.
    """

    def forward(self, x):
        return nn.functional.hardtanh(x, 0.0, 1.0)


class HalfTanh(nn.Module):
    """0.5 + 0.5 tanh(s): a smooth activation with the hard sigmoid's range (the original's 'tanh')."""

    def forward(self, x):
        return 0.5 + 0.5 * torch.tanh(x)


class TriangleWTA(nn.Module):
    """'Triangle' winner-take-all for convolution maps (N, C, H, W), paper appendix (CIFAR-10 CNN).

    Subtract each channel's mean over all positions and rectify, then subtract each
    position's mean over all channels and rectify again.
    """

    def forward(self, x):
        x = torch.relu(x - x.mean(dim=(2, 3), keepdim=True))
        return torch.relu(x - x.mean(dim=1, keepdim=True))


ACTIVATIONS = {
    "x": nn.Identity,
    "relu": nn.ReLU,
    "hardsigm": HardSigmoid,
    "sigmoid": nn.Sigmoid,
    "tanh": HalfTanh,
    "softmax": lambda: nn.Softmax(dim=1),
    "wta": TriangleWTA,
}


# rho and its derivative rho' as plain functions, for rules that run the dynamics of an
# energy: s <- s + dt * (-s + rho'(s) * drive) needs rho' explicitly.
def _hardsigm_prime(s):
    return ((s >= 0) & (s <= 1)).to(s.dtype)


def _sigmoid_prime(s):
    y = torch.sigmoid(s)
    return y * (1 - y)


def _half_tanh(s):
    return 0.5 + 0.5 * torch.tanh(s)


def _half_tanh_prime(s):
    return 0.5 * (1 - torch.tanh(s) ** 2)


def _relu_prime(s):
    return (s >= 0).to(s.dtype)


ENERGY_ACTIVATIONS = {
    "hardsigm": (lambda s: s.clamp(0, 1), _hardsigm_prime),
    "sigmoid": (torch.sigmoid, _sigmoid_prime),
    "tanh": (_half_tanh, _half_tanh_prime),
    "relu": (lambda s: s.clamp(min=0), _relu_prime),  # clamp: its autograd derivative at 0 is 1, as _relu_prime
}
