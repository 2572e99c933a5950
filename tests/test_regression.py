"""A regression dataset (diabetes, Gammell et al. 2021's Table 1): its data, its target y itself, its test cost
1/2 (y - output)^2 against values computed another way, and the one-line refusals of what needs classes."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bp.rule import RULE as BP
from ep.learner import build
from ep.rule import RULE as EP
from funcs import cli, data, loop, results
from funcs import config as config_mod
from funcs.target import Target
from tests.test_training import read_csv

REPO = Path(__file__).resolve().parents[1]
PRESET = REPO / "configFile/small_world/diabetes_5layer_layered"
QUICK = ["--set", "epochs=1", "--set", "T=60", "--set", "Kmax=6"]


def test_diabetes_is_gammell_s_400_train_and_40_test_patients_min_max_scaled():
    """Their reader, written out again from scikit-learn's raw (unscaled) copy: each feature and the target
    min-max scaled over all 442, np.random.seed(0) and one shuffle of the (x, y) pairs, 400 then 40."""
    from sklearn.datasets import load_diabetes
    raw_x, raw_y = load_diabetes(return_X_y=True, scaled=False)
    x = (raw_x - raw_x.min(0)) / (raw_x.max(0) - raw_x.min(0))
    y = (raw_y - raw_y.min()) / (raw_y.max() - raw_y.min())
    pairs = list(zip(x, y))
    np.random.seed(0)
    np.random.shuffle(pairs)
    want_x, want_y = (np.stack(v) for v in zip(*pairs))

    diabetes = data.load_dataset("diabetes", "unused")
    assert diabetes.task == data.REGRESSION and diabetes.n_class == 1
    assert (diabetes.train.x.shape, diabetes.test.x.shape) == ((400, 1, 1, 10), (40, 1, 1, 10))
    assert (diabetes.train.y.shape, diabetes.test.y.shape) == ((400, 1), (40, 1))
    assert diabetes.train.y.dtype == torch.float32
    for split, rows in ((diabetes.train, slice(0, 400)), (diabetes.test, slice(400, 440))):
        assert np.allclose(split.x.flatten(1).numpy(), want_x[rows], atol=1e-6)
        assert np.allclose(split.y[:, 0].numpy(), want_y[rows], atol=1e-6)
    assert torch.equal(data.load_dataset("diabetes", "unused").test.y, diabetes.test.y)  # a fixed split


def test_regression_cost_is_the_mean_of_half_the_squared_error_by_hand():
    out = torch.tensor([[0.1, 0.5], [1.0, 0.0], [0.3, 0.3]])
    y = torch.tensor([[0.0, 0.5], [0.5, 0.5], [0.3, 0.1]])
    by_hand = (0.5 * (0.01 + 0.0) + 0.5 * (0.25 + 0.25) + 0.5 * (0.0 + 0.04)) / 3
    assert loop.regression_cost(out, y).item() == pytest.approx(by_hand, abs=1e-7)


def test_ep_cost_is_half_the_squared_error_and_the_regression_target_is_y_itself():
    cfg = config_mod.load(PRESET)
    net = build(cfg, torch.device("cpu")).net
    s = [torch.zeros(2, n) for n in net.state_sizes]
    s[-1] = torch.tensor([[0.2], [0.9]])
    d = torch.tensor([[0.5], [0.1]])
    assert net.cost(s, d).tolist() == pytest.approx([0.5 * 0.3 ** 2, 0.5 * 0.8 ** 2])
    target = Target.from_config(cfg)
    assert torch.equal(target(torch.rand(2, 1), d), d)  # the values themselves: no class code, no smoothing
    assert torch.equal(target(torch.rand(2, 1), d, torch.tensor([[1.0], [0.0]])), torch.tensor([[0.5], [0.0]]))


def test_a_diabetes_run_reports_its_test_cost_as_computed_from_its_saved_network(tmp_path):
    out = tmp_path / "run"
    assert cli.main(EP, ["--json_path", str(PRESET), *QUICK, "--out", str(out)]) == 0
    rows = read_csv(out / "results.csv")
    assert "test_cost" in rows[0] and not any(k.startswith("error") for k in rows[0])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["accuracy_percent"] == {} and "association_labels" not in summary
    assert summary["cost"]["test_cost"] == pytest.approx(float(rows[-1]["test_cost"]), abs=1e-6)
    assert "final test cost" in (out / "run.log").read_text().splitlines()[-1]

    cfg = config_mod.load(out)
    learner = build(cfg, torch.device("cpu"))
    learner.net.load_state_dict(torch.load(out / "model_state_dict.pt", weights_only=True))
    test = data.load_dataset("diabetes", "unused").test
    output = learner.net.free_phase(test.x.flatten(1), cfg.T)[-1]
    again = sum(0.5 * (float(o) - float(t)) ** 2 for o, t in zip(output[:, 0], test.y[:, 0])) / len(test.y)
    assert summary["cost"]["test_cost"] == pytest.approx(again, abs=1e-6)


def test_seeds_summary_averages_a_regression_s_cost():
    per_seed = [{"seed": s, "accuracy_percent": {}, "cost": {"test_cost": c}}
                for s, c in ((1, 0.04), (2, 0.05), (3, 0.03))]
    stats = results.seeds_summary(per_seed)
    assert stats["per_seed"] == {"test_cost": [0.04, 0.05, 0.03]}
    assert stats["mean"]["test_cost"] == pytest.approx(0.04)
    assert stats["std"]["test_cost"] == pytest.approx(0.01)  # ((0^2 + 0.01^2 + 0.01^2) / 2) ** 0.5


def test_a_regression_s_train_size_is_a_seeded_random_pick():
    split = data.load_dataset("diabetes", "unused").train
    picked = data.balanced_indices(split.y, 100, torch.Generator().manual_seed(3))
    assert picked.tolist() == sorted(set(picked.tolist())) and len(picked) == 100
    assert torch.equal(picked, torch.randperm(400, generator=torch.Generator().manual_seed(3))[:100].sort().values)


@pytest.mark.parametrize("overrides,message", [
    (["action=unsupervised_ep", "fcLayers=[10,10,10,10,10,10,20]"], "trains towards a self-defined target"),
    (["action=semi_supervised_ep", "pre_lr=[0.01,0.01,0.01,0.01,0.01,0.01]", "log_update_sizes=false"],
     "trains towards a self-defined"),
    (["action=train_class_layer", "epochs=0"], "reads classes out of a network"),
    (["fcLayers=[10,10,10,10,10,10,3]"], "the output layer needs 1 neuron(s), not 3"),
    (["n_class=2", "fcLayers=[10,10,10,10,10,10,2]"], "give n_class 1"),
    (["smooth=true"], "label smoothing"),
])
def test_what_needs_classes_is_one_line_and_exit_2_on_a_regression(overrides, message, capsys, tmp_path):
    args = ["--json_path", str(PRESET), *[a for o in overrides for a in ("--set", o)], "--out", str(tmp_path / "run")]
    assert cli.main(EP, args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: config key ") and err.count("\n") == 1 and message in err, err
    assert "diabetes is a regression" in err
    assert not (tmp_path / "run").exists()


def test_bp_refuses_the_self_defined_target_on_a_regression_too(capsys, tmp_path):
    """The refusal is the dataset's, not EP's: BP's unsupervised action gets the same line."""
    (tmp_path / "config.json").write_text(json.dumps({
        "action": "unsupervised_bp", "dataset": "diabetes", "n_class": 1, "fcLayers": [10, 20],
        "activation_function": ["x", "hardsigm"], "lr": [0.1], "dropProb": [0.0, 0.0], "epochs": 1}))
    assert cli.main(BP, ["--json_path", str(tmp_path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'unsupervised_bp' trains towards a self-defined target" in err, err
    assert "diabetes is a regression" in err and not (tmp_path / "run").exists()


def test_bp_fits_diabetes_with_the_same_loop(tmp_path):
    """A supervised BP network on diabetes needs no branch in the rule: its target is y, its metric the test cost."""
    (tmp_path / "config.json").write_text(json.dumps({
        "action": "bp", "dataset": "diabetes", "n_class": 1, "fcLayers": [10, 16, 1],
        "activation_function": ["x", "sigmoid", "x"], "lr": [0.05, 0.05], "dropProb": [0.0, 0.0, 0.0],
        "epochs": 2, "batchSize": 8, "lr_schedule": "constant"}))
    out = tmp_path / "run"
    assert cli.main(BP, ["--json_path", str(tmp_path), "--out", str(out)]) == 0
    cost = [float(r["test_cost"]) for r in read_csv(out / "results.csv")]
    spread = 0.5 * data.load_dataset("diabetes", "unused").test.y.var(unbiased=False).item()
    assert cost[-1] < spread  # better than predicting the test set's own mean
