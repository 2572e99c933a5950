"""bench.original_semi hands our phase-1 weights to the original code's MLP: the names must map layer to layer."""
from collections import OrderedDict

import pytest
import torch
from torch import nn

from bench.original_semi import to_original
from funcs.networks import MLP


def original_like_mlp(sizes, drop_probs) -> nn.Module:
    """The original's bp.network.MLP layout (rho_i, drop_i, fc_i per layer, then the output's rho), by name."""
    acts = [nn.Identity, nn.ReLU, nn.Sigmoid]
    layers = OrderedDict()
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers[f"rho_{i}"] = acts[i]()
        layers[f"drop_{i}"] = nn.Dropout(drop_probs[i])
        layers[f"fc_{i}"] = nn.Linear(n_in, n_out)
    layers[f"rho_{len(sizes) - 1}"] = acts[len(sizes) - 1]()
    net = nn.Module()
    net.fcnet = nn.Sequential(layers)
    return net


@pytest.mark.parametrize("drop_probs", [[0.2, 0.5, 0.0], [0.0, 0.5, 0.0]])  # no input Dropout shifts the indices
def test_our_weights_give_the_same_outputs_in_the_original_layout(drop_probs):
    torch.manual_seed(0)
    sizes = [12, 7, 3]
    ours = MLP(sizes, ["x", "relu", "sigmoid"], drop_probs).eval()
    theirs = original_like_mlp(sizes, drop_probs).eval()
    theirs.load_state_dict(to_original(ours.state_dict()))  # strict: every name present, none left over
    x = torch.rand(5, 12)
    torch.testing.assert_close(theirs.fcnet(x), ours(x), rtol=0, atol=0)
