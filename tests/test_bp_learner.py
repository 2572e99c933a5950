"""The BP learner and its MLP (bp/learner.py, funcs/networks.py) and the epoch lr schedule (funcs/loop.py)."""

import math
import types
from pathlib import Path

import pytest
import torch

from bp.learner import BPLearner, build
from funcs.networks import MLP, sgd_in_backward
from funcs import config
from funcs.config import from_dict
from funcs.loop import lr_factor

ORIGINAL_CNN = Path(__file__).resolve().parent / "original_configs/unsupervised_bp/cnn/fashionMnist"
ORIGINAL_SUPERVISED_CNN = ORIGINAL_CNN.parents[2] / "supervised_bp/cnn/fashionMnist"
CFG = {"fcLayers": [6, 5, 4], "lr": [0.1, 0.3], "activation_function": ["x", "relu", "hardsigm"],
       "dropProb": [0.0, 0.0, 0.0], "nudge": 1, "n_class": 2, "epochs": 10}


def two_layer(seed=0):
    torch.manual_seed(seed)
    model = MLP([6, 5, 4], ["x", "relu", "hardsigm"], [0.0, 0.0, 0.0])
    with torch.no_grad():
        model.linears[1].bias.fill_(0.5)  # outputs inside (0, 1) where hardsigm has a gradient
    return model


def reference_forward(x, w0, b0, w1, b1):
    """The same network written out: relu hidden layer, hard sigmoid (clamp to [0, 1]) output."""
    h = torch.relu(x @ w0.T + b0)
    return (h @ w1.T + b1).clamp(0, 1)


def test_sgd_step_equals_manual_update_with_autograd_gradient_and_per_layer_lr():
    model = two_layer()
    params = [p.detach().clone().requires_grad_() for p in
              (model.linears[0].weight, model.linears[0].bias, model.linears[1].weight, model.linears[1].bias)]
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(8, 6, generator=gen)
    d = (torch.rand(8, 4, generator=gen) > 0.5).float()
    loss_ref = ((reference_forward(x, *params) - d) ** 2).mean()
    grads = torch.autograd.grad(loss_ref, params)
    assert all(g.abs().sum() > 0 for g in grads)  # every parameter really moves

    learner = BPLearner(model, [0.1, 0.3], "SGD", "MSE")
    y, mask = learner.output(x)
    assert mask is None
    assert torch.allclose(y, reference_forward(x, *params).detach(), atol=1e-6)
    loss = learner.learn(d)
    assert loss.item() == pytest.approx(loss_ref.item(), rel=1e-6)
    lrs = [0.1, 0.1, 0.3, 0.3]
    new = (model.linears[0].weight, model.linears[0].bias, model.linears[1].weight, model.linears[1].bias)
    for p_new, p_old, g, lr in zip(new, params, grads, lrs):
        assert torch.allclose(p_new.detach(), p_old.detach() - lr * g, atol=1e-6)


def test_output_mask_removes_masked_neurons_from_gradient_of_one_layer_net():
    torch.manual_seed(2)
    model = MLP([6, 4], ["x", "x"], [0.0, 0.0])
    w, b = model.linears[0].weight.detach().clone(), model.linears[0].bias.detach().clone()
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(5, 6, generator=gen)
    d = torch.rand(5, 4, generator=gen)
    lr = 0.2
    learner = BPLearner(model, [lr], "SGD", "MSE", p_out=0.5)
    torch.manual_seed(11)  # a draw that drops neuron 2 in every sample and keeps neuron 1 in some
    y_masked, mask = learner.output(x)
    assert mask[:, 2].sum() == 0 and 0 < mask[:, 1].sum() < 5
    assert torch.equal(y_masked * (1 - mask), torch.zeros_like(y_masked))
    learner.learn(d * mask)
    # by hand: L = mean((m*(xW^T+b) - d)^2) over B*n entries -> dL/dW = 2/(B n) (m*(m*y - d))^T x
    y = x @ w.T + b
    err = mask * (mask * y - d * mask) * 2 / (5 * 4)
    grad_w, grad_b = err.T @ x, err.sum(0)
    assert torch.allclose(model.linears[0].weight.detach(), w - lr * grad_w, atol=1e-6)
    assert torch.allclose(model.linears[0].bias.detach(), b - lr * grad_b, atol=1e-6)
    assert torch.equal(model.linears[0].weight.detach()[2], w[2])  # the dropped neuron did not learn
    assert torch.equal(model.linears[0].bias.detach()[2], b[2])
    assert not torch.allclose(model.linears[0].weight.detach()[1], w[1])  # kept in some samples


def test_set_lr_factor_scales_each_layer_from_its_base_rate():
    sgd = BPLearner(two_layer(), [0.1, 0.3], "SGD", "MSE")
    adam = BPLearner(two_layer(), [0.1, 0.3], "Adam", "MSE")
    for factor in (0.5, 0.2):  # from the base rates, not compounding
        sgd.set_lr_factor(factor)
        adam.set_lr_factor(factor)
        assert sgd.lrs == pytest.approx((0.1 * factor, 0.3 * factor))
        assert [g["lr"] for g in adam.optimizer.param_groups] == pytest.approx([0.1 * factor, 0.3 * factor])


def test_sgd_step_in_backward_matches_torch_sgd_over_many_steps_with_dropout():
    """The fused step (funcs.networks.Dense) against autograd gradients applied by torch.optim.SGD."""
    sizes, acts, drops = [20, 16, 12], ["x", "relu", "hardsigm"], [0.3, 0.2, 0.0]
    torch.manual_seed(3)
    fused = BPLearner(MLP(sizes, acts, drops), [0.5, 0.2], "SGD", "MSE")
    plain = MLP(sizes, acts, drops)
    plain.load_state_dict(fused.model.state_dict())
    for linear in plain.linears:  # the reference runs nn.Linear's own forward: autograd's gradients, not Dense's
        linear.forward = types.MethodType(torch.nn.Linear.forward, linear)
    opt = torch.optim.SGD([{"params": list(l.parameters()), "lr": lr} for l, lr in zip(plain.linears, [0.5, 0.2])])
    gen = torch.Generator().manual_seed(0)
    for step in range(30):
        x = torch.rand(8, 20, generator=gen)
        d = (torch.rand(8, 12, generator=gen) > 0.7).float()
        torch.manual_seed(100 + step)  # the same dropout masks for both
        fused.output(x)
        fused.learn(d)
        torch.manual_seed(100 + step)
        plain.train()
        loss = torch.nn.functional.mse_loss(plain(x), d)
        opt.zero_grad()
        loss.backward()
        opt.step()
    for a, b in zip(fused.model.parameters(), plain.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
        assert a.grad is None  # no weight-sized gradient was materialised


def test_a_backward_pass_outside_the_learner_moves_no_weight():
    """Only the learner's own step applies SGD in the backward; any other backward pass gives gradients."""
    torch.manual_seed(0)
    learner = BPLearner(MLP([6, 5, 4], ["x", "relu", "x"], [0.0, 0.0, 0.0]), [0.5, 0.5], "SGD", "MSE")
    before = [p.detach().clone() for p in learner.model.parameters()]
    x = torch.rand(3, 6)
    learner.model(x).sum().backward()  # e.g. an extraction, or a sibling's optimizer step
    for p, b in zip(learner.model.parameters(), before):
        assert torch.equal(p.detach(), b)
    reference = MLP([6, 5, 4], ["x", "relu", "x"], [0.0, 0.0, 0.0])
    reference.load_state_dict(learner.model.state_dict())
    for linear in reference.linears:
        linear.weight.requires_grad_(False)  # the plain nn.Linear path, for the expected gradients
    w = [l.weight.detach().clone().requires_grad_() for l in reference.linears]
    h = torch.relu(x @ w[0].T + reference.linears[0].bias)
    (h @ w[1].T + reference.linears[1].bias).sum().backward()
    for linear, wi in zip(learner.model.linears, w):
        assert torch.allclose(linear.weight.grad, wi.grad, atol=1e-6)
    with sgd_in_backward(learner.model.linears, [0.5, 0.5]):
        learner.model(x).sum().backward()
    assert not torch.equal(learner.model.linears[0].weight.detach(), before[0])  # inside the block: a step


def test_infer_is_dropout_free_and_output_uses_dropout():
    torch.manual_seed(4)
    model = MLP([6, 5, 4], ["x", "relu", "x"], [0.5, 0.0, 0.0])
    learner = BPLearner(model, [0.1, 0.1], "SGD", "MSE")
    x = torch.randn(64, 6)
    l0, l1 = model.linears
    expected = torch.relu(x @ l0.weight.T + l0.bias) @ l1.weight.T + l1.bias
    assert torch.allclose(learner.infer(x), expected, atol=1e-6)
    assert not torch.allclose(learner.output(x)[0], expected, atol=1e-3)  # input dropout in training mode


# --- the learning-rate schedule of the epochs ---------------------------------------------------

def test_lr_factor_linear_from_one_towards_end_factor():
    cfg = from_dict({**CFG, "epochs": 10, "lr_end_factor": 5e-4})
    assert lr_factor(cfg, 0) == 1.0
    assert lr_factor(cfg, 5) == pytest.approx(1 - (1 - 5e-4) / 2)  # 0.50025
    assert lr_factor(cfg, 9) == pytest.approx(1 - 0.9 * (1 - 5e-4))
    assert lr_factor(cfg, 10) == pytest.approx(5e-4)


def torch_linear_lr(end: float, over: int, epochs: int) -> list[float]:
    """The factors torch's LinearLR(1 -> end, total_iters=over) gives at each epoch, stepped once per epoch."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1, end_factor=end, total_iters=over)
    factors = []
    for _ in range(epochs):
        factors.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return factors


@pytest.mark.parametrize("epochs", [20, 50, 150])
def test_lr_factor_null_is_the_original_cnn_loops_linear_lr(epochs):
    """The original's CNN configs have no lr_end_factor; its CNN loop decays 1 -> 0.01 over 100 epochs whatever
    `epochs` is (0.802 after 20), flat after 100."""
    cfg = config.load(ORIGINAL_CNN, [f"epochs={epochs}"])
    assert cfg.lr_end_factor is None
    assert [lr_factor(cfg, e) for e in range(epochs)] == pytest.approx(torch_linear_lr(0.01, 100, epochs))


def test_an_explicit_end_factor_on_an_unsupervised_cnn_decays_over_its_own_epochs():
    """The presets' 0.802 after 20 epochs is the original's CNN schedule at 20 epochs, and only there."""
    cfg = config.load(ORIGINAL_CNN, ["lr_end_factor=0.802"])
    assert [lr_factor(cfg, e) for e in range(20)] == pytest.approx(torch_linear_lr(0.01, 100, 20))
    longer = config.load(ORIGINAL_CNN, ["lr_end_factor=0.802", "epochs=40"])
    assert [lr_factor(longer, e) for e in range(40)] == pytest.approx(torch_linear_lr(0.802, 40, 40))


@pytest.mark.parametrize("cfg", [from_dict({**CFG, "epochs": 30}),
                                 config.load(ORIGINAL_SUPERVISED_CNN, ["epochs=30"])], ids=["mlp", "supervised_cnn"])
def test_lr_factor_null_is_the_papers_over_the_run(cfg):
    """Every other loop of the original decays over the run to 5e-4, the supervised CNN's too."""
    assert cfg.lr_end_factor is None
    assert [lr_factor(cfg, e) for e in range(30)] == pytest.approx(torch_linear_lr(5e-4, 30, 30))


def test_lr_factor_constant_is_one():
    cfg = from_dict({**CFG, "lr_schedule": "constant"})
    assert [lr_factor(cfg, e) for e in (0, 3, 9)] == [1.0, 1.0, 1.0]
    assert lr_factor(from_dict({**CFG, "epochs": 0}), 0) == 1.0


# --- the network ----------------------------------------------------------------------------------

@pytest.mark.parametrize("sizes", [[784, 2000], [100, 50, 30]])
def test_mlp_init_is_xavier_uniform_gain_half_with_zero_bias(sizes):
    torch.manual_seed(0)
    model = MLP(sizes, ["x"] * len(sizes), [0.0] * len(sizes))
    for (n_in, n_out), linear in zip(zip(sizes[:-1], sizes[1:]), model.linears):
        bound = 0.5 * math.sqrt(6 / (n_in + n_out))  # the original code's gain 0.5
        w = linear.weight.detach()
        assert w.shape == (n_out, n_in)
        assert w.abs().max().item() <= bound
        assert w.abs().max().item() > 0.95 * bound  # uses the whole range
        assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)  # std of U(-a, a) is a/sqrt(3)
        assert torch.equal(linear.bias.detach(), torch.zeros(n_out))


def test_build_from_config_gives_per_layer_lrs():
    assert build(from_dict(CFG), torch.device("cpu")).lrs == (0.1, 0.3)
    learner = build(from_dict({**CFG, "optimizer": "Adam"}), torch.device("cpu"))
    assert [g["lr"] for g in learner.optimizer.param_groups] == [0.1, 0.3]
    assert [len(g["params"]) for g in learner.optimizer.param_groups] == [2, 2]
    assert learner.optimizer.param_groups[0]["params"][0] is learner.model.linears[0].weight


def test_mlp_state_dict_names_each_layer_once_and_loads_older_duplicated_entries():
    torch.manual_seed(0)
    model = MLP([6, 5, 4], ["x", "relu", "hardsigm"], [0.0, 0.0, 0.0])
    state = model.state_dict()
    assert list(state) == ["net.2.weight", "net.2.bias", "net.4.weight", "net.4.bias"]
    older = {**state, "linears.0.weight": state["net.2.weight"], "linears.0.bias": state["net.2.bias"],
             "linears.1.weight": state["net.4.weight"], "linears.1.bias": state["net.4.bias"]}
    fresh = MLP([6, 5, 4], ["x", "relu", "hardsigm"], [0.0, 0.0, 0.0])
    fresh.load_state_dict(older)
    x = torch.randn(3, 6)
    assert torch.equal(fresh(x), model(x))


def test_hardsigm_module_is_clamp_with_its_gradient_off_the_two_boundary_points():
    from funcs.activations import HardSigmoid
    s = torch.linspace(-1.5, 2.5, 401, dtype=torch.float64)
    s = s[(s != 0) & (s != 1)].requires_grad_()
    g = torch.randn(s.shape, dtype=torch.float64)
    (HardSigmoid()(s) * g).sum().backward()
    fast = s.grad.clone()
    s.grad = None
    (s.clamp(0, 1) * g).sum().backward()
    assert torch.equal(HardSigmoid()(s), s.clamp(0, 1)) and torch.equal(fast, s.grad)
