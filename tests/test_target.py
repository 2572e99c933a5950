"""The self-defined target: kWTA, homeostasis, smoothing, class targets, output dropout (funcs/target.py)."""

import pytest
import torch

from funcs.config import from_dict
from funcs.dropout import mask as dropout_mask
from funcs.target import (SMOOTH_SUPERVISED, SMOOTH_UNSUPERVISED, Homeostasis, Target, class_of_neuron,
                          class_target, kwta_target, smooth)

Y = torch.tensor([[0.10, 0.90, 0.50, 0.30],
                  [0.70, 0.20, 0.80, 0.10],
                  [0.45, 0.40, 0.00, 0.60]])
H = torch.tensor([0.0, 0.85, 0.0, 0.4])


def rows_of(winners, n=4):
    """0/1 matrix with ones at the given column sets, one set per row."""
    d = torch.zeros(len(winners), n)
    for r, cols in enumerate(winners):
        d[r, list(cols)] = 1.0
    return d


def unsup_target(n_out, k, gamma=0.5, p_out=0.0, smooth_target=False, sequential=False, eta=0.6):
    return Target("unsupervised", n_out=n_out, n_class=2, k=k, gamma=gamma, eta=eta, sequential=sequential,
                  smooth_target=smooth_target, p_out=p_out)


# --- kWTA ------------------------------------------------------------------------------

def test_kwta_without_threshold_picks_k_largest_outputs():
    # by hand: row 0 -> 0.9, 0.5; row 1 -> 0.8, 0.7; row 2 -> 0.6, 0.45
    assert torch.equal(kwta_target(Y, 2), rows_of([{1, 2}, {0, 2}, {0, 3}]))
    assert torch.equal(kwta_target(Y, 1), rows_of([{1}, {2}, {3}]))


def test_kwta_threshold_h_changes_the_winners():
    # scores y - h: row 0 [0.1, 0.05, 0.5, -0.1]; row 1 [0.7, -0.65, 0.8, -0.3]; row 2 [0.45, -0.45, 0, 0.2]
    assert torch.equal(kwta_target(Y, 2, H), rows_of([{0, 2}, {0, 2}, {0, 3}]))
    assert torch.equal(kwta_target(Y, 1, H), rows_of([{2}, {2}, {0}]))
    assert not torch.equal(kwta_target(Y, 1, H), kwta_target(Y, 1))


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_kwta_has_exactly_k_ones_per_row(k):
    d = kwta_target(torch.rand(50, 7, generator=torch.Generator().manual_seed(k)), k, torch.randn(7))
    assert torch.equal(d.sum(dim=1), torch.full((50,), float(k)))
    assert set(d.unique().tolist()) <= {0.0, 1.0}


# --- homeostasis -----------------------------------------------------------------------

def test_homeostasis_batch_update_is_gamma_times_mean_target_minus_rate():
    hs = Homeostasis(4, gamma=0.5, rate=0.5)
    hs.update(torch.tensor([[1., 0., 0., 1.], [1., 0., 1., 0.]]))  # mean [1, 0, .5, .5]
    assert torch.allclose(hs.h, torch.tensor([0.25, -0.25, 0.0, 0.0]))
    assert torch.allclose(hs.activity, torch.tensor([1.0, 0.0, 0.5, 0.5]))


def test_homeostasis_two_batch_updates_accumulate_and_reset_zeroes():
    hs = Homeostasis(4, gamma=0.5, rate=0.5)
    hs.update(torch.tensor([[1., 0., 0., 1.], [1., 0., 1., 0.]]))  # +[.25, -.25, 0, 0]
    hs.update(torch.tensor([[0., 1., 1., 0.], [1., 1., 0., 0.]]))  # mean [.5, 1, .5, 0] -> +[0, .25, 0, -.25]
    assert torch.allclose(hs.h, torch.tensor([0.25, 0.0, 0.0, -0.25]))
    hs.reset()
    assert torch.equal(hs.h, torch.zeros(4)) and torch.equal(hs.activity, torch.zeros(4))


def test_target_rate_is_one_minus_output_dropout_times_k_over_n_out():
    t = Target("unsupervised", n_out=2000, n_class=10, k=6, gamma=0.4, eta=0.6, sequential=False,
               smooth_target=False, p_out=0.2)
    assert t.homeostasis.rate == pytest.approx(0.8 * 6 / 2000)
    assert not t.homeostasis.sequential


def test_homeostasis_sequential_matches_slow_moving_average_loop():
    gen = torch.Generator().manual_seed(0)
    n, gamma, eta, rate, steps = 5, 0.3, 0.6, 1 / 5, 12
    hs = Homeostasis(n, gamma=gamma, rate=rate, eta=eta)
    a_ref, h_ref = [0.0] * n, [0.0] * n
    for _ in range(steps):
        d = torch.zeros(1, n)
        d[0, torch.randint(n, (1,), generator=gen)] = 1.0
        hs.update(d)
        for i in range(n):
            a_ref[i] = eta * d[0, i].item() + (1 - eta) * a_ref[i]
            h_ref[i] = h_ref[i] + gamma * (a_ref[i] - rate)
    assert torch.allclose(hs.activity, torch.tensor(a_ref), atol=1e-6)
    assert torch.allclose(hs.h, torch.tensor(h_ref), atol=1e-6)
    # batch mode on the same sequence: A is the last target alone, so H ends elsewhere
    batch = Homeostasis(n, gamma=gamma, rate=rate)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        d = torch.zeros(1, n)
        d[0, torch.randint(n, (1,), generator=gen)] = 1.0
        batch.update(d)
    assert not torch.allclose(batch.h, hs.h, atol=1e-3)


def test_target_from_config_with_batch_size_one_uses_sequential_homeostasis():
    cfg = from_dict({"batchSize": 1, "fcLayers": [4, 3], "lr": [0.1], "dropProb": [0.0, 0.0], "nudge": 1,
                     "gamma": 1.0, "eta": 0.5})
    t = Target.from_config(cfg)
    assert t.homeostasis.eta == 0.5 and t.homeostasis.rate == pytest.approx(1 / 3)
    t(torch.tensor([[0.9, 0.1, 0.2]]))  # neuron 0 wins: A = .5*[1,0,0]; H = A - 1/3
    t(torch.tensor([[0.9, 0.1, 0.2]]))  # H=[1/6,-1/3,-1/3], scores [.73,.43,.53]: 0 wins; A=[.75,0,0]
    assert torch.allclose(t.homeostasis.activity, torch.tensor([0.75, 0.0, 0.0]))
    assert torch.allclose(t.homeostasis.h, torch.tensor([0.5 + 0.75, 0.0, 0.0]) - 2 / 3)


def test_homeostasis_raises_threshold_of_frequent_winner_until_another_neuron_wins():
    t = unsup_target(3, 1, gamma=0.5)
    y = torch.tensor([[0.9, 0.8, 0.1]])  # neuron 0 always has the largest raw output
    d1 = t(y)
    assert torch.equal(d1, torch.tensor([[1., 0., 0.]]))
    # H += 0.5 * ([1, 0, 0] - 1/3)
    assert torch.allclose(t.homeostasis.h, torch.tensor([1 / 3, -1 / 6, -1 / 6]))
    d2 = t(y)  # scores [0.567, 0.967, 0.267]: the threshold of neuron 0 hands the win to neuron 1
    assert torch.equal(d2, torch.tensor([[0., 1., 0.]]))
    wins = torch.zeros(3)
    for _ in range(30):
        wins += t(y)[0]
    assert (wins > 0).all()  # eventually every neuron wins, even the weakest one


def test_target_new_epoch_resets_homeostasis():
    t = unsup_target(3, 1)
    t(torch.tensor([[0.9, 0.8, 0.1]]))
    assert t.homeostasis.h.abs().sum() > 0
    t.new_epoch()
    assert torch.equal(t.homeostasis.h, torch.zeros(3))


# --- smoothing, class targets ------------------------------------------------------------

def test_smooth_matches_hand_formula_and_keeps_row_sum_k():
    d = kwta_target(Y, 2)
    s = smooth(d, 0.3, 2)
    # winners 0.7 + 0.3*2/4 = 0.85, losers 0.15
    expected = torch.where(d > 0, torch.tensor(0.85), torch.tensor(0.15))
    assert torch.allclose(s, expected)
    assert torch.allclose(s.sum(dim=1), torch.full((3,), 2.0))


def test_class_target_gives_each_class_two_consecutive_neurons():
    d = class_target(torch.tensor([0, 2, 1]), n_out=6, n_class=3)
    assert torch.equal(d, torch.tensor([[1., 1., 0., 0., 0., 0.],
                                        [0., 0., 0., 0., 1., 1.],
                                        [0., 0., 1., 1., 0., 0.]]))


def test_class_of_neuron_maps_most_active_neuron_to_its_owner_class():
    out = torch.eye(6) + 0.01  # neuron j most active in row j
    assert torch.equal(class_of_neuron(out, 3), torch.tensor([0, 0, 1, 1, 2, 2]))
    labels = torch.tensor([2, 0, 1, 1])
    assert torch.equal(class_of_neuron(class_target(labels, 6, 3), 3), labels)


# --- Target with output dropout ------------------------------------------------------------

def test_target_masked_neurons_never_win_and_homeostasis_sees_masked_target():
    t = unsup_target(4, 1, gamma=0.5, p_out=0.25)
    y = torch.tensor([[0.2, 0.9, 0.5, 0.1],
                      [0.8, 0.3, 0.6, 0.4]])
    mask = torch.tensor([[1., 0., 1., 1.],
                         [0., 1., 1., 1.]])
    d = t(y * mask, mask=mask)  # the learner hands its output over with the dropped neurons at zero
    # the raw winners (1 and 0) are dropped: the best kept neurons win (2 in both rows)
    assert torch.equal(d, torch.tensor([[0., 0., 1., 0.], [0., 0., 1., 0.]]))
    assert torch.equal(d * (1 - mask), torch.zeros_like(d))
    rate = 0.75 * 1 / 4
    assert t.homeostasis.rate == pytest.approx(rate)
    assert torch.allclose(t.homeostasis.h, 0.5 * (torch.tensor([0., 0., 1., 0.]) - rate))


def test_target_unsupervised_smoothing_then_mask_and_homeostasis_uses_it():
    t = unsup_target(4, 1, gamma=1.0, p_out=0.25, smooth_target=True)
    y = torch.tensor([[0.2, 0.9, 0.5, 0.1]])
    mask = torch.tensor([[1., 0., 1., 1.]])
    d = t(y * mask, mask=mask)
    base = SMOOTH_UNSUPERVISED * 1 / 4  # 0.075
    expected = torch.tensor([[base, 0.0, 1 - SMOOTH_UNSUPERVISED + base, base]])
    assert torch.allclose(d, expected)
    assert torch.allclose(t.homeostasis.h, expected[0] - 0.75 / 4)


def test_target_supervised_with_smoothing_and_no_homeostasis():
    t = Target("supervised", n_out=6, n_class=3, k=1, gamma=0.5, eta=0.6, sequential=False,
               smooth_target=True, p_out=0.0)
    d = t(torch.rand(2, 6), torch.tensor([1, 2]))
    lo = SMOOTH_SUPERVISED * 2 / 6
    hi = 1 - SMOOTH_SUPERVISED + lo
    assert torch.allclose(d, torch.tensor([[lo, lo, hi, hi, lo, lo], [lo, lo, lo, lo, hi, hi]]))
    assert torch.allclose(d.sum(1), torch.full((2,), 2.0))
    assert torch.equal(t.homeostasis.h, torch.zeros(6))


def test_target_from_config_smooths_labels_as_the_original_code_per_rule():
    """Label targets are smoothed by 0.2 after BP and 0.3 after EP (original train_bp / train_supervised_ep)."""
    base = {"fcLayers": [4, 2], "lr": [0.1], "dropProb": [0.0, 0.0], "n_class": 2, "smooth": True}
    for action, a in (("bp", 0.2), ("ep", 0.3)):
        t = Target.from_config(from_dict({**base, "action": action, "activation_function": "hardsigm"}
                                         if action == "ep" else {**base, "action": action}))
        assert torch.allclose(t(torch.rand(1, 2), torch.tensor([0])), torch.tensor([[1 - a / 2, a / 2]]))


def test_dropped_neuron_competes_with_output_zero_and_its_win_is_erased():
    """As the original code: kWTA runs on (y * mask) - H, so a dropped neuron (output 0) scores -H.

    A neuron that has not been winning has H < 0 and can take the choice while
    dropped; the mask then erases it from the target, so that row has fewer
    than k winners (which the rate T = (1 - p) k / n_out accounts for).
    """
    t = unsup_target(3, 1, gamma=0.5)
    t(torch.tensor([[0.9, 0.1, 0.2]]))  # 0 wins: H = [1/3, -1/6, -1/6]
    t(torch.tensor([[0.1, 0.2, 0.9]]))  # 2 wins: H = [1/6, -1/3, 1/6]  (neuron 1 never won: negative H)
    # neuron 1 dropped scores 0 - (-1/3) = 1/3 > 0.4 - 1/6 (neuron 0) and 0.3 - 1/6 (neuron 2)
    d = t(torch.tensor([[0.4, 0.0, 0.3]]), mask=torch.tensor([[1., 0., 1.]]))
    assert torch.equal(d, torch.tensor([[0., 0., 0.]]))
    # with the same thresholds, a kept neuron 1 (output 0.95 + 1/3) wins
    t.homeostasis.h.copy_(torch.tensor([1 / 6, -1 / 3, 1 / 6]))
    d = t(torch.tensor([[0.4, 0.95, 0.3]]), mask=torch.tensor([[1., 1., 1.]]))
    assert torch.equal(d, torch.tensor([[0., 1., 0.]]))


# --- dropout mask ----------------------------------------------------------------------------

def test_dropout_mask_is_binary_with_keep_rate_one_minus_p():
    gen = torch.Generator().manual_seed(0)
    m = dropout_mask((400, 500), 0.2, generator=gen)
    assert set(m.unique().tolist()) == {0.0, 1.0}
    assert m.mean().item() == pytest.approx(0.8, abs=0.005)  # std of the mean ~ 0.0009
    again = dropout_mask((400, 500), 0.2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(m, again)


def test_dropout_mask_is_none_without_dropout():
    assert dropout_mask((3, 4), 0) is None
    assert dropout_mask((3, 4), 0.0) is None


def test_without_losers_learning_only_the_winners_have_an_error():
    """losers_learn false: each loser's target is its own output (Hebbian WTA: no anti-Hebbian push on losers);
    the winners' targets and the homeostasis are those of the paper's target."""
    y = torch.tensor([[0.9, 0.2, 0.4, 0.1], [0.3, 0.8, 0.5, 0.6]])
    kw = dict(kind="unsupervised", n_out=4, n_class=2, k=1, gamma=0.5, eta=0.6, sequential=False,
              smooth_target=False, p_out=0.0)
    paper, hebbian = Target(**kw), Target(**kw, losers_learn=False)
    d_paper, d_hebb = paper(y), hebbian(y)
    assert torch.equal(d_paper, torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0]]))
    assert torch.equal(d_hebb, torch.tensor([[1.0, 0.2, 0.4, 0.1], [0.3, 1.0, 0.5, 0.6]]))
    assert torch.equal(paper.homeostasis.h, hebbian.homeostasis.h)
    error = d_hebb - y
    assert torch.equal(error != 0, d_paper > 0)  # only the winners are pulled
