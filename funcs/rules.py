"""The registry of learning rules: what a rule plugs into the shared core, and how the core finds it.

A learning rule is a package (`bp/`, `ep/`, or yours) whose module named in
the registry defines `RULE`, a `Rule`. The registry is the file `rules.json`
at the repository root, one line per rule (`"name": "package.module"`); the
environment variable `RULES_REGISTRY` names another file (a copy with your
line added, for a package that lives outside this repository). The core asks
the rule for everything that differs between rules and never names one:

    learner = rules.of(cfg).build(cfg, device)    # output(x) / learn(d) / infer(x) ...

Nothing is imported until a rule is asked for, so importing this module (or
`funcs.config`, which reads the rules' config fields) stays cheap.
"""
from __future__ import annotations

import importlib
import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Mapping

from funcs.errors import UserError

REPO = Path(__file__).resolve().parent.parent
READ_OUT = "train_class_layer"  # the original code's shared action: read out a network, train nothing


@dataclass(frozen=True)
class Key:
    """A config key: its default, a one-line doc, its kind and its checks (see funcs.config for the kinds)."""
    default: Any
    doc: str
    kind: str
    checks: Mapping[str, Any] = field(default_factory=dict)

    @property
    def meta(self) -> dict:
        return {"doc": self.doc, "kind": self.kind, **self.checks}


def key(default, doc: str, kind: str, **checks) -> Key:
    """A rule's config key (the shared ones are declared the same way in funcs.config)."""
    return Key(tuple(default) if isinstance(default, list) else default, doc, kind, dict(checks))


@dataclass(frozen=True)
class Schedules:
    """Learning-rate factors of the two semi-supervised phases (factors of `pre_lr` and `lr`), see funcs.semi."""
    pre_decay: float  # phase 1: pre_decay ** epoch
    unsupervised: tuple[float, float]  # phase 2, unsupervised half: linear from start to end over `epochs`
    supervised: tuple[float, float]  # phase 2, supervised half: linear from start to end ...
    supervised_flat: int  # ... reaching its end this many epochs before the last (at the latest after
    #                       the first), then constant


def _no_check(cfg) -> None:
    return None


def _no_input_check(cfg, shape) -> None:
    return None


def _drop_probs(cfg) -> tuple[float, ...]:
    return cfg.dropProb


@dataclass(frozen=True)
class Rule:
    """Everything that differs between learning rules; the core reads it and never branches on a rule's name.

    name: the value of the config key `rule`; title: how help texts name it ("backpropagation").
    actions: the config actions it trains, each with its target kind ('supervised', 'unsupervised',
    'semi_supervised'); every rule also reads out networks with the shared action train_class_layer.
    build: (cfg, device) -> a learner (funcs.loop.Learner).
    fields: the rule's own config keys (flat in config.json, beside the shared ones).
    check: (cfg) -> None, the rule's checks of a loaded config; raises UserError.
    check_input: (cfg, input shape (C, H, W)) -> None, its checks against the dataset.
    drop_probs: (cfg) -> the dropout probability of each entry of fcLayers as trained.
    smooth_labels: label smoothing factor of label targets (with `smooth`).
    semi_schedules: the semi-supervised schedules, or None when the rule has no semi-supervised action.
    classifier_schedule: the linear classifier's schedule for an MLP ('auto' of class_schedule).
    network_keys: keys of its own, beyond the shared ones, that fix what a trained network computes.
    cnn: whether it trains convolutional networks (`cnn: true`).
    main: the module of its command line (`python -m <main>`); search: of its optuna search, or None.
    search_config: the search's default --json_path ("": configFile/hyper_<name>/unsupervised).
    """
    name: str
    title: str
    actions: Mapping[str, str]
    build: Callable
    default_config: str
    fields: Mapping[str, Key] = field(default_factory=dict)
    check: Callable = _no_check
    check_input: Callable = _no_input_check
    drop_probs: Callable = _drop_probs
    smooth_labels: float = 0.2
    semi_schedules: Schedules | None = None
    classifier_schedule: str = "exponential"
    network_keys: tuple[str, ...] = ()
    cnn: bool = False
    main: str = ""
    search: str | None = None
    search_config: str = ""

    @property
    def command(self) -> str:
        return f"python -m {self.main or self.name + '.main'}"


def registry_file() -> Path:
    return Path(os.environ.get("RULES_REGISTRY") or REPO / "rules.json")


@lru_cache(maxsize=None)
def _registry(path: Path) -> dict[str, str]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"rule registry {path} cannot be read: {err.__class__.__name__}: {err}")
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise UserError(f"rule registry {path}: expected a JSON object of \"name\": \"package.module\" lines")
    return raw


def names() -> list[str]:
    """The registered rules' names, in the registry's order."""
    return list(_registry(registry_file()))


@lru_cache(maxsize=None)
def _load(name: str, module: str) -> Rule:
    try:
        rule = importlib.import_module(module).RULE
    except (ImportError, AttributeError) as err:
        raise UserError(f"rule '{name}': {module} (named in {registry_file()}) does not define RULE "
                        f"({err.__class__.__name__}: {err})")
    if rule.name != name:
        raise UserError(f"rule registry: '{name}' points to {module}, whose RULE is named '{rule.name}'")
    return rule


def get(name: str) -> Rule:
    """The registered rule of this name; one error line listing the rules otherwise."""
    registry = _registry(registry_file())
    if name not in registry:
        raise UserError(f"no learning rule '{name}'; registered: {', '.join(registry)} ({registry_file()})")
    return _load(name, registry[name])


def all_rules() -> list[Rule]:
    return [get(name) for name in names()]


def owner(action: str) -> Rule | None:
    """The rule that trains this action (None for the shared read-out)."""
    if action == READ_OUT:
        return None
    for rule in all_rules():
        if action in rule.actions:
            return rule
    listing = "; ".join(f"{r.name} ({r.command}): {', '.join(r.actions)}" for r in all_rules())
    raise UserError(f"config key 'action': no registered rule trains '{action}'; the rules and their actions: "
                    f"{listing}; and {READ_OUT} for every rule")


def all_actions() -> tuple[str, ...]:
    return tuple(a for rule in all_rules() for a in rule.actions) + (READ_OUT,)


def of(cfg) -> Rule:
    """The rule of a loaded Config."""
    return get(cfg.rule)
