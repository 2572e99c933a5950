"""Dropout masks drawn from random bits: the same Bernoulli masks as torch's, in a fraction of the time.

On a CPU, `bernoulli_(q)` (and so nn.Dropout) spends far longer than the 16 x 2000 matmul it guards: one
generator call per element, in double precision. Here one 64-bit draw gives four 16-bit uniform integers,
and an element is kept when its integer falls under round(q * 2^16): the keep probability is q to within
2^-17, which no run can tell apart (a 60,000-sample epoch of 2000 outputs estimates it to about 1e-4).
bench/results/ holds the before/after timings of the presets.
"""
from __future__ import annotations

import torch
from torch import nn

_LEVELS = 1 << 16  # 16-bit uniform integers, four per 64-bit draw


def keep_mask(shape, keep: float, device=None, generator: torch.Generator | None = None) -> torch.Tensor:
    """A bool tensor of `shape`, each entry True with probability `keep` (to within 2^-17), independently."""
    threshold = round(keep * _LEVELS) - _LEVELS // 2  # int16 values run from -2^15 to 2^15 - 1
    if threshold >= _LEVELS // 2:  # not representable in int16: every entry is kept
        return torch.ones(shape, dtype=torch.bool, device=device)
    n = 1
    for size in shape:
        n *= size
    draws = torch.empty((n + 3) // 4, dtype=torch.int64, device=device)
    # from -2^63 up to (not including) 2^63 - 1: every bit uniform (one value of 2^64 is never drawn)
    draws.random_(-(1 << 63), (1 << 63) - 1, generator=generator)
    return (draws.view(torch.int16)[:n] < threshold).view(shape)


def mask(shape, p: float, device=None, generator: torch.Generator | None = None) -> torch.Tensor | None:
    """A float 0/1 mask dropping each entry with probability p (unscaled), or None when p == 0."""
    if p == 0:
        return None
    return keep_mask(shape, 1 - p, device=device, generator=generator).to(torch.float32)


class Dropout(nn.Module):
    """nn.Dropout(p) with masks from `keep_mask`: in training, x * mask / (1 - p); in evaluation, x."""

    def __init__(self, p: float):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout probability {p} is not in [0, 1)")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        scale = torch.where(keep_mask(x.shape, 1 - self.p, device=x.device), 1 / (1 - self.p), 0.0)
        return x * scale

    def extra_repr(self) -> str:
        return f"p={self.p}"
