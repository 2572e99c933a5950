"""Reading classes out of the outputs: direct association, the linear classifier, label subsets."""

import math

import pytest
import torch

from funcs.association import (UNASSIGNED, association_errors, balanced_subset, class_mean_responses,
                               classifier_lr_factor, direct_association, predict_max, predict_mean,
                               train_linear_classifier)

# 6 samples, 4 neurons, 2 classes; neuron 3 never responds
OUT = torch.tensor([[0.9, 0.1, 0.0, 0.0],
                    [0.7, 0.3, 0.2, 0.0],
                    [0.8, 0.0, 0.5, 0.0],
                    [0.1, 0.8, 0.4, 0.0],
                    [0.0, 0.6, 0.3, 0.0],
                    [0.2, 0.7, 0.6, 0.0]])
LAB = torch.tensor([0, 0, 0, 1, 1, 1])


def slow_class_means(outputs, labels, n_class):
    means = torch.zeros(n_class, outputs.shape[1], dtype=torch.float64)
    for c in range(n_class):
        rows = [outputs[i].double() for i in range(len(labels)) if labels[i] == c]
        if rows:
            means[c] = sum(rows) / len(rows)
    return means


def test_class_mean_responses_match_hand_values():
    means = class_mean_responses(OUT, LAB, 2)
    expected = torch.tensor([[0.8, 0.4 / 3, 0.7 / 3, 0.0],
                             [0.1, 0.7, 1.3 / 3, 0.0]])
    assert torch.allclose(means, expected, atol=1e-6)


def test_class_mean_responses_match_slow_loop_incl_empty_class():
    gen = torch.Generator().manual_seed(1)
    out = torch.rand(40, 7, generator=gen)
    lab = torch.randint(0, 4, (40,), generator=gen)  # class 4 of 5 never appears
    means = class_mean_responses(out, lab, 5)
    assert torch.allclose(means.double(), slow_class_means(out, lab, 5), atol=1e-6)
    assert torch.equal(means[4], torch.zeros(7))


def test_direct_association_gives_best_class_and_silent_neuron_unassigned():
    # means: neuron 0 -> 0.8 vs 0.1 (class 0); neuron 1 -> class 1; neuron 2 -> 0.233 vs 0.433 (class 1)
    owner = direct_association(OUT, LAB, 2)
    assert owner.tolist() == [0, 1, 1, UNASSIGNED]
    assert UNASSIGNED == -1 and owner.dtype == torch.int64


def test_predict_mean_by_hand_with_class_without_neurons():
    owner = torch.tensor([0, 0, 1, UNASSIGNED])  # class 2 owns no neuron
    out = torch.tensor([[0.6, 0.0, 0.5, 9.0],    # class means: 0.3, 0.5 -> 1
                        [0.6, 0.6, 0.5, 0.0],    # 0.6, 0.5 -> 0
                        [-2.0, -2.0, -3.0, 0.0]])  # -2, -3, class 2 (no neuron) never wins -> 0
    assert predict_mean(out, owner, 3).tolist() == [1, 0, 0]


def test_predict_max_ignores_unassigned_neurons():
    owner = torch.tensor([0, 1, 1, UNASSIGNED])
    out = torch.tensor([[0.6, 0.2, 0.5, 9.0],   # the unassigned neuron 3 is largest but ignored -> 0
                        [0.1, 0.2, 0.5, 0.0],   # neuron 2 -> 1
                        [0.3, 0.2, 0.1, 0.0]])  # neuron 0 -> 0
    assert predict_max(out, owner).tolist() == [0, 1, 0]


def slow_association_errors(train_out, train_lab, test_out, test_lab, n_class):
    n_out = train_out.shape[1]
    means = slow_class_means(train_out, train_lab, n_class)
    owner = []
    for j in range(n_out):
        col = [means[c, j].item() for c in range(n_class)]
        best = max(col)
        owner.append(col.index(best) if best > 0 else -1)
    wrong_mean = wrong_max = 0
    for i in range(test_out.shape[0]):
        row = test_out[i].tolist()
        scores = []
        for c in range(n_class):
            members = [row[j] for j in range(n_out) if owner[j] == c]
            scores.append(sum(members) / len(members) if members else -1.0)
        wrong_mean += scores.index(max(scores)) != test_lab[i].item()
        assigned = [j for j in range(n_out) if owner[j] >= 0]
        top = max(assigned, key=lambda j: row[j])
        wrong_max += owner[top] != test_lab[i].item()
    n = test_out.shape[0]
    return wrong_mean / n, wrong_max / n


def test_association_errors_match_slow_per_sample_reference():
    gen = torch.Generator().manual_seed(3)
    n_class, n_out = 3, 12
    centers = torch.rand(n_class, n_out, generator=gen)
    train_lab = torch.randint(0, n_class, (90,), generator=gen)
    test_lab = torch.randint(0, n_class, (60,), generator=gen)
    train_out = (centers[train_lab] + 0.3 * torch.rand(90, n_out, generator=gen)).relu()
    test_out = (centers[test_lab] + 0.3 * torch.rand(60, n_out, generator=gen)).relu()
    train_out[:, 5] = 0.0  # one silent neuron
    got = association_errors(train_out, train_lab, test_out, test_lab, n_class)
    ref_mean, ref_max = slow_association_errors(train_out, train_lab, test_out, test_lab, n_class)
    assert got["error_mean"].item() == pytest.approx(ref_mean)
    assert got["error_max"].item() == pytest.approx(ref_max)
    assert 0 < ref_mean < 1  # not a degenerate case


# --- balanced_subset ---------------------------------------------------------------------------

def test_balanced_subset_takes_rounded_share_of_each_class_at_least_one():
    labels = torch.tensor([0] * 25 + [1] * 10 + [2] * 3 + [0] * 5)  # counts 30, 10, 3
    idx = balanced_subset(labels, 0.05, 3, torch.Generator().manual_seed(0))
    counts = torch.bincount(labels[idx], minlength=3).tolist()
    # round(1.5) = 2 (half up), round(0.5) = 1, round(0.15) = 0 -> at least 1
    assert counts == [2, 1, 1]
    idx = balanced_subset(labels, 0.5, 3, torch.Generator().manual_seed(0))
    assert torch.bincount(labels[idx], minlength=3).tolist() == [15, 5, 2]  # 1.5 -> 2 (half up)
    assert torch.equal(idx, idx.sort().values) and idx.unique().numel() == idx.numel()


def test_balanced_subset_is_reproducible_for_a_seed_and_varies_with_it():
    labels = torch.arange(200) % 4
    a = balanced_subset(labels, 0.1, 4, torch.Generator().manual_seed(5))
    b = balanced_subset(labels, 0.1, 4, torch.Generator().manual_seed(5))
    c = balanced_subset(labels, 0.1, 4, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.numel() == 20


def test_balanced_subset_share_one_keeps_all_in_order():
    labels = torch.tensor([3, 1, 2, 0, 1])
    assert balanced_subset(labels, 1.0, 4, torch.Generator()).tolist() == [0, 1, 2, 3, 4]


# --- classifier learning-rate schedules ------------------------------------------------------------

def test_classifier_exponential_schedule_is_point_nine_per_epoch():
    assert [classifier_lr_factor("exponential", e, 10) for e in range(4)] == pytest.approx(
        [1.0, 0.9, 0.81, 0.729])


def test_classifier_linear_schedule_goes_from_one_towards_half():
    assert [classifier_lr_factor("linear", e, 10) for e in (0, 5, 9, 10)] == pytest.approx(
        [1.0, 0.75, 0.55, 0.5])


@pytest.mark.parametrize("epochs,halvings", [
    # steps at int(epochs * r) for r in 0.2, 0.35, 0.5, 0.6, 0.7, 0.8, 0.9
    (10, [0, 0, 1, 2, 2, 3, 4, 5, 6, 7]),  # steps 2, 3, 5, 6, 7, 8, 9
    (20, [0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7]),  # 4, 7, 10, 12, 14, 16, 18
])
def test_classifier_step_schedule_halves_at_listed_fractions(epochs, halvings):
    got = [classifier_lr_factor("step", e, epochs) for e in range(epochs)]
    assert got == pytest.approx([0.5 ** h for h in halvings])


# --- the linear classifier -----------------------------------------------------------------------

def test_linear_classifier_learns_separable_blobs():
    gen = torch.Generator().manual_seed(0)
    centers = 3.0 * torch.randn(3, 5, generator=gen)
    y_train = torch.randint(0, 3, (300,), generator=gen)
    y_test = torch.randint(0, 3, (150,), generator=gen)
    x_train = centers[y_train] + 0.3 * torch.randn(300, 5, generator=gen)
    x_test = centers[y_test] + 0.3 * torch.randn(150, 5, generator=gen)
    # sanity: nearest center classifies the test set perfectly (the problem is separable)
    assert (torch.cdist(x_test, centers).argmin(1) == y_test).all()
    torch.manual_seed(0)  # the Dropout layer
    seen = []
    rows = train_linear_classifier(x_train, y_train, x_test, y_test, n_class=3, lr=0.05, epochs=5,
                                   batch_size=32, dropout=0.0, activation="x", optimizer="Adam",
                                   schedule="exponential", smooth_labels=False, generator=gen,
                                   on_epoch=seen.append)
    assert len(rows) == 5 and seen == rows
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 5]
    assert set(rows[0]) == {"epoch", "lr", "train_error", "test_error", "test_loss"}
    assert rows[-1]["test_error"] < 0.05
    assert rows[-1]["test_loss"] < rows[0]["test_loss"]
    assert all(0 <= r["train_error"] <= 1 and 0 <= r["test_error"] <= 1 for r in rows)
    assert not math.isnan(rows[-1]["test_loss"])
