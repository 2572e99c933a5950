"""Backpropagation as a learner: the output is a forward pass, learning is a gradient step on the loss."""
from __future__ import annotations

import torch
from torch import nn

from funcs import dropout, networks
from funcs.optim import loss_function, make_optimizer, set_lr_factor


class BPLearner:
    """Produces the output with a forward pass and learns towards a target with one gradient step.

    With plain SGD on an MLP the step is taken inside the backward pass
    (funcs.networks.sgd_in_backward): the same update, less memory traffic.
    Adam, and any CNN, go through torch.optim as usual.
    """

    def __init__(self, model: nn.Module, lrs, optimizer: str, loss: str, p_out: float = 0.0):
        self.model, self.p_out, self.optimizer_name, self.loss_name = model, p_out, optimizer, loss
        self.base_lrs = tuple(lrs)
        self.sgd_in_backward = optimizer == "SGD" and isinstance(model, networks.MLP)
        self.optimizer = None if self.sgd_in_backward else make_optimizer(model.layer_parameters(), lrs, optimizer)
        self.loss_fn = loss_function(loss)
        self._y = None
        self.set_lr_factor(1.0)

    def sibling(self, lrs) -> "BPLearner":
        """A learner of the same network with its own optimizer and rates (semi-supervised phases)."""
        return BPLearner(self.model, lrs, self.optimizer_name, self.loss_name, self.p_out)

    def output(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Training-mode output (dropout on) times the output dropout mask; kept for the following `learn`."""
        self.model.train()
        y = self.model(x)
        mask = dropout.mask(y.shape, self.p_out, device=y.device)
        self._y = y if mask is None else y * mask
        return self._y.detach(), mask

    def learn(self, d: torch.Tensor) -> torch.Tensor:
        """One step on loss(y * mask, d): dropped output neurons neither win nor learn."""
        loss = self.loss_fn(self._y, d)
        if self.sgd_in_backward:
            with networks.sgd_in_backward(self.model.linears, self.lrs):
                loss.backward()
        else:
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        self._y = None
        return loss.detach()

    @torch.no_grad()
    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """Evaluation output: dropout off, no learning."""
        self.model.eval()
        return self.model(x)

    def set_lr_factor(self, factor: float) -> None:
        """Scale every layer's learning rate to factor x its configured value."""
        self.lrs = tuple(lr * factor for lr in self.base_lrs)
        if self.optimizer is not None:
            set_lr_factor(self.optimizer, factor)

    def state_dict(self) -> dict:
        optimizer = {} if self.optimizer is None else self.optimizer.state_dict()
        return {"model": self.model.state_dict(), "optimizer": optimizer}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        if self.optimizer is not None:
            self.optimizer.load_state_dict(state["optimizer"])


def build(cfg, device) -> BPLearner:
    """The BP learner a config asks for, on `device`."""
    return BPLearner(networks.build(cfg).to(device), cfg.lr, cfg.optimizer, cfg.loss, p_out=cfg.drop_probs[-1])
