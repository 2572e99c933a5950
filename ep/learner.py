"""Equilibrium propagation as a learner: the output is the free phase, learning is the nudged phase and EP's update."""
from __future__ import annotations

import torch

from ep.network import EPNetwork
from ep.small_world import SmallWorldNetwork, realised_share
from funcs import dropout
from funcs.optim import make_optimizer, set_lr_factor


class EPLearner:
    """Free phase of T steps -> output; nudged phase of Kmax steps towards the target -> weight update.

    Dropout masks (one per entry of fcLayers, input included) are drawn once per
    mini-batch and held through both phases. The update is EP's gradient
    estimate applied by a torch optimizer (SGD or Adam, one rate per layer).
    One-sided estimates nudge with +beta or -beta, the sign drawn at random each
    mini-batch (as the original code: the bias of the two signs cancels on
    average); symmetric estimates use both.

    With persistent states (Gammell et al.'s persistent particles) each training
    example's free phase starts where its previous one ended instead of at zero:
    the loop says which examples a mini-batch holds (`examples`), and their states
    are kept, one row per example, in the checkpoint too. The examples relax
    independently, so this equals their per-fixed-batch particles whatever the
    batches. Evaluation (`infer`) still starts at zero.
    """

    def __init__(self, net: EPNetwork, lrs, optimizer: str, drop_probs, beta: float, free_steps: int,
                 nudged_steps: int, error_estimate: str = "one-sided", random_sign: bool = True,
                 log_update_sizes: bool = False, persistent_states: bool = False, readout_state: str = "nudged"):
        self.net, self.drop_probs, self.lrs = net, tuple(drop_probs), tuple(lrs)
        self.persistent_states, self.readout_state = persistent_states, readout_state
        self._kept = None  # with persistent_states: per state layer, (n examples, size), each one's last free state
        self._idx = None  # the examples of the next mini-batch, if told
        self.beta, self.free_steps, self.nudged_steps = beta, free_steps, nudged_steps
        self.symmetric, self.random_sign = error_estimate == "symmetric", random_sign
        self.optimizer_name, self.error_estimate = optimizer, error_estimate
        self.optimizer = make_optimizer(net.layer_parameters(), net.group_lrs(lrs), optimizer)
        self._batch = None  # (x, masks, free state) of the mini-batch between output and learn
        # Per-layer update size ||dW_l|| / sqrt(connections_l), dW_l EP's estimate before the learning rate, summed
        # over the epoch's mini-batches (Gammell et al.'s Figure 3: how far it vanishes in deep layers), if asked.
        self.log_update_sizes = log_update_sizes
        self._sizes, self._batches = None, 0
        # sqrt(connections) of each layer: fixed by the wiring, so counted once, not in every mini-batch
        self._root_connections = [n ** 0.5 for n in net.connections()] if log_update_sizes else []

    def sibling(self, lrs) -> "EPLearner":
        """A learner of the same network with its own optimizer and rates (semi-supervised phases)."""
        return EPLearner(self.net, lrs, self.optimizer_name, self.drop_probs, self.beta, self.free_steps,
                         self.nudged_steps, self.error_estimate, self.random_sign, self.log_update_sizes,
                         self.persistent_states, self.readout_state)

    def examples(self, idx: torch.Tensor, n: int) -> None:
        """The next mini-batch holds examples idx of an n-example split (kept states are per split size)."""
        if not self.persistent_states:
            return
        if self._kept is None or self._kept[0].shape[0] != n:
            weight = self.net.layers[0].weight
            self._kept = [weight.new_zeros(n, size) for size in self.net.state_sizes]
        self._idx = idx

    def _masks(self, batch: int, device):
        return [dropout.mask((batch, n), p, device=device) for n, p in zip(self.net.sizes, self.drop_probs)]

    def output(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Free phase under this mini-batch's dropout; the output the target is built from, and its mask.

        With a softmax read-out the target is chosen on the read-out's drive
        (pre-softmax), as the original code.
        """
        x = x.flatten(1)
        masks = self._masks(x.shape[0], x.device)
        if masks[0] is not None:
            x = x * masks[0]
        x = self.net.clamp_input(x)  # with the input's drive, computed once for both phases
        if self._idx is None:
            free = self.net.free_phase(x, self.free_steps, masks[1:])
        else:
            free = self._persistent_free_phase(x, masks[1:])
        self._batch = (x, masks, free)
        # (a softmax read-out has no dropout: the config refuses it, so masks[-1] is None then)
        out = self.net.readout(free) if self.net.softmax_readout else free[-1]  # read only by the target
        return out, masks[-1]

    @torch.no_grad()
    def _persistent_free_phase(self, x, masks) -> list[torch.Tensor]:
        """The free phase from the told examples' kept states, which it then replaces."""
        idx, self._idx = self._idx, None
        free = self.net.relax([kept[idx] for kept in self._kept], x, self.free_steps, masks)
        for kept, state in zip(self._kept, free):
            kept[idx] = state
        return free

    def _beta(self) -> float:
        if self.random_sign and not self.symmetric and torch.rand(()) < 0.5:
            return -self.beta
        return self.beta

    def learn(self, d: torch.Tensor) -> torch.Tensor:
        """Nudged phase(s) towards d from the free state, then one optimizer step on EP's estimate."""
        x, masks, free = self._batch
        self._batch = None
        net, steps = self.net, self.nudged_steps
        if self.symmetric:
            plus = net.nudged_phase(free, x, d, self.beta, steps, masks[1:])
            minus = net.nudged_phase(free, x, d, -self.beta, steps, masks[1:])
            plus_minus_gap, nudged = (plus, minus, 2 * self.beta), (plus, minus)
        else:
            beta = self._beta()
            nudged = (net.nudged_phase(free, x, d, beta, steps, masks[1:]),)
            plus_minus_gap = (nudged[0], free, beta)
        # the state(s) where a softmax read-out takes its gradient: the nudged one(s), as the original code, or free
        at = nudged if self.readout_state == "nudged" else (free,)
        grads = net.ep_gradients(x, *plus_minus_gap, at[0], d)
        if len(at) == 2 and net.softmax_readout:  # symmetric: the mean over both nudged states
            grads[-2:] = [(g + h) / 2 for g, h in zip(grads[-2:], net.readout_gradients(at[1], d))]
        for p, g in zip(net.parameters(), grads):
            p.grad = g
        self.optimizer.step()
        if self.log_update_sizes:
            self._record_update_sizes(grads)
        return self._loss(free, d)

    @torch.no_grad()
    def _record_update_sizes(self, grads) -> None:
        sizes = torch.stack([grads[2 * j].norm() / root for j, root in enumerate(self._root_connections)])
        self._sizes = sizes if self._sizes is None else self._sizes + sizes
        self._batches += 1

    def epoch_metrics(self) -> dict[str, float]:
        """The epoch's mean per-layer update size (with log_update_sizes) and the share of rewired connections."""
        out = {"rewired_share": realised_share(self.net)} if isinstance(self.net, SmallWorldNetwork) else {}
        if self._sizes is not None:
            mean = (self._sizes / self._batches).tolist()  # one sync per epoch
            out.update({f"update_size_{j + 1}": v for j, v in enumerate(mean)})
            self._sizes, self._batches = None, 0
        return out

    @torch.no_grad()
    def _loss(self, free, d) -> torch.Tensor:
        """The cost at the free state: mean squared error, or the read-out's cross-entropy."""
        if self.net.softmax_readout:
            return -(d * torch.log_softmax(self.net.readout(free), dim=1)).sum(1).mean()
        return ((free[-1] - d) ** 2).mean()

    @torch.no_grad()
    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """Evaluation output: the free phase without dropout."""
        return self.net.output(self.net.free_phase(x.flatten(1), self.free_steps))

    def set_lr_factor(self, factor: float) -> None:
        set_lr_factor(self.optimizer, factor)

    def state_dict(self) -> dict:
        state = {"model": self.net.state_dict(), "optimizer": self.optimizer.state_dict()}
        return state if self._kept is None else {**state, "persistent_states": self._kept}

    def load_state_dict(self, state: dict) -> None:
        if self.persistent_states and state.get("persistent_states") is not None:
            self._kept = [kept.to(self.net.layers[0].weight.device) for kept in state["persistent_states"]]
        before = [id(p) for p in self.net.parameters()]
        self.net.load_state_dict(state["model"])
        if [id(p) for p in self.net.parameters()] == before:
            self.optimizer.load_state_dict(state["optimizer"])
            return
        # The state held another wiring (a small-world network trained under another seed, read out here): the
        # network rebuilt its skip blocks, so the optimizer and the connection counts follow them. (A resumed run
        # has its checkpoint's seed, hence its wiring: this happens to read-outs only, which train nothing.)
        self.optimizer = make_optimizer(self.net.layer_parameters(), self.net.group_lrs(self.lrs), self.optimizer_name)
        self._root_connections = [n ** 0.5 for n in self.net.connections()] if self.log_update_sizes else []


TOPOLOGIES = {"layered": EPNetwork, "small_world": SmallWorldNetwork}


def build(cfg, device) -> EPLearner:
    """The EP learner a config asks for, on `device`."""
    net = TOPOLOGIES[cfg.topology].from_config(cfg).to(device)
    if cfg.compile:
        net.relax = torch.compile(net.relax)
    return EPLearner(net, cfg.lr, cfg.optimizer, cfg.drop_probs, cfg.beta, cfg.T, cfg.Kmax, cfg.error_estimate,
                     random_sign=cfg.beta_sign == "random", log_update_sizes=cfg.log_update_sizes,
                     persistent_states=cfg.persistent_states, readout_state=cfg.readout_state)
