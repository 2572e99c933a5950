"""EP on layer-skipping topologies (ep/small_world.py): the wiring, the energy's generic path against the fast
one and against BPTT, the dense step, the wiring saved with the weights, the learner's options, and the wine
data."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ep.learner import TOPOLOGIES, EPLearner
from ep.network import DenseInput, EPNetwork
from ep.rule import RULE
from ep.small_world import SmallWorldNetwork, rewire
from funcs import cli, data
from tests.test_ep import bptt_gradient, cosine
from tests.test_training import read_csv

REPO = Path(__file__).resolve().parents[1]
SIZES = [6, 8, 7, 8, 4]  # input, three hidden layers, output


def small_world(p=0.3, seed=0, sizes=SIZES, activation="sigmoid", clamped=False):
    torch.manual_seed(seed)
    net = SmallWorldNetwork(sizes, p, skip_magnitude=0.8, seed=seed, activation=activation, clamped=clamped,
                            xavier_gain=1.5).double()
    with torch.no_grad():
        for layer in net.layers:
            layer.bias.uniform_(0.05, 0.3)
    return net


def test_rewiring_moves_a_share_p_of_the_adjacent_connections_to_layer_skipping_ones_seeded():
    sizes = [50, 40, 40, 40, 10]
    adjacent, skips, share = rewire(sizes, 0.1, torch.Generator().manual_seed(3))
    n_adjacent = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    removed = sum(int((m == 0).sum()) for m in adjacent)
    assert share == removed / n_adjacent and share == pytest.approx(0.1, abs=0.01)
    assert sum(int(m.sum()) for m in skips.values()) == removed  # one new connection per removed one
    assert all(b - a >= 2 for a, b in skips) and set(skips) <= {(0, 2), (0, 3), (0, 4), (1, 3), (1, 4), (2, 4)}
    assert all(m.shape == (sizes[b], sizes[a]) for (a, b), m in skips.items())  # never inside a layer
    again, skips_again, _ = rewire(sizes, 0.1, torch.Generator().manual_seed(3))
    assert all(torch.equal(u, v) for u, v in zip(adjacent, again))
    assert all(torch.equal(skips[k], skips_again[k]) for k in skips)
    other, _, _ = rewire(sizes, 0.1, torch.Generator().manual_seed(4))
    assert not all(torch.equal(u, v) for u, v in zip(adjacent, other))
    layered, none, zero = rewire(sizes, 0.0, torch.Generator().manual_seed(3))
    assert zero == 0 and not none and all(bool(m.all()) for m in layered)


def test_removed_connections_start_at_zero_and_skip_weights_only_where_connected():
    net = small_world()
    for j, layer in enumerate(net.layers):
        assert torch.equal(layer.weight * (1 - net.adjacent_mask(j)), torch.zeros_like(layer.weight))
    for i, w in enumerate(net.skips):
        mask = net.skip_mask(i)
        assert torch.equal(w * (1 - mask), torch.zeros_like(w)) and (w[mask > 0].abs() <= 0.8).all()


@pytest.mark.parametrize("path", ["dense", "per layer, a product per skip block", "per layer, one sparse product"])
@pytest.mark.parametrize("activation,clamped", [("sigmoid", False), ("hardsigm", True)])
def test_fast_step_and_update_equal_the_generic_ones_from_the_skip_aware_energy(activation, clamped, path):
    """Each skip weight acts bottom-up and top-down alike: the hand-written drives equal -dE/ds by autograd,
    whichever way the step computes them (one dense matrix, or per layer plus each skip block, or per layer plus
    one sparse matrix of every skip block)."""
    net = small_world(activation=activation, clamped=clamped)
    net.dense, net.sparse = path == "dense", path.endswith("sparse product")
    x = torch.rand(3, SIZES[0], dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    d = torch.rand(3, SIZES[-1], dtype=torch.float64, generator=torch.Generator().manual_seed(2))

    def phases(step):
        net.step = step
        free = net.free_phase(x, 40)
        plus = net.nudged_phase(free, x, d, 0.5, 10)
        del net.step
        return free, plus

    if path != "dense":
        assert (net.clamp_input(x).skip is not None) == net.sparse
    (free, plus), (free_g, plus_g) = phases(net.step), phases(net.autograd_step)
    for a, b in zip(free + plus, free_g + plus_g):
        assert (a - b).abs().max().item() < 1e-6
    hand = net.ep_gradients(x, plus, free, 0.5)
    auto = net.autograd_ep_gradients(x, plus, free, 0.5)
    assert len(hand) == len(auto) == len(list(net.parameters())) == 2 * len(net.layers) + len(net.skips)
    for h, g in zip(hand, auto):
        assert (h - g).abs().max().item() < 1e-6
    for i in range(len(net.skips)):  # masked: a skip block learns only its own connections
        g = hand[2 * len(net.layers) + i]
        assert torch.equal(g * (1 - net.skip_mask(i)), torch.zeros_like(g))


def test_ep_estimate_on_a_small_world_network_agrees_with_bptt_for_every_block():
    net = small_world(p=0.3)
    x = torch.rand(3, SIZES[0], dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    d = torch.rand(3, SIZES[-1], dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    true = net.mask_gradients(list(bptt_gradient(net, x, d)))
    free = net.free_phase(x, 400)
    nudged = net.nudged_phase(free, x, d, 1e-3, 400)
    est = net.ep_gradients(x, nudged, free, 1e-3)
    assert len(net.skips) >= 3
    for e, t in zip(est, true):
        assert t.norm() > 1e-5
        assert cosine(e, t) > 0.99


def test_skip_blocks_learn_at_the_rule_s_rate_of_the_layers_they_span():
    net = small_world()
    lrs = [0.4, 0.2, 0.1, 0.05]
    rates = net.group_lrs(lrs)
    assert rates[:4] == lrs
    assert rates[4:] == pytest.approx([sum(lrs[a:b]) / (b - a) for a, b in net.skip_pairs])
    net.skip_lr = "min"
    assert net.group_lrs(lrs)[4:] == [min(lrs[a:b]) for a, b in net.skip_pairs]


def test_positive_beta_sign_never_flips_and_random_flips():
    net = small_world(activation="hardsigm", clamped=True)
    kw = dict(lrs=[0.1] * 4, optimizer="SGD", drop_probs=[0.0] * 5, beta=0.5, free_steps=5, nudged_steps=2)
    torch.manual_seed(0)
    assert {EPLearner(net, **kw, random_sign=True)._beta() for _ in range(30)} == {0.5, -0.5}
    assert {EPLearner(net, **kw, random_sign=False)._beta() for _ in range(30)} == {0.5}


def test_persistent_states_start_each_example_where_its_last_free_phase_ended():
    """Checked against the network relaxed by hand: example 2 seen in two mini-batches with different partners
    continues from its own state; evaluation and a learner without the option start at zero."""
    net = small_world(activation="hardsigm", clamped=True)
    x = torch.rand(4, SIZES[0], dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    kw = dict(lrs=[0.0] * 4, optimizer="SGD", drop_probs=[0.0] * 5, beta=0.5, free_steps=3, nudged_steps=2)
    learner = EPLearner(net, **kw, persistent_states=True)
    for idx in (torch.tensor([0, 2]), torch.tensor([2, 3])):
        learner.examples(idx, 4)
        out, _ = learner.output(x[idx])
        learner.learn(torch.zeros_like(out))  # lr 0: the weights stay, so only the start state differs
    once = net.free_phase(x, 3)
    twice = net.relax([s.clone() for s in once], x, 3)
    assert torch.allclose(out[0], twice[-1][2]) and torch.allclose(out[1], once[-1][3])
    assert torch.allclose(learner._kept[-1][0], once[-1][0]) and not learner._kept[-1][1].any()  # 1: never seen
    assert torch.allclose(learner.infer(x), once[-1])
    plain = EPLearner(net, **kw)
    plain.examples(torch.tensor([2, 3]), 4)
    assert torch.allclose(plain.output(x[[2, 3]])[0], once[-1][[2, 3]]) and plain._kept is None
    restored = EPLearner(net, **kw, persistent_states=True)
    restored.load_state_dict(learner.state_dict())  # kept in the checkpoint
    assert all(torch.equal(a, b) for a, b in zip(restored._kept, learner._kept))


def test_the_loop_tells_a_learner_which_examples_each_mini_batch_holds():
    from funcs.loop import train_epoch

    class Recorder:
        seen, told = [], None

        def examples(self, idx, n):
            self.told = (idx, n)

        def output(self, x):
            idx, n = self.told
            assert n == 10 and torch.equal(x, data_x[idx])
            self.seen += idx.tolist()
            return x, None

        def learn(self, d):
            return torch.zeros(())

    class Identity:
        def new_epoch(self):
            pass

        def __call__(self, out, y, mask):
            return out

    data_x = torch.arange(10.0).view(10, 1)
    recorder = Recorder()
    train_epoch(recorder, Identity(), data_x, torch.zeros(10), 3)
    assert sorted(recorder.seen) == list(range(10))


def test_wine_is_150_train_and_25_test_wines_min_max_scaled():
    wine = data.load_dataset("wine", "unused")
    assert (wine.train.x.shape, wine.test.x.shape) == ((150, 1, 1, 13), (25, 1, 1, 13))
    both = torch.cat([wine.train.x, wine.test.x]).flatten(1)
    assert both.min() == 0 and both.max() == 1
    assert set(wine.train.y.tolist()) == {0, 1, 2}
    assert torch.equal(data.load_dataset("wine", "unused").test.x, wine.test.x)  # a fixed split


def test_small_world_wine_run_writes_per_layer_update_sizes_and_its_rewired_share(tmp_path):
    out = tmp_path / "run"
    args = ["--json_path", str(REPO / "configFile/small_world/wine_5layer_small_world"), "--set", "epochs=2",
            "--set", "T=100", "--set", "Kmax=6", "--out", str(out)]
    assert cli.main(RULE, args) == 0
    rows = read_csv(out / "results.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert 0.05 < float(rows[0]["rewired_share"]) < 0.15
    sizes = [float(rows[-1][f"update_size_{j}"]) for j in range(1, 7)]
    assert all(s > 0 for s in sizes)
    saved = json.loads((out / "config.json").read_text())
    assert saved["topology"] == "small_world" and saved["rule"] == "ep"


def test_update_size_plot_reads_each_layer_s_column(tmp_path):
    from funcs import plots
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.csv").write_text("epoch,loss,error,update_size_1,update_size_2,seconds\n"
                                     "1,0.5,0.9,1e-5,0.01,1.0\n2,0.4,0.8,2e-5,0.02,1.0\n")
    assert {j: v.tolist() for j, v in plots.update_sizes(run).items()} == {1: [1e-5, 2e-5], 2: [0.01, 0.02]}
    out = plots.plot_update_sizes([run], tmp_path / "sizes.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plots.main(["--update-sizes", str(tmp_path / "x.png"), str(tmp_path)]) == 2  # no results.csv
    bp_run = tmp_path / "bp_run"
    bp_run.mkdir()
    (bp_run / "results.csv").write_text("epoch,loss,error,seconds\n1,0.5,0.9,1.0\n")
    assert plots.main(["--update-sizes", str(tmp_path / "x.png"), str(bp_run)]) == 2  # no update_size_<layer>
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("override,message", [
    (["fcLayers=[13,20,3]", "lr=[0.01,0.01]", "dropProb=[0,0,0]", "rewire_p=0.9"], "layer-skipping pairs"),
    (["fcLayers=[13,3]", "lr=[0.01]", "dropProb=[0,0]"], "needs a hidden layer"),
    (["loss=Cross-entropy", "nudge_form=after_step"], "'after_step' moves the output state"),
    (["nudge_form=clamp"], "nudge_form"),
    (["readout_state=free"], "says where the softmax read-out (loss Cross-entropy) learns"),
])
def test_impossible_small_world_settings_are_one_line_and_exit_2(override, message, capsys):
    args = ["--json_path", str(REPO / "configFile/small_world/wine_5layer_small_world"), "--dry-run"]
    assert cli.main(RULE, [*args, *[a for o in override for a in ("--set", o)]]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err


@pytest.mark.parametrize("topology", ["layered", "small_world"])
@pytest.mark.parametrize("activation,clamped", [("sigmoid", False), ("hardsigm", True)])
def test_dense_step_gives_the_per_layer_step_s_states_under_masks_and_both_nudges(topology, activation, clamped):
    """All states stepped side by side through one (N, N) matrix equal the per-layer step (float64), both phases."""
    def net(dense):
        if topology == "small_world":
            chosen = small_world(activation=activation, clamped=clamped)
        else:
            torch.manual_seed(0)
            chosen = EPNetwork(SIZES, activation, dt=0.2, clamped=clamped, xavier_gain=1.5).double()
        chosen.dense = dense
        return chosen

    x = torch.rand(3, SIZES[0], dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    d = torch.rand(3, SIZES[-1], dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    masks = [None, (torch.rand(3, 7, generator=torch.Generator().manual_seed(3)) > 0.3).double(), None, None]
    states = []
    for dense in (True, False):
        n = net(dense)
        assert isinstance(n.clamp_input(x), DenseInput) == dense
        free = n.free_phase(x, 40, masks)
        states.append(free + n.nudged_phase(free, x, d, 0.5, 10, masks) + n.nudged_phase(free, x, d, -0.5, 10, masks))
    for a, b in zip(*states):
        assert (a - b).abs().max().item() < 1e-12
    assert max(s.abs().max().item() for s in states[0]) > 0.05  # non-trivial states


def test_dense_step_is_chosen_where_it_costs_less_and_only_where_it_can_run():
    """The cost estimate picks the faster path of the quiet timings in ep/network.py (STEP_OVERHEAD_MACS)."""
    assert EPNetwork([10] + [10] * 8 + [1]).uses_dense_step(5)  # Gammell et al.'s diabetes network: 81 states
    mnist = [784, 100, 100, 100, 100, 100, 10]
    assert not EPNetwork(mnist).uses_dense_step(20)  # 510 states, five blocks: per layer, 0.13 against 0.17 ms
    # ten more blocks between hidden layers: the dense step (0.17 against 0.30 ms), but not for a test batch of 1000
    small_world = SmallWorldNetwork(mnist, 0.1, 0.168, seed=1)
    assert small_world.uses_dense_step(20) and not small_world.uses_dense_step(1000)
    assert not SmallWorldNetwork([784, 500, 500, 500, 10], 0.1, 0.0829, seed=1).uses_dense_step(20)  # 0.83 / 1.54 ms
    assert not EPNetwork([784, 20]).uses_dense_step(5)  # one dynamic layer: nothing to stack
    assert not EPNetwork([10, 10, 10, 4], softmax_readout=True).uses_dense_step(5)  # read-out outside the dynamics
    assert not EPNetwork([10, 10, 4], cache_input_drive=False).uses_dense_step(5)  # its base is the cached drive
    assert not EPNetwork([10, 10, 4], dense_step=False).uses_dense_step(5)  # forced either way
    assert EPNetwork(mnist, dense_step=True).uses_dense_step(20)


def test_the_per_layer_step_takes_the_skip_drives_as_one_sparse_product_where_it_costs_less():
    """The quiet timings of ep/small_world.py (SPARSE_MAC_COST): sparse for all three networks there except where
    the dense step goes, and never for a network whose skip blocks all leave the input."""
    def skip_operator(net, batch):
        inp = net.clamp_input(torch.rand(batch, 784, generator=torch.Generator().manual_seed(0)))
        return None if isinstance(inp, DenseInput) else inp.skip

    wide = SmallWorldNetwork([784] + [100] * 5 + [2000], 0.1, 0.168, seed=1)  # 0.57 against 1.5 ms a step
    assert skip_operator(wide, 20) is not None and skip_operator(wide, 1000) is not None
    deep = SmallWorldNetwork([784, 500, 500, 500, 10], 0.1, 0.0829, seed=1)  # 0.83 against 0.94 ms
    assert skip_operator(deep, 20) is not None
    stored = sum(int(deep.skip_mask(i).sum()) for i, _ in deep.dynamic_skips())
    assert skip_operator(deep, 20)._nnz() == 2 * stored  # each connection both ways
    mnist = SmallWorldNetwork([784] + [100] * 5 + [10], 0.1, 0.168, seed=1)
    assert skip_operator(mnist, 20) is None and skip_operator(mnist, 1000) is not None  # the dense step at 20
    shallow = SmallWorldNetwork([784, 30, 10], 0.2, 0.1, seed=1)  # its only skips leave the input
    assert not shallow.dynamic_skips() and skip_operator(shallow, 20) is None


def test_a_loaded_small_world_network_has_the_wiring_it_was_trained_with_not_its_seed_s():
    """The skip blocks (their layers and masks) are saved with the weights: a network built from another seed
    (a read-out with --set seed=...) rebuilds them from the state and computes what the trained one computed."""
    sizes = [5, 6, 6, 6, 6, 3]
    trained = SmallWorldNetwork(sizes, 0.1, skip_magnitude=0.5, seed=1, xavier_gain=1.5)
    other = SmallWorldNetwork(sizes, 0.1, skip_magnitude=0.5, seed=2, xavier_gain=1.5)
    assert other.skip_pairs != trained.skip_pairs
    state = trained.state_dict()
    assert state["skip_layers"].tolist() == [list(p) for p in trained.skip_pairs]
    other.load_state_dict(state)
    assert other.skip_pairs == trained.skip_pairs and other.rewired_share == trained.rewired_share
    for i in range(len(trained.skips)):
        assert torch.equal(other.skip_mask(i), trained.skip_mask(i))
    x = torch.rand(4, 5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(other.free_phase(x, 50)[-1], trained.free_phase(x, 50)[-1])
    old = {k: v for k, v in state.items() if k != "skip_layers"}  # saved before the wiring was
    again = SmallWorldNetwork(sizes, 0.1, skip_magnitude=0.5, seed=1, xavier_gain=1.5)
    again.load_state_dict(old)
    assert torch.equal(again.free_phase(x, 50)[-1], trained.free_phase(x, 50)[-1])


def test_the_sparse_cost_estimate_counts_the_skip_connections_of_the_wiring_it_has_after_a_load():
    """The count behind `sparse_skip_macs` is kept, not summed every mini-batch: it must follow a loaded state,
    whether the state's skip blocks differ (another seed) or only a block's mask does."""
    def counted(net):  # the count from the masks, as the estimate used to take it
        return sum(int(net.skip_mask(i).sum()) for i, _ in net.dynamic_skips())

    sizes = [5, 6, 6, 6, 6, 3]
    trained = SmallWorldNetwork(sizes, 0.1, skip_magnitude=0.5, seed=1, xavier_gain=1.5)
    other = SmallWorldNetwork(sizes, 0.1, skip_magnitude=0.5, seed=2, xavier_gain=1.5)
    assert counted(other) != counted(trained) and other.dynamic_skip_connections == counted(other)
    other.load_state_dict(trained.state_dict())
    assert other.dynamic_skip_connections == counted(trained) == trained.dynamic_skip_connections
    state = trained.state_dict()
    i, _ = trained.dynamic_skips()[0]
    state[f"skip_mask_{i}"] = torch.zeros_like(state[f"skip_mask_{i}"])  # the same blocks, one of them emptied
    other.load_state_dict(state)
    assert other.dynamic_skip_connections == counted(other) == counted(trained) - int(trained.skip_mask(i).sum()) > 0
    assert other.sparse_skip_macs(20) < trained.sparse_skip_macs(20)


def test_a_read_out_under_another_seed_reads_the_trained_wiring_through_the_command_line(tmp_path):
    out = tmp_path / "trained"
    args = ["--json_path", str(REPO / "configFile/small_world/wine_5layer_small_world"), "--set", "epochs=1",
            "--set", "T=60", "--set", "Kmax=6", "--out", str(out)]
    assert cli.main(RULE, args) == 0
    trained_cfg = cli.load_config(RULE, cli.parse_args(RULE, ["--json_path", str(out)]))
    trained = TOPOLOGIES["small_world"].from_config(trained_cfg)
    trained.load_state_dict(torch.load(out / "model_state_dict.pt", weights_only=True))
    cfg = cli.load_config(RULE, cli.parse_args(RULE, ["--trained_path", str(out), "--set", "seed=2"]))
    assert cfg.seed == 2 and TOPOLOGIES["small_world"].from_config(cfg).skip_pairs != trained.skip_pairs
    _, dataset, learner = cli.prepare(RULE, cfg)
    assert learner.net.skip_pairs == trained.skip_pairs
    assert {id(p) for g in learner.optimizer.param_groups for p in g["params"]} == {
        id(p) for p in learner.net.parameters()}  # the optimizer follows the rebuilt blocks
    x = dataset.test.x.flatten(1)
    assert torch.equal(learner.infer(x), trained.free_phase(x, cfg.T)[-1])
    assert cli.main(RULE, ["--trained_path", str(out), "--set", "seed=2", "--set", "class_epoch=1",
                           "--out", str(tmp_path / "read")]) == 0


@pytest.mark.parametrize("dense", [True, False])
def test_after_step_nudge_is_a_free_step_then_gammell_s_pull_of_the_output(dense):
    """nudge_form 'after_step' (Gammell et al.'s step_weakly_clamped): the free step, then
    s_out += 2 dt beta (d - s_out) and the clamp; with dt 0.5 and beta 1 the output lands on its target."""
    x = torch.rand(3, SIZES[0], dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    d = torch.rand(3, SIZES[-1], dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    for dt, beta in ((0.2, 0.7), (0.2, -0.7), (0.5, 1.0)):
        torch.manual_seed(0)
        net = EPNetwork(SIZES, "hardsigm", dt=dt, clamped=True, xavier_gain=1.5, nudge_form="after_step").double()
        net.dense = dense
        free = net.free_phase(x, 30)
        nudged = [si.clone() for si in free]
        net.step(nudged, x, d=d, beta=beta)
        expected = [si.clone() for si in free]
        net.step(expected, x)  # the free step ...
        expected[-1] = (expected[-1] + 2 * dt * beta * (d - expected[-1])).clamp(0, 1)  # ... then the pull
        for a, b in zip(nudged, expected):
            assert (a - b).abs().max().item() < 1e-12
        if dt == 0.5 and beta == 1.0:
            assert (nudged[-1] - d).abs().max().item() < 1e-12
        net.nudge_form = "force"  # the other form moves the output elsewhere, and no hidden layer differently
        force = [si.clone() for si in free]
        net.step(force, x, d=d, beta=beta)
        assert (force[-1] - nudged[-1]).abs().max().item() > 1e-3
        assert all((a - b).abs().max().item() < 1e-12 for a, b in zip(force[:-1], nudged[:-1]))
    with pytest.raises(ValueError, match="nudge_form"):
        EPNetwork([4, 5, 3], softmax_readout=True, nudge_form="after_step")


def test_the_bench_times_each_skip_path_of_a_small_world_preset_only():
    from types import SimpleNamespace

    from bench.ep_throughput import variants
    wide = variants("small_world/mnist_5layer_unsupervised_small_world")
    assert {"default", "per_layer_step", "dense_step", "skip_product_per_block", "skip_sparse_product"} <= set(wide)
    assert "skip_sparse_product" not in variants("small_world/mnist_5layer_unsupervised_layered")
    for name, sparse in (("skip_product_per_block", False), ("skip_sparse_product", True)):
        learner = SimpleNamespace(net=small_world())
        wide[name](learner)
        assert learner.net.sparse is sparse
