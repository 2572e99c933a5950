"""Optimizers and losses by the names the configs use, shared by every learning rule."""
from __future__ import annotations

import torch
from torch import nn


def make_optimizer(layer_params, lrs, name: str) -> torch.optim.Optimizer:
    """SGD (no momentum, as the paper) or Adam, with one learning rate per weight layer.

    Each group keeps its configured rate as `base_lr`, from which the per-epoch
    schedule sets `lr` (see `set_lr_factor`).
    """
    groups = [{"params": list(params), "lr": lr, "base_lr": lr} for params, lr in zip(layer_params, lrs)]
    if name == "Adam":
        # The fused kernel: one pass over each parameter instead of a dozen element-wise ops;
        # 8.5x faster steps on a 3000x6272 layer on this CPU (bench/results), same update.
        return torch.optim.Adam(groups, fused=True)
    return torch.optim.SGD(groups)


def set_lr_factor(optimizer: torch.optim.Optimizer, factor: float) -> None:
    """Every group's learning rate to factor x its configured rate."""
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor


def loss_function(name: str):
    """'MSE' (mean over batch and neurons, as torch's default) or 'Cross-entropy' (soft targets allowed)."""
    return nn.functional.mse_loss if name == "MSE" else nn.functional.cross_entropy
