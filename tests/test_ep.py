"""Equilibrium propagation: the dynamics, EP's gradient estimate against autograd, and the learner's mechanics."""
from __future__ import annotations

import math

import pytest
import torch

from ep.learner import EPLearner
from ep.network import EPNetwork

SIZES = [10, 16, 12, 6]  # input, two hidden layers, output: a few dozen neurons


def small_net(activation="sigmoid", clamped=False, softmax_readout=False, sizes=SIZES, seed=0, **kw):
    """A float64 network whose states sit inside their activation's range (so the gradient is informative)."""
    torch.manual_seed(seed)
    net = EPNetwork(sizes, activation, dt=0.2, clamped=clamped, softmax_readout=softmax_readout, **kw).double()
    with torch.no_grad():
        for layer in net.layers:
            layer.weight.mul_(2.0)
            layer.bias.uniform_(0.05, 0.3)
    return net


def batch(sizes=SIZES, n=3, seed=1):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, sizes[0], generator=gen, dtype=torch.float64)
    d = torch.rand(n, sizes[-1], generator=gen, dtype=torch.float64)
    return x, d


# --- references from the network's energy alone (ep.energy) ---------------------------------------

def bptt_gradient(net, x, d, steps=400):
    """dC/dtheta at the free equilibrium by autograd through `steps` unrolled steps s <- clamp(s - dt dE/ds).

    dE/ds comes from autograd of `net.energy`, not from the network's own step,
    so this checks the hand-written dynamics and update rule together.
    """
    params = list(net.parameters())
    s = [x.new_zeros(x.shape[0], n) for n in net.state_sizes]
    for _ in range(steps):
        s = [si.requires_grad_() if not si.requires_grad else si for si in s]
        grads = torch.autograd.grad(net.energy(s, x).sum(), s, create_graph=True)
        s = [si - net.dt * g for si, g in zip(s, grads)]
        if net.clamped:
            s = [si.clamp(0, 1) for si in s]
    return torch.autograd.grad(net.cost(s, d).mean(), params)


def cosine(a, b):
    return torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0).item()


# --- the dynamics -----------------------------------------------------------------------------

@pytest.mark.parametrize("activation,clamped", [("sigmoid", False), ("hardsigm", True)])
def test_free_phase_reaches_a_fixed_point(activation, clamped):
    net = small_net(activation, clamped)
    x, _ = batch()
    s = net.free_phase(x, 400)
    before = [si.clone() for si in s]
    net.step(s, x)
    change = max((a - b).abs().max().item() for a, b in zip(s, before))
    assert change < 1e-8
    assert all(si.abs().max() > 0.05 for si in s)  # a non-trivial equilibrium, not all zeros


def test_energy_of_the_chain_by_hand():
    """E = sum s^2 / 2 - sum_j rho(s_{j+1}) . (W_j rho(s_j) + b_j) + beta ||d - s_out||^2 / 2, on a 2-1-1 chain."""
    net = EPNetwork([2, 1, 1], "sigmoid", clamped=False).double()
    with torch.no_grad():
        net.layers[0].weight.copy_(torch.tensor([[0.5, -1.0]]))
        net.layers[0].bias.fill_(0.1)
        net.layers[1].weight.fill_(2.0)
        net.layers[1].bias.fill_(-0.3)
    x = torch.tensor([[0.2, 0.7]], dtype=torch.float64)
    s = [torch.tensor([[0.4]], dtype=torch.float64), torch.tensor([[0.9]], dtype=torch.float64)]
    d = torch.tensor([[1.0]], dtype=torch.float64)
    sig = lambda v: 1 / (1 + math.exp(-v))
    h = 0.5 * sig(0.2) - 1.0 * sig(0.7) + 0.1
    e = 0.5 * (0.4 ** 2 + 0.9 ** 2) - sig(0.4) * h - sig(0.9) * (2.0 * sig(0.4) - 0.3)
    assert net.energy(s, x).item() == pytest.approx(e, abs=1e-12)
    assert net.energy(s, x, d, 0.5).item() == pytest.approx(e + 0.5 * 0.5 * 0.1 ** 2, abs=1e-12)


CASES = {"sigmoid": dict(activation="sigmoid"), "hardsigm box": dict(activation="hardsigm", clamped=True),
         "hardsigm, no box": dict(activation="hardsigm", clamped=True, box_shortcut=False),
         "softmax read-out": dict(activation="sigmoid", softmax_readout=True)}


@pytest.mark.parametrize("case", CASES)
def test_fast_chain_step_and_update_equal_the_generic_ones_from_the_energy(case):
    """The hand-derived step and EP gradient of the chain equal autograd of its energy (float64, within 1e-6):
    free and nudged phases under dropout masks, one-sided and symmetric estimates."""
    net = small_net(**CASES[case])
    x, d = batch()
    if net.softmax_readout:
        d = torch.softmax(4 * d, dim=1)
    masks = [(torch.rand(3, 16, generator=torch.Generator().manual_seed(2)) > 0.3).double(), None, None][
        :net.n_states]

    def phases(step):
        net.step = step  # an instance attribute: the fast method or the generic one
        free = net.free_phase(x, 30, masks)
        plus = net.nudged_phase(free, x, d, 0.3, 10, masks)
        minus = net.nudged_phase(free, x, d, -0.3, 10, masks)
        del net.step
        return free, plus, minus

    fast, generic = phases(net.step), phases(net.autograd_step)
    for a, b in zip(sum(fast, []), sum(generic, [])):
        assert (a - b).abs().max().item() < 1e-6
    free, plus, minus = fast
    for args in ((plus, free, 0.3), (plus, minus, 0.6)):
        hand = net.ep_gradients(x, *args, free, d)
        auto = net.autograd_ep_gradients(x, *args, free, d)
        assert len(hand) == len(auto) == len(list(net.parameters()))
        for h, g in zip(hand, auto):
            assert (h - g).abs().max().item() < 1e-6
        assert max(g.abs().max().item() for g in auto) > 1e-3  # not trivially zero


@pytest.mark.parametrize("flag", ["cache_input_drive", "box_shortcut"])
def test_speed_shortcuts_leave_the_states_unchanged(flag):
    """The cached input drive and the hard-sigmoid box step give the same states as the plain step."""
    fast = small_net("hardsigm", clamped=True)
    slow = small_net("hardsigm", clamped=True, **{flag: False})
    assert (fast.box, slow.box) == ((True, False) if flag == "box_shortcut" else (True, True))
    x, d = batch()
    masks = [None, (torch.rand(3, 12) > 0.3).double(), None]
    for net in (fast, slow):
        net.states = net.free_phase(x, 30, masks)
        net.nudged = net.nudged_phase(net.states, x, d, 0.5, 10, masks)
    for a, b in zip(fast.states + fast.nudged, slow.states + slow.nudged):
        assert torch.allclose(a, b, atol=1e-12)


def test_clamping_keeps_states_in_unit_box_and_its_absence_does_not():
    x, _ = batch()
    for clamped in (True, False):
        net = small_net("relu", clamped=clamped)
        with torch.no_grad():
            for layer in net.layers:
                layer.bias.fill_(1.5)  # a drive above 1 everywhere
        s = net.free_phase(x, 50)
        top = max(si.max().item() for si in s)
        assert (top <= 1.0) if clamped else (top > 1.2)


def test_dropped_neurons_stay_at_zero_through_both_phases():
    net = small_net("hardsigm", clamped=True)
    x, d = batch()
    mask = torch.ones(3, 16, dtype=torch.float64)
    mask[:, 3] = 0
    mask[1, 7] = 0
    masks = [mask, None, None]
    free = net.free_phase(x, 40, masks)
    nudged = net.nudged_phase(free, x, d, 0.3, 20, masks)
    for s in (free, nudged):
        assert torch.equal(s[0] * (1 - mask), torch.zeros_like(s[0]))
    assert free[0][:, 4].abs().sum() > 0


# --- EP's estimate against the true gradient ---------------------------------------------------

@pytest.mark.parametrize("activation,clamped,readout", [("sigmoid", False, False), ("hardsigm", True, False),
                                                        ("sigmoid", False, True)])
def test_ep_update_agrees_with_gradient_at_free_equilibrium(activation, clamped, readout):
    """The core property of EP: with a small beta, -update / learning rate is dC/dtheta, for every layer."""
    net = small_net(activation, clamped, softmax_readout=readout)
    x, d = batch()
    if readout:
        d = torch.softmax(4 * d, dim=1)
    true = bptt_gradient(net, x, d)
    free = net.free_phase(x, 400)
    for beta in (1e-3, -1e-3):  # either sign of the one-sided estimate
        nudged = net.nudged_phase(free, x, d, beta, 400)
        est = net.ep_gradients(x, nudged, free, beta, free, d)
        assert len(est) == len(true) == 2 * len(net.layers)
        for e, t in zip(est, true):
            assert t.norm() > 1e-4
            assert cosine(e, t) > 0.99
            assert e.norm().item() == pytest.approx(t.norm().item(), rel=0.05)


def test_symmetric_estimate_has_smaller_bias_than_one_sided():
    """One-sided EP is off by O(beta), symmetric by O(beta^2) (here 0.093 against 0.010 at beta 0.1)."""
    net = small_net("sigmoid")
    x, d = batch()
    true = torch.cat([g.flatten() for g in bptt_gradient(net, x, d)])
    free = net.free_phase(x, 400)
    beta = 0.1
    plus = net.nudged_phase(free, x, d, beta, 400)
    minus = net.nudged_phase(free, x, d, -beta, 400)
    one = torch.cat([g.flatten() for g in net.ep_gradients(x, plus, free, beta)])
    sym = torch.cat([g.flatten() for g in net.ep_gradients(x, plus, minus, 2 * beta)])
    err_one, err_sym = (one - true).norm() / true.norm(), (sym - true).norm() / true.norm()
    assert err_sym < err_one / 5
    assert err_sym < 0.02


# --- the learner ----------------------------------------------------------------------------------

def learner_for(net, estimate="one-sided", drop=(0.0, 0.0, 0.0, 0.0), lrs=(0.5, 0.3, 0.2), random_sign=True):
    return EPLearner(net, lrs, "SGD", drop, beta=0.4, free_steps=30, nudged_steps=10,
                     error_estimate=estimate, random_sign=random_sign)


@pytest.mark.parametrize("estimate", ["one-sided", "symmetric"])
def test_learner_step_is_sgd_on_the_estimate_with_its_masks_held(estimate, monkeypatch):
    """output + learn = free phase, nudged phase(s) under the same dropout masks, then W <- W - lr * estimate."""
    net = small_net("hardsigm", clamped=True)
    ref = small_net("hardsigm", clamped=True)
    learner = learner_for(net, estimate, drop=(0.2, 0.3, 0.0, 0.25), random_sign=False)
    x, d = batch(n=8)
    torch.manual_seed(3)
    draw = learner._masks

    def masks_dropping_hidden_neuron_5(batch_size, device):
        masks = draw(batch_size, device)
        masks[1][:, 5] = 0  # dropped in every example
        return masks

    learner._masks = masks_dropping_hidden_neuron_5
    y, out_mask = learner.output(x)
    xm, masks, _ = learner._batch
    xm = xm.x
    assert all(m is not None for m in (masks[0], masks[1], masks[3])) and masks[2] is None
    assert out_mask is masks[3] and torch.equal(y * (1 - out_mask), torch.zeros_like(y))
    learner.learn(d * out_mask)
    # by hand, with the masks the learner drew
    free = ref.free_phase(x * masks[0], 30, masks[1:])
    if estimate == "symmetric":
        plus = ref.nudged_phase(free, xm, d * out_mask, 0.4, 10, masks[1:])
        minus = ref.nudged_phase(free, xm, d * out_mask, -0.4, 10, masks[1:])
        grads = ref.ep_gradients(xm, plus, minus, 0.8)
    else:
        plus = ref.nudged_phase(free, xm, d * out_mask, 0.4, 10, masks[1:])
        grads = ref.ep_gradients(xm, plus, free, 0.4)
    lrs = [0.5, 0.5, 0.3, 0.3, 0.2, 0.2]
    for p_new, p_old, g, lr in zip(net.parameters(), ref.parameters(), grads, lrs):
        assert torch.allclose(p_new, p_old - lr * g, atol=1e-12)
    # the hidden neuron dropped in every example does not learn: the nudged phase held its mask
    assert torch.equal(net.layers[0].weight[5], ref.layers[0].weight[5])
    assert torch.equal(net.layers[1].weight[:, 5], ref.layers[1].weight[:, 5])
    assert not torch.equal(net.layers[0].weight[4], ref.layers[0].weight[4])


def test_one_sided_beta_sign_is_random_per_batch():
    net = small_net("hardsigm", clamped=True)
    learner = learner_for(net)
    torch.manual_seed(0)
    signs = {learner._beta() for _ in range(20)}
    assert signs == {0.4, -0.4}
    assert {learner_for(net, random_sign=False)._beta() for _ in range(5)} == {0.4}
    assert {learner_for(net, "symmetric")._beta() for _ in range(5)} == {0.4}


def test_infer_is_the_free_phase_without_dropout():
    net = small_net("hardsigm", clamped=True)
    learner = learner_for(net, drop=(0.5, 0.5, 0.5, 0.5))
    x, _ = batch(n=5)
    assert torch.allclose(learner.infer(x), net.free_phase(x, 30)[-1])
    torch.manual_seed(0)
    y, mask = learner.output(x)
    assert not torch.allclose(y, learner.infer(x))


def test_softmax_readout_outputs_probabilities_and_targets_see_its_drive():
    net = small_net("sigmoid", softmax_readout=True)
    learner = learner_for(net)
    x, d = batch(n=4)
    probs = learner.infer(x)
    assert torch.allclose(probs.sum(1), torch.ones(4, dtype=torch.float64))
    logits, mask = learner.output(x)
    assert mask is None
    assert torch.allclose(torch.softmax(logits, dim=1), probs)
    loss = learner.learn(torch.softmax(4 * d, dim=1))
    assert loss.item() > 0


@pytest.mark.parametrize("estimate", ["one-sided", "symmetric"])
@pytest.mark.parametrize("state", ["free", "nudged"])
def test_softmax_readout_learns_the_cross_entropy_gradient_at_the_chosen_state(estimate, state):
    """readout_state: the read-out's update is SGD on autograd's cross-entropy gradient at the free state, or
    at the nudged state(s) (mean of both with a symmetric estimate); the hidden layers' EP update is unchanged."""
    net, ref = small_net("sigmoid", softmax_readout=True), small_net("sigmoid", softmax_readout=True)
    learner = EPLearner(net, (0.5, 0.3, 0.2), "SGD", (0.0,) * 4, beta=0.4, free_steps=30, nudged_steps=10,
                        error_estimate=estimate, random_sign=False, readout_state=state)
    x, d = batch(n=5)
    d = torch.softmax(4 * d, dim=1)
    learner.output(x)
    learner.learn(d)
    free = ref.free_phase(x, 30)
    nudged = [ref.nudged_phase(free, x, d, b, 10) for b in ((0.4, -0.4) if estimate == "symmetric" else (0.4,))]
    at = [free] if state == "free" else nudged
    readout = ref.layers[-1]

    def cross_entropy(s):
        return -(d * torch.log_softmax(readout(torch.sigmoid(s[-1])), dim=1)).sum(1).mean()

    expected = torch.autograd.grad(sum(cross_entropy(s) for s in at) / len(at), list(readout.parameters()))
    for new, old, g in zip(net.layers[-1].parameters(), readout.parameters(), expected):
        assert torch.allclose(new, old - 0.2 * g, atol=1e-12)
    hidden = ref.ep_gradients(x, nudged[0], nudged[1] if estimate == "symmetric" else free,
                              0.8 if estimate == "symmetric" else 0.4, free, d)
    for new, old, g, lr in zip(list(net.parameters())[:4], list(ref.parameters())[:4], hidden, (0.5, 0.5, 0.3, 0.3)):
        assert torch.allclose(new, old - lr * g, atol=1e-12)
    if state == "nudged":  # the choice matters
        other = torch.autograd.grad(cross_entropy(free), readout.weight)[0]
        assert (other - expected[0]).abs().max() > 1e-6  # well above the 1e-12 the update is checked to


def test_compiled_relaxation_gives_the_eager_states():
    """`compile: true` wraps relax in torch.compile: the same states as eager (float32, CPU)."""
    torch.manual_seed(0)
    eager = EPNetwork([20, 16, 8], "hardsigm", dt=0.2, clamped=True)
    compiled = EPNetwork([20, 16, 8], "hardsigm", dt=0.2, clamped=True)
    compiled.load_state_dict(eager.state_dict())
    compiled.relax = torch.compile(compiled.relax)
    x, d = torch.rand(4, 20), torch.rand(4, 8)
    masks = [(torch.rand(4, 16) > 0.3).float(), None]
    for net in (eager, compiled):
        net.free = net.free_phase(x, 20, masks)
        net.nudged = net.nudged_phase(net.free, x, d, 0.3, 5, masks)
    for a, b in zip(eager.free + eager.nudged, compiled.free + compiled.nudged):
        assert torch.allclose(a, b, atol=1e-6)
