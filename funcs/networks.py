"""The feed-forward networks every rule may use: the MLP and the CNN of the paper, built from a Config.

`Dense` is an nn.Linear that can take its plain-SGD step inside the backward
pass, which saves a weight-sized gradient write and read on a memory-bound CPU;
it does so only inside `sgd_in_backward(...)`, which a learner enters around
its own `loss.backward()`: any other backward pass (the max-activation ascent,
a semi-supervised sibling's Adam step) gets ordinary gradients and moves nothing.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from funcs.activations import ACTIVATIONS
from funcs.dropout import Dropout
from funcs.errors import UserError

# Initialisation of the original code: Xavier-uniform weights with gain 0.5, zero biases.
XAVIER_GAIN = 0.5


class _LinearSGDStep(torch.autograd.Function):
    """y = x W^T + b, whose backward, inside `sgd_in_backward`, applies plain SGD to W and b itself.

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
        if layer.step_lr is None:  # an ordinary backward pass: the gradients, no step
            return grad_x, g.t() @ x, g.sum(0), None
        with torch.no_grad():
            layer.weight.addmm_(g.t(), x, alpha=-layer.step_lr)
            layer.bias.add_(g.sum(0), alpha=-layer.step_lr)
        return grad_x, None, None, None


class Dense(nn.Linear):
    """nn.Linear whose backward takes the plain-SGD step itself inside `sgd_in_backward` (see _LinearSGDStep).

    Outside that block it is an ordinary layer: its backward returns gradients and moves nothing.
    """

    step_lr: float | None = None  # set by sgd_in_backward for the duration of one backward pass

    def forward(self, x):
        # Whether the backward steps is only known when it runs, so every differentiable forward goes through
        # the Function (its plain backward gives the gradients nn.Linear would; no double backward).
        if torch.is_grad_enabled() and self.weight.requires_grad:
            return _LinearSGDStep.apply(x, self.weight, self.bias, self)
        return super().forward(x)


@contextmanager
def sgd_in_backward(layers, lrs):
    """Within this block, a backward pass through these Dense layers applies W <- W - lr dL/dW to each."""
    for layer, lr in zip(layers, lrs):
        layer.step_lr = lr
    try:
        yield
    finally:
        for layer in layers:
            layer.step_lr = None


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
                layers.append(Dropout(drop_probs[i]))
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

    def drive(self, x):
        """The output layer's drive (before the output activation), differentiable in x.

        Figure 6's ascent backpropagates into x with the network frozen (`requires_grad_(False)`).
        """
        return self.net[:-1](x)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        # State dicts written up to commit d4aabd8 also held each layer as linears.*:
        # the same tensors as net.*, so those entries are dropped.
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith("linears.")}
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def layer_parameters(self):
        """Parameters grouped per weight layer (weight and bias), for per-layer learning rates."""
        return [list(linear.parameters()) for linear in self.linears]


class PrunedConv2d(nn.Conv2d):
    """A convolution whose weights are randomly pruned once, at initialisation, and stay pruned.

    The 0/1 mask is a buffer, so it is saved and loaded with the model; the
    convolution always uses weight * mask, so no optimizer step can revive a
    pruned weight (paper appendix: 30% of the convolution weights, 80% for CIFAR-10).
    """

    def __init__(self, *args, prune: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        keep = torch.ones_like(self.weight)
        if prune > 0:
            keep.view(-1)[torch.randperm(keep.numel())[:round(prune * keep.numel())]] = 0.0
        self.register_buffer("prune_mask", keep)

    def forward(self, x):
        return self._conv_forward(x, self.weight * self.prune_mask, self.bias)


def conv_output_size(size: int, kernel: int, padding: int, pool: int, pool_stride: int, pool_padding: int) -> int:
    """Side of the map after a stride-1 convolution and a pooling."""
    conv = size + 2 * padding - kernel + 1
    return (conv + 2 * pool_padding - pool) // pool_stride + 1


class CNN(nn.Module):
    """Convolutions, then the fully connected part of `fcLayers` (paper Tables 8 and 9), from config.

    activation[0] on the input; each convolution i: conv -> activation[1 + i] ->
    pool; flatten -> Dropout(dropProb[0]) -> for each fc layer j: Linear ->
    activation[1 + n_conv + j], with Dropout(dropProb[1 + j]) between fc layers.
    dropProb[-1] is the output mask of the target, as for the MLP. The flattened
    size follows from the input shape; nothing depends on the dataset's name.
    """

    def __init__(self, in_shape, channels, kernels, paddings, pool_type: str, pool: tuple[int, int, int],
                 fc_sizes, activations, drop_probs, prune: float = 0.0):
        super().__init__()
        n_conv = len(channels) - 1
        side = in_shape[1]
        layers: list[nn.Module] = [ACTIVATIONS[activations[0]]()]
        self.convs = []
        for i in range(n_conv):
            conv = PrunedConv2d(channels[i], channels[i + 1], kernels[i], padding=paddings[i], prune=prune)
            pool_layer = (nn.MaxPool2d if pool_type == "max" else nn.AvgPool2d)(*pool)
            layers += [conv, ACTIVATIONS[activations[1 + i]](), pool_layer]
            self.convs.append(conv)
            side = conv_output_size(side, kernels[i], paddings[i], *pool)
        sizes = [channels[-1] * side * side, *fc_sizes]
        layers.append(nn.Flatten())
        self.linears = []
        for j, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            if drop_probs[j] > 0:
                layers.append(Dropout(drop_probs[j]))
            linear = nn.Linear(n_in, n_out)  # Adam or torch's SGD through torch.optim
            layers += [linear, ACTIVATIONS[activations[1 + n_conv + j]]()]
            self.linears.append(linear)
        self.net = nn.Sequential(*layers)
        self.convs, self.linears = tuple(self.convs), tuple(self.linears)  # registered once, under net.*
        self.flat_size = sizes[0]

    @classmethod
    def from_config(cls, cfg, in_shape) -> "CNN":
        channels = cfg.C_list or (in_shape[0], *DEFAULT_CHANNELS)
        return cls(in_shape, channels, cfg.kernel_sizes, cfg.paddings, cfg.pool_type,
                   (cfg.pool_size, cfg.pool_stride, cfg.pool_padding), cfg.fcLayers, cfg.activation_function,
                   cfg.dropProb, cfg.cnn_prune)

    def forward(self, x):
        return self.net(x)

    def drive(self, x):
        """The output layer's drive (before the output activation), differentiable in x."""
        return self.net[:-1](x)

    def layer_parameters(self):
        """Parameters per layer (convolutions, then fully connected), for per-layer learning rates."""
        return [list(layer.parameters()) for layer in (*self.convs, *self.linears)]


# Channels of the convolutions when the config gives no C_list (the original code's, paper Table 8).
DEFAULT_CHANNELS = (32, 128)


def build(cfg) -> nn.Module:
    """The feed-forward network a config describes: a CNN (`cnn: true`, sized from the dataset's images) or an MLP."""
    if cfg.cnn:
        from funcs.data import spec  # the image shape of the dataset
        return CNN.from_config(cfg, spec(cfg.dataset).shape)
    return MLP.from_config(cfg)


def check_input(cfg, shape) -> None:
    """A CNN against the input shape (C, H, W): its channels, and a map that does not vanish."""
    if not cfg.cnn:
        return
    if cfg.C_list and cfg.C_list[0] != shape[0]:
        raise UserError(f"config key 'C_list': {cfg.C_list[0]} input channels, but {cfg.dataset} images have "
                        f"{shape[0]}")
    if 2 * cfg.pool_padding > cfg.pool_size:  # torch's max pooling refuses it, but only at the first batch
        raise UserError(f"config key 'pool_padding': {cfg.pool_padding} is more than half of pool_size "
                        f"{cfg.pool_size}")
    side = shape[1]
    for kernel, padding in zip(cfg.kernel_sizes, cfg.paddings):
        side = conv_output_size(side, kernel, padding, cfg.pool_size, cfg.pool_stride, cfg.pool_padding)
        if side < 1:
            raise UserError(f"config key 'kernel_sizes': the {shape[1]}x{shape[2]} input shrinks to nothing "
                            f"through the convolutions and poolings")
