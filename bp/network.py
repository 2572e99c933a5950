"""Networks trained by backpropagation."""
from __future__ import annotations

from torch import nn

from funcs.activations import ACTIVATIONS

# Initialisation of the original code: Xavier-uniform weights with gain 0.5, zero biases.
XAVIER_GAIN = 0.5


class MLP(nn.Module):
    """Fully connected network from `fcLayers`, as in the original code's layer order.

    For each weight layer i: activation[i] -> Dropout(dropProb[i]) -> Linear; then
    activation[-1] on the output. activation[0] acts on the input ('x' in the
    presets); dropProb[-1] is not applied here: it is the output mask of the target.
    """

    def __init__(self, sizes, activations, drop_probs):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        self.linears = nn.ModuleList()
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            linear = nn.Linear(n_in, n_out)
            nn.init.xavier_uniform_(linear.weight, gain=XAVIER_GAIN)
            nn.init.zeros_(linear.bias)
            self.linears.append(linear)
            layers.append(ACTIVATIONS[activations[i]]())
            if drop_probs[i] > 0:
                layers.append(nn.Dropout(drop_probs[i]))
            layers.append(linear)
        layers.append(ACTIVATIONS[activations[-1]]())
        self.net = nn.Sequential(*layers)

    @classmethod
    def from_config(cls, cfg) -> "MLP":
        return cls(cfg.fcLayers, cfg.activation_function, cfg.dropProb)

    def forward(self, x):
        return self.net(x)

    def layer_parameters(self):
        """Parameters grouped per weight layer (weight and bias), for per-layer learning rates."""
        return [list(linear.parameters()) for linear in self.linears]
