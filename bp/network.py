"""Networks trained by backpropagation."""
from __future__ import annotations

import torch
from torch import nn

from funcs.activations import ACTIVATIONS

# Initialisation of the original code: Xavier-uniform weights with gain 0.5, zero biases.
XAVIER_GAIN = 0.5


class _LinearSGDStep(torch.autograd.Function):
    """y = x W^T + b, whose backward applies plain SGD to W and b itself instead of returning their gradients.

    Plain SGD needs dL/dW = g^T x only once, so W <- W - lr g^T x is one in-place
    addmm: no weight-sized gradient is written and read back by a separate
    optimizer step. These layers are memory-bound on a CPU: 1.17x (1-layer preset)
    and 1.22x (2-layer) the samples per second on a 2-core CPU (bench/results/).
    """

    @staticmethod
    def forward(ctx, x, weight, bias, layer):
        ctx.save_for_backward(x)
        ctx.layer = layer
        return torch.addmm(bias, x, weight.t())

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        layer = ctx.layer
        # The input's gradient uses W before its update, as a separate optimizer step would.
        grad_x = g @ layer.weight if ctx.needs_input_grad[0] else None
        with torch.no_grad():
            layer.weight.addmm_(g.t(), x, alpha=-layer.lr)
            layer.bias.add_(g.sum(0), alpha=-layer.lr)
        return grad_x, None, None, None


class Dense(nn.Linear):
    """nn.Linear that, with `lr` set, takes its plain-SGD step during the backward pass (see _LinearSGDStep)."""

    lr: float | None = None

    def forward(self, x):
        if self.lr is not None and torch.is_grad_enabled():
            return _LinearSGDStep.apply(x, self.weight, self.bias, self)
        return super().forward(x)


class MLP(nn.Module):
    """Fully connected network from `fcLayers`, as in the original code's layer order.

    For each weight layer i: activation[i] -> Dropout(dropProb[i]) -> Linear; then
    activation[-1] on the output. activation[0] acts on the input ('x' in the
    presets); dropProb[-1] is not applied here: it is the output mask of the target.
    """

    def __init__(self, sizes, activations, drop_probs):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        linears = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            linear = Dense(n_in, n_out)
            nn.init.xavier_uniform_(linear.weight, gain=XAVIER_GAIN)
            nn.init.zeros_(linear.bias)
            linears.append(linear)
            layers.append(ACTIVATIONS[activations[i]]())
            if drop_probs[i] > 0:
                layers.append(nn.Dropout(drop_probs[i]))
            layers.append(linear)
        layers.append(ACTIVATIONS[activations[-1]]())
        self.net = nn.Sequential(*layers)
        # A plain tuple, not a ModuleList: the layers are registered once, under net.*.
        self.linears = tuple(linears)

    @classmethod
    def from_config(cls, cfg) -> "MLP":
        return cls(cfg.fcLayers, cfg.activation_function, cfg.dropProb)

    def forward(self, x):
        return self.net(x)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        # State dicts written up to commit d4aabd8 also held each layer as linears.*:
        # the same tensors as net.*, so those entries are dropped.
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith("linears.")}
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def layer_parameters(self):
        """Parameters grouped per weight layer (weight and bias), for per-layer learning rates."""
        return [list(linear.parameters()) for linear in self.linears]
