"""The contract every registered learning rule keeps (funcs.rules): one test, parametrized over the registry.

A newly registered rule is tested here without writing a test: its learner's
shapes and masks, a finite loss, its state_dict, siblings sharing one network,
and a run stopped after epoch 1 and resumed ending with the numbers of a run
straight through (its default config on a small subset).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from funcs import cli, config, data, rules
from funcs.target import Target
from tests.conftest import DATA_DIR
from tests.test_training import interrupt_then_resume, read_csv

REPO = Path(__file__).resolve().parents[1]
RULES = rules.names()


def small_config(rule, dataset, **changes):
    """The rule's default config on a few examples of `dataset`, 2 epochs, a short read-out."""
    cfg = config.load(REPO / rule.default_config, default_rule=rule.name)
    n_in = int(math.prod(data.spec(dataset).shape))
    sizes = [n_in, *cfg.fcLayers[1:]] if not cfg.cnn else list(cfg.fcLayers)
    return config.replace(cfg, dataset=dataset, data_dir=str(DATA_DIR), device=-1, fcLayers=sizes, epochs=2,
                          train_size=600, test_size=200, class_epoch=2, **changes)


def learner_and_batch(rule, dataset, seed=0):
    cfg = small_config(rule, dataset)
    torch.manual_seed(seed)
    learner = rule.build(cfg, torch.device("cpu"))
    x = torch.rand(8, *data.spec(dataset).shape, generator=torch.Generator().manual_seed(1))
    return cfg, learner, x


@pytest.mark.parametrize("name", RULES)
def test_output_and_mask_shapes_masked_neurons_zero_and_a_finite_scalar_loss(name, dataset):
    rule = rules.get(name)
    cfg, learner, x = learner_and_batch(rule, dataset)
    y, mask = learner.output(x)
    assert y.shape == (8, cfg.n_out)
    if mask is not None:
        assert mask.shape == y.shape
        assert torch.equal(y * (1 - mask), torch.zeros_like(y))
    d = Target.from_config(cfg, kind="unsupervised")(y, None, mask)
    assert d.shape == y.shape
    loss = learner.learn(d)
    assert loss.shape == () and torch.isfinite(loss)
    assert learner.infer(x).shape == (8, cfg.n_out)


@pytest.mark.parametrize("name", RULES)
def test_state_dict_round_trip_gives_the_same_network(name, dataset):
    rule = rules.get(name)
    _, trained, x = learner_and_batch(rule, dataset, seed=0)
    y, mask = trained.output(x)
    trained.learn(torch.ones_like(y) if mask is None else mask)
    _, fresh, _ = learner_and_batch(rule, dataset, seed=5)
    assert not torch.equal(fresh.infer(x), trained.infer(x))
    fresh.load_state_dict(trained.state_dict())
    assert torch.equal(fresh.infer(x), trained.infer(x))


@pytest.mark.parametrize("name", RULES)
def test_a_sibling_trains_the_same_network(name, dataset):
    """Semi-supervised phases train one network through siblings with their own rates."""
    rule = rules.get(name)
    cfg, learner, x = learner_and_batch(rule, dataset)
    sibling = learner.sibling(cfg.lr)
    sibling.set_lr_factor(1.0)
    before = learner.infer(x)
    y, mask = sibling.output(x)
    sibling.learn(torch.ones_like(y) if mask is None else mask)
    assert not torch.equal(learner.infer(x), before)  # the sibling's step moved the shared weights
    assert torch.equal(learner.infer(x), sibling.infer(x))


@pytest.mark.parametrize("name", RULES)
def test_a_run_stopped_after_epoch_1_and_resumed_ends_as_a_straight_run(name, dataset, tmp_path, monkeypatch):
    rule = rules.get(name)
    cfg = small_config(rule, dataset, test_batchSize=200)
    source = tmp_path / "config.json"
    source.write_text(json.dumps({k: v for k, v in cfg.to_json().items() if k != "out_dir"}))
    args = ["--json_path", str(source)]
    assert cli.main(rule, [*args, "--out", str(tmp_path / "straight")]) == 0
    interrupt_then_resume(rule, args, tmp_path / "resumed", monkeypatch)
    straight, resumed = read_csv(tmp_path / "straight/results.csv"), read_csv(tmp_path / "resumed/results.csv")
    drop = ("seconds", "train_seconds")
    assert [{k: v for k, v in r.items() if k not in drop} for r in straight] == \
        [{k: v for k, v in r.items() if k not in drop} for r in resumed]
    a = json.loads((tmp_path / "straight/summary.json").read_text())["metrics"]
    b = json.loads((tmp_path / "resumed/summary.json").read_text())["metrics"]
    assert {k: v for k, v in a.items() if "seconds" not in k} == {k: v for k, v in b.items() if "seconds" not in k}
    assert json.loads((tmp_path / "resumed/config.json").read_text())["rule"] == name


def test_every_registered_rule_names_its_own_actions_and_they_do_not_overlap():
    seen = {}
    for rule in rules.all_rules():
        assert set(rule.actions.values()) <= set(config.TARGET_KINDS)
        for action in rule.actions:
            assert action not in seen, (action, seen.get(action), rule.name)
            seen[action] = rule.name
            assert rules.owner(action) is rule


def test_the_core_names_no_rule_outside_the_registry_of_the_papers_experiments():
    """A new rule touches no file of funcs/: only funcs/figures_registry.py (which experiments the paper ran with
    which rule) may name one."""
    import re
    names = "|".join(rules.names())
    pattern = re.compile(rf"[\"']({names})[\"']|\brule\s*==|from ({names})[. ]|import ({names})\b")
    core = Path(__file__).resolve().parents[1] / "funcs"
    found = [f"{path.relative_to(core)}:{n}" for path in sorted(core.rglob("*.py"))
             if path.name != "figures_registry.py"
             for n, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert found == []
