"""EP on a layer-skipping ("small-world") topology (Gammell, Buckley, Nam and McCaughan, Front. Comput. Neurosci. 2021).

Start from the layered chain of ep/network.py and rewire each adjacent-layer
connection with probability p: the connection is removed and a random
layer-skipping one is added, between two neurons whose layers (input included)
are at least two apart, never inside a layer (their `SW_no_intra`). Each added
connection is one symmetric weight, used bottom-up and top-down alike.

The network keeps the chain's per-layer blocks (the removed connections are
zero and never learn: their gradient is masked) plus one block per pair of
layers (a, b), b >= a + 2, that received connections, masked to those. The
energy gains one term per skip block,

    E = E_chain - sum_(a, b) rho(s_b) . ((W_ab * M_ab) rho(s_a)),        s_0 = x,

so ep/energy.py's autograd step and EP gradient cover it unchanged; `_drives`
(the per-layer step's) and `ep_gradients` below add the skip blocks' terms to
the chain's hand-derived fast path (and the dense step's matrix gains the skip
blocks, `state_blocks`), and tests/test_small_world.py holds them to each
other. In the per-layer step the skip blocks between dynamic layers act as one
sparse matrix where that costs less (`skip_operator`, `sparse`):
they hold a share p of the chain's connections spread over blocks as large as
the layers they join (four 100 x 2000 blocks with about 1 % of their entries
in 784-100x5-2000), so a dense product per block would do some fifty times the
work.

The wiring is drawn from `seed`, and it is part of the network's state: the
masks and the layers (a, b) of every skip block (`skip_layers`) are saved with
the weights, and loading a state rebuilds the blocks it describes, so a network
read out under another seed (train_class_layer) is the one that was trained.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import nn

from ep.energy import ClampedInput
from ep.network import STEP_OVERHEAD_MACS, DenseInput, EPNetwork

# A multiply-add of the sparse skip product costs about this many of a dense product's, and the product about
# SPARSE_OVERHEAD_OPS operations' overhead beyond one sum per layer (timed quietly, 1 thread, ms a step at batch 20 /
# 1,000, the skip drives as one sparse product against a dense product per skip block: 784-100x5-2000 0.57 / 31
# against 1.5 / 56; 784-500x3-10 0.83 / 35 against 0.94 / 40; 784-100x5-10 0.22 / 4.2 against 0.33 / 5.9, where
# the dense step takes 0.16 / 6.1).
SPARSE_MAC_COST = 10
SPARSE_OVERHEAD_OPS = 12
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")  # stable for what it does here


@dataclass(frozen=True)
class SkipInput(ClampedInput):
    """A clamped input with this mini-batch's `skip_operator` (None where no skip block joins two dynamic layers)."""
    skip: torch.Tensor | None = None


def rewire(sizes, p: float, generator: torch.Generator):
    """Which connections exist after rewiring: (adjacent masks, {(a, b): skip mask}, realised share rewired).

    sizes: the layer sizes, input first. Each of the adjacent blocks' connections is removed with probability
    p; as many new connections are drawn uniformly, without repeats, among all pairs of neurons in layers a
    and b >= a + 2. Masks are float 0/1 tensors of the blocks' weight shapes (n_b, n_a).
    """
    adjacent = [(torch.rand(b, a, generator=generator) >= p).float() for a, b in zip(sizes[:-1], sizes[1:])]
    removed = sum(int((m == 0).sum()) for m in adjacent)
    pairs = [(a, b) for a in range(len(sizes)) for b in range(a + 2, len(sizes))]
    counts = [sizes[a] * sizes[b] for a, b in pairs]
    total = sum(counts)
    if removed > total:
        raise ValueError(f"{removed} connections to rewire but only {total} layer-skipping ones exist")
    picks = torch.randperm(total, generator=generator)[:removed]
    skips, start = {}, 0
    for (a, b), count in zip(pairs, counts):
        mine = picks[(picks >= start) & (picks < start + count)] - start
        if mine.numel():
            mask = torch.zeros(sizes[b] * sizes[a])
            mask[mine] = 1.0
            skips[(a, b)] = mask.view(sizes[b], sizes[a])
        start += count
    n_adjacent = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    return adjacent, skips, removed / n_adjacent


class SmallWorldNetwork(EPNetwork):
    """The chain plus masked layer-skipping blocks; see the module docstring. No softmax read-out."""

    def __init__(self, sizes, p: float, skip_magnitude: float, skip_lr: str = "mean", seed: int = 0, **chain):
        super().__init__(sizes, **chain)
        if self.softmax_readout:
            raise ValueError("a small-world network has no softmax read-out")
        adjacent, skips, self.rewired_share = rewire(self.sizes, p, torch.Generator().manual_seed(seed))
        self.skip_lr = skip_lr
        self.sparse = None  # the per-layer step's skip drives as one sparse product; None: where it costs less
        for j, mask in enumerate(adjacent):
            self.register_buffer(f"adjacent_mask_{j}", mask)
        self.skip_pairs: tuple[tuple[int, int], ...] = ()
        self._wire(skips)
        self._count_skip_connections()
        gen = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for w, mask in zip(self.skips, skips.values()):
                w.copy_((torch.rand(mask.shape, generator=gen) * 2 - 1) * skip_magnitude * mask)
            for j, layer in enumerate(self.layers):
                layer.weight.mul_(self.adjacent_mask(j))

    def _wire(self, skips: dict) -> None:
        """Make the skip blocks {(a, b): mask}: their masks, their layers (buffer `skip_layers`, (k, 2)) and zero
        weights, replacing any blocks the network had."""
        ref = self.layers[0].weight
        for i in range(len(self.skip_pairs)):
            delattr(self, f"skip_mask_{i}")
        self.skip_pairs = tuple(skips)
        self._dynamic_skips = tuple((i, (a, b)) for i, (a, b) in enumerate(self.skip_pairs) if a > 0)
        self.register_buffer("skip_layers", torch.tensor(self.skip_pairs, dtype=torch.long, device=ref.device)
                             .view(-1, 2))
        self.skips = nn.ParameterList()
        for i, mask in enumerate(skips.values()):
            self.register_buffer(f"skip_mask_{i}", mask.to(ref))
            self.skips.append(nn.Parameter(torch.zeros_like(mask, dtype=ref.dtype, device=ref.device)))

    def _count_skip_connections(self) -> None:
        """The connections of the skip blocks between dynamic layers (`sparse_skip_macs`): fixed by the wiring, so
        counted when it is drawn or loaded, not in each mini-batch's cost estimate (a device sync per mask)."""
        self.dynamic_skip_connections = sum(int(self.skip_mask(i).sum()) for i, _ in self.dynamic_skips())

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Load weights together with the wiring they were trained on: when the state's skip blocks (`skip_layers`
        and their masks) differ from this network's (built from another seed), the blocks are rebuilt as the
        state has them first. A state saved before the wiring was (no `skip_layers`) keeps this network's."""
        state = dict(state_dict)
        saved = state.setdefault("skip_layers", self.skip_layers)
        pairs = tuple(tuple(pair) for pair in saved.tolist())
        if pairs != self.skip_pairs:
            self._wire({pair: state[f"skip_mask_{i}"] for i, pair in enumerate(pairs)})
        result = super().load_state_dict(state, strict, assign)
        self._count_skip_connections()
        removed = sum(int((self.adjacent_mask(j) == 0).sum()) for j in range(len(self.layers)))
        self.rewired_share = removed / sum(layer.weight.numel() for layer in self.layers)
        return result

    @classmethod
    def from_config(cls, cfg) -> "SmallWorldNetwork":
        return cls(cfg.fcLayers, cfg.rewire_p, cfg.skip_magnitude, cfg.skip_lr, cfg.seed,
                   activation=cfg.activation_function, dt=cfg.dt, clamped=cfg.clamped, xavier_gain=cfg.xavier_gain,
                   nudge_form=cfg.nudge_form)

    def adjacent_mask(self, j: int) -> torch.Tensor:
        return getattr(self, f"adjacent_mask_{j}")

    def skip_mask(self, i: int) -> torch.Tensor:
        return getattr(self, f"skip_mask_{i}")

    def layer_parameters(self):
        """The chain's groups, then one group per skip block."""
        return super().layer_parameters() + [[w] for w in self.skips]

    def group_lrs(self, lrs) -> list[float]:
        """A skip block (a, b) spans the chain's layers a .. b - 1: it takes the mean, min or max of their rates."""
        pick = {"mean": lambda r: sum(r) / len(r), "min": min, "max": max}[self.skip_lr]
        return list(lrs) + [pick(lrs[a:b]) for a, b in self.skip_pairs]

    def connections(self) -> list[int]:
        return [int(self.adjacent_mask(j).sum()) for j in range(len(self.layers))]

    # --- the energy: the chain's plus the skip terms ----------------------------------------------

    def energy(self, s, x, d=None, beta: float = 0.0) -> torch.Tensor:
        x = x.x if isinstance(x, ClampedInput) else x
        r = [self.rho(x)] + [self.rho(si) for si in s]
        e = super().energy(s, x, d, beta)
        for w, (a, b) in zip(self.skips, self.skip_pairs):
            e = e - (r[b] * (r[a] @ w.t())).sum(1)
        return e

    # --- the fast path: the chain's, plus the skip blocks ------------------------------------------

    def clamp_input(self, x) -> ClampedInput:
        """The chain's clamped input, with the skip operator where the step goes per layer."""
        inp = super().clamp_input(x)
        return inp if isinstance(inp, (DenseInput, SkipInput)) else self._with_skip_operator(inp)

    def _with_skip_operator(self, inp: ClampedInput) -> SkipInput:
        """inp with the input's skip drives (if it lacks them) and the sparse skip operator where it pays."""
        if not inp.extra and any(a == 0 for a, _ in self.skip_pairs):  # a ClampedInput built elsewhere
            inp = ClampedInput(inp.x, inp.drive, self.input_extra(inp.x))
        sparse = self.sparse if self.sparse is not None else \
            self.sparse_skip_macs(inp.x.shape[0]) < self.dense_skip_macs(inp.x.shape[0])
        return SkipInput(inp.x, inp.drive, inp.extra, self.skip_operator() if sparse else None)

    def dynamic_skips(self) -> tuple:
        """(index, (a, b)) of each skip block between two dynamic layers (a > 0: not from the input); listed when
        the blocks are made (`_wire`), not in every step."""
        return self._dynamic_skips

    def skip_operator(self) -> torch.Tensor | None:
        """The skip blocks between dynamic layers as one sparse symmetric (N, N) matrix S over the states side by
        side (N their total size): weight W[q, p] of block (a, b), from neuron p of layer a to neuron q of layer b,
        sits at (p's column, q's column) and (q's column, p's column), so that rho(s) S holds every skip drive.
        Built once per mini-batch (the weights move only between mini-batches); None if there is no such block."""
        columns = self.state_columns()
        rows, cols, values = [], [], []
        for i, (a, b) in self.dynamic_skips():
            q, p = self.skip_mask(i).nonzero(as_tuple=True)
            v = self.skips[i].detach()[q, p]
            p, q = p + columns[a - 1].start, q + columns[b - 1].start
            rows += [p, q]
            cols += [q, p]
            values += [v, v]
        if not rows:
            return None
        n = columns[-1].stop
        return torch.sparse_coo_tensor(torch.stack([torch.cat(rows), torch.cat(cols)]), torch.cat(values),
                                       (n, n), check_invariants=False).coalesce().to_sparse_csr()

    def dense_skip_macs(self, batch: int) -> int:
        """Estimated cost of the skip drives as one dense product per block and direction (see
        `per_layer_step_macs`)."""
        blocks = self.dynamic_skips()
        return batch * 2 * sum(self.skips[i].numel() for i, _ in blocks) + STEP_OVERHEAD_MACS * 2 * len(blocks)

    def sparse_skip_macs(self, batch: int) -> int:
        """... as the sparse product: its stored entries, its operations and one sum per layer."""
        stored = 2 * self.dynamic_skip_connections  # each connection both ways
        return batch * SPARSE_MAC_COST * stored + STEP_OVERHEAD_MACS * (SPARSE_OVERHEAD_OPS + self.n_states)

    def per_layer_step_macs(self, batch: int) -> int:
        """The chain's, plus the skip drives the cheaper way."""
        skips = min(self.dense_skip_macs(batch), self.sparse_skip_macs(batch)) if self.dynamic_skips() else 0
        return super().per_layer_step_macs(batch) + skips

    def input_extra(self, x) -> tuple:
        """The input's drive of every layer it skips to, computed once per mini-batch."""
        rx = self.rho(x)
        return tuple((b, rx @ w.t()) for w, (a, b) in zip(self.skips, self.skip_pairs) if a == 0)

    def state_blocks(self):
        """The chain's blocks and every skip block between two dynamic layers."""
        return super().state_blocks() + [(a, b, self.skips[i]) for i, (a, b) in self.dynamic_skips()]

    def _drives(self, s, inp: ClampedInput):
        drives, r = super()._drives(s, inp)
        if not isinstance(inp, SkipInput):
            inp = self._with_skip_operator(inp)
        for b, drive in inp.extra:
            drives[b - 1] = drives[b - 1] + drive
        if inp.skip is not None:  # rho(s) S = (S rho(s)^T)^T, S symmetric: each skip weight both ways
            skip = (inp.skip @ torch.cat(r, 1).t()).t().split(self.state_sizes, 1)
            return [drive + k for drive, k in zip(drives, skip)], r
        for i, (a, b) in self.dynamic_skips():  # the same weight bottom-up and top-down
            drives[b - 1] = torch.addmm(drives[b - 1], r[a - 1], self.skips[i].t())
            drives[a - 1] = torch.addmm(drives[a - 1], r[b - 1], self.skips[i])
        return drives, r

    @torch.no_grad()
    def ep_gradients(self, x, plus, minus, beta_gap: float, free=None, d=None) -> list[torch.Tensor]:
        grads = super().ep_gradients(x, plus, minus, beta_gap, free, d)[:2 * len(self.layers)]
        x = x.x if isinstance(x, ClampedInput) else x
        scale = 1.0 / (beta_gap * x.shape[0])
        rx = self.rho(x)  # the clamped input, the same in both states
        up_plus, up_minus = [rx] + [self.act(si) for si in plus], [rx] + [self.act(si) for si in minus]
        for a, b in self.skip_pairs:
            grads.append((up_minus[b].t() @ up_minus[a] - up_plus[b].t() @ up_plus[a]).mul_(scale))
        return self.mask_gradients(grads)

    def autograd_ep_gradients(self, x, plus, minus, beta_gap: float, free=None, d=None) -> list[torch.Tensor]:
        return self.mask_gradients(super().autograd_ep_gradients(x, plus, minus, beta_gap, free, d))

    def mask_gradients(self, grads: list[torch.Tensor]) -> list[torch.Tensor]:
        """Removed connections never learn: their entries of every weight gradient are zero."""
        out = list(grads)
        for j in range(len(self.layers)):
            out[2 * j] = out[2 * j] * self.adjacent_mask(j)
        for i in range(len(self.skips)):
            k = 2 * len(self.layers) + i
            out[k] = out[k] * self.skip_mask(i)
        return out


def realised_share(net) -> float:
    """The share of adjacent connections rewired (0 for a layered network)."""
    return getattr(net, "rewired_share", 0.0)
