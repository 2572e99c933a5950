"""README's "Adding a learning rule", followed to the letter by a stranger's package outside this repository.

The test writes a competitive-learning rule (the kWTA winners move their
weights towards the input) into a temporary folder, registers it as the
recipe says (one line in a copy of rules.json, named by RULES_REGISTRY), and
trains it through the real command line on an MNIST subset: no file of funcs/
is touched, and the run folder, association and linear classifier are the
shared ones.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import DATA_DIR

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()

RULE_PY = '''
"""Competitive learning: the output is -||x - w||^2 / 2 up to a constant, and the kWTA winners move their
weights towards the input (online k-means)."""
import torch

from funcs.rules import Rule


class Competitive:
    def __init__(self, n_in, n_out, lr):
        self.w, self.base_lr, self.lr = torch.rand(n_out, n_in) * 0.1, lr, lr  # small: no winner at first

    def output(self, x):
        self.x = x.flatten(1)
        return self.infer(x), None  # no dropout mask

    def learn(self, d):  # d (batch, n_out): k ones per row, the winners
        self.w += self.lr * (d.T @ self.x - d.sum(0)[:, None] * self.w) / d.shape[0]
        return ((self.x[:, None, :] - self.w) ** 2).sum(2).mul(d).sum(1).mean()  # winners' squared distance

    def infer(self, x):
        return x.flatten(1) @ self.w.T - 0.5 * (self.w ** 2).sum(1)

    def set_lr_factor(self, factor):
        self.lr = self.base_lr * factor

    def sibling(self, lrs):
        twin = Competitive(1, 1, lrs[0])
        twin.w = self.w  # the same weights
        return twin

    def state_dict(self):
        return {"model": {"w": self.w.clone()}}

    def load_state_dict(self, state):
        self.w.copy_(state["model"]["w"])


def build(cfg, device):
    return Competitive(cfg.fcLayers[0], cfg.fcLayers[-1], cfg.lr[0])


RULE = Rule(name="compete", title="competitive learning", actions={"unsupervised_compete": "unsupervised"},
            build=build, default_config="configFile/quickstart")
'''

CONFIG = {"action": "unsupervised_compete", "dataset": "mnist", "fcLayers": [784, 100], "lr": [0.5],
          "activation_function": ["x", "x"], "dropProb": [0, 0], "nudge": 1, "gamma": 2, "epochs": 2,
          "batchSize": 4, "train_size": 3000, "test_size": 1000, "class_epoch": 5, "class_lr": [0.05],
          "seed": 1}


def test_readme_recipe_registers_a_rule_outside_the_repository_and_trains_it_through_the_cli(tmp_path, dataset):
    recipe = README[README.index("## Adding a learning rule"):]
    main_py = textwrap.dedent(re.search(r"```python\n(\s*# <package>/main.py.*?)```", recipe, re.S).group(1))
    line = re.search(r'^\s*("mine": "mine\.rule")', recipe, re.M).group(1)
    package = tmp_path / "compete"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "rule.py").write_text(textwrap.dedent(RULE_PY))
    (package / "main.py").write_text(main_py.replace("mine", "compete"))
    registry = json.loads((REPO / "rules.json").read_text())
    registry.update(json.loads("{" + line.replace("mine", "compete") + "}"))
    (tmp_path / "rules.json").write_text(json.dumps(registry))
    cfg = {**CONFIG, "data_dir": str(DATA_DIR)} if dataset == "mnist" else \
        {**CONFIG, "dataset": "digits", "fcLayers": [64, 100], "train_size": None, "test_size": None}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    funcs_before = {p: p.stat().st_mtime_ns for p in (REPO / "funcs").glob("*.py")}
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}", "RULES_REGISTRY": str(tmp_path / "rules.json")}
    proc = subprocess.run([sys.executable, "-m", "compete.main", "--json_path", str(tmp_path), "--out", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    print(proc.stdout[-2000:], proc.stderr[-2000:])
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    saved = json.loads((out / "config.json").read_text())
    assert saved["rule"] == "compete" and saved["action"] == "unsupervised_compete"
    # chance is 10%; watched on MNIST (seed 1, 2 epochs, 3,000 images): 60.6 direct, 81.0 linear
    assert summary["accuracy_percent"]["direct_association_mean"] > 30
    assert summary["accuracy_percent"]["linear_classifier"] > 50
    assert {p: p.stat().st_mtime_ns for p in (REPO / "funcs").glob("*.py")} == funcs_before
    # the read-out of the trained run goes through the shared action, by the run's own rule
    read = subprocess.run([sys.executable, "-m", "compete.main", "--trained_path", str(out), "--set", "class_epoch=1",
                           "--out", str(tmp_path / "readout")], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert read.returncode == 0, read.stderr
    assert json.loads((tmp_path / "readout/config.json").read_text())["rule"] == "compete"
