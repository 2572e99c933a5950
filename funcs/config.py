"""The typed, validated run configuration.

One `Config` holds every key a run reads. The JSON key names are those of the
original code's `config.json` (so its files run unchanged), plus a few a user
needs beyond them (`seed`, `data_dir`, `out_dir`, the learning-rate schedules).
`load()` validates once; everything downstream trusts the result.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from funcs import activations, rules
from funcs.errors import UserError
from funcs.rules import READ_OUT

ACTIVATIONS = tuple(activations.ACTIVATIONS)
DATASETS = ("mnist", "fashionMnist", "svhn", "cifar10", "digits", "wine", "diabetes")
TARGET_KINDS = ("supervised", "unsupervised", "semi_supervised")
SEED_MAX = 2**32 - 1  # the largest seed numpy and scikit-learn take (torch takes 64 bits)
# Settings of the machine a run is on, not of what it learns: a resumed run may change them (`--resume RUN --set`),
# e.g. a run started on a GPU machine and continued on another whose data lie elsewhere.
MACHINE_KEYS = ("data_dir", "device")


def _key(default, doc: str, kind: str, **check):
    """A config field: its default, a one-line doc, its kind and its checks (choices, lo, hi, lo_open, hi_open).

    kind: 'int', 'float', 'bool', 'str', 'str?' (string or null), 'ints', 'floats' (JSON lists),
    'ints?' (list or null), 'names' (one string, or a list of strings).
    """
    meta = {"doc": doc, "kind": kind, **check}
    if isinstance(default, list):
        return field(default_factory=lambda: tuple(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Config:
    """Every key of a run. Lists are stored as tuples so a Config never changes."""

    # --- what to train, where -------------------------------------------------------
    device: int = _key(-1, "execution device: -1 for the CPU, N for GPU number N", "int", lo=-1)
    dataset: str = _key("mnist", "dataset name", "str", choices=DATASETS)
    n_class: int = _key(10, "number of classes in the dataset", "int", lo=1)
    action: str = _key("unsupervised_bp", "what to train, as the original code names it: each rule's actions "
                       "(say the rule and where the target comes from: supervised, unsupervised, "
                       "semi-supervised); train_class_layer: no training (epochs is taken as 0), only the "
                       "association and the linear classifier on `trained_path`'s network", "str")
    rule: str | None = _key(None, "the learning rule (a name in rules.json); null: the rule owning `action` (for "
                            "train_class_layer: the trained run's, else the entry point's); written into every "
                            "run's config.json", "str?")
    seed: int = _key(1, "random seed of the run (weights, shuffling, dropout, label subsets)", "int", lo=0,
                     hi=SEED_MAX)
    data_dir: str = _key("data", "directory where datasets are looked for and stored", "str")
    out_dir: str | None = _key(None, "run folder; null for DATA-0/<date>/<action>-<n>/", "str?")
    train_size: int | None = _key(None, "use a seeded class-balanced subset of this many training examples; "
                                  "null for all", "int?", lo=1)
    test_size: int | None = _key(None, "use the first this many test examples; null for all", "int?", lo=1)
    validation_size: int | None = _key(None, "hold out this many training examples (class-balanced, drawn from "
                                       "`seed`) and evaluate on them instead of the test set, as the search "
                                       "scores trials; null to train on all and evaluate on the test set",
                                       "int?", lo=1)

    # --- network ----------------------------------------------------------------------
    cnn: bool = _key(False, "use a convolutional network (convolutions, then fcLayers); false for an MLP",
                     "bool")
    fcLayers: tuple[int, ...] = _key([784, 2000], "fully connected layer sizes: input, hidden..., output "
                                     "(n_out); with cnn, the sizes after the convolutions", "ints", lo=1)
    activation_function: tuple[str, ...] | str = _key(
        ["x", "hardsigm"], "one activation per entry of fcLayers (the first acts on the input), or one name for "
        "every layer where the rule takes one", "names", choices=ACTIVATIONS)
    dropProb: tuple[float, ...] = _key([0.0, 0.0], "dropout probability per entry of fcLayers: input, "
                                       "hidden..., output (the output mask hides neurons from the target)",
                                       "floats", lo=0, hi=1, hi_open=True)
    pool_type: str = _key("max", "CNN: pooling, 'max' or 'av'", "str", choices=("max", "av"))
    C_list: tuple[int, ...] | None = _key(None, "CNN: channels of the input and of each convolution", "ints?",
                                          lo=1)
    cnn_prune: float = _key(0.0, "CNN: share of convolution weights pruned at initialisation", "float",
                            lo=0, hi=1, hi_open=True)
    kernel_sizes: tuple[int, ...] = _key([5, 3], "CNN: kernel size of each convolution", "ints", lo=1)
    paddings: tuple[int, ...] = _key([2, 1], "CNN: zero padding of each convolution", "ints", lo=0)
    pool_size: int = _key(4, "CNN: pooling window after each convolution", "int", lo=1)
    pool_stride: int = _key(2, "CNN: pooling stride", "int", lo=1)
    pool_padding: int = _key(1, "CNN: pooling padding", "int", lo=0)
    hflip: bool = _key(False, "flip each training image left-right with probability 1/2 (paper: CIFAR-10)",
                       "bool")

    # --- training ---------------------------------------------------------------------
    epochs: int = _key(200, "training epochs", "int", lo=0)
    batchSize: int = _key(16, "training mini-batch size; 1 selects sequential homeostasis", "int", lo=1)
    test_batchSize: int = _key(256, "mini-batch size for evaluation and the linear classifier", "int", lo=1)
    lr: tuple[float, ...] = _key([0.1], "learning rate of each weight layer", "floats", lo=0, lo_open=True)
    optimizer: str = _key("SGD", "optimizer of the network", "str", choices=("SGD", "Adam"))
    loss: str = _key("MSE", "loss between output and target", "str", choices=("MSE", "Cross-entropy"))
    lr_schedule: str = _key("linear", "per-epoch learning-rate schedule: 'linear' from 1 at the first epoch "
                            "towards lr_end_factor after the last (the paper's; see lr_end_factor), or 'constant'",
                            "str", choices=("linear", "constant"))
    lr_end_factor: float | None = _key(None, "final factor of the linear schedule (0 decays to nothing, as some "
                                       "Hebbian rules use); null: the original code's, 5e-4 (the paper's), and for an "
                                       "unsupervised CNN 1 down to 0.01 over 100 epochs whatever `epochs` is",
                                       "float?", lo=0)

    # --- the self-defined target ------------------------------------------------------
    nudge: int = _key(1, "number of winners k of the kWTA target (not a nudging strength: that is a rule's own "
                     "key)", "int", lo=1)
    gamma: float = _key(0.5, "homeostasis rate: H <- H + gamma * (A - T)", "float", lo=0)
    eta: float = _key(0.6, "sequential mode (batchSize 1): moving average A <- eta * d + (1 - eta) * A",
                      "float", lo=0, hi=1, lo_open=True)
    smooth: bool = _key(False, "label smoothing of the target", "bool")
    losers_learn: bool = _key(True, "self-defined target: true (the paper) pushes the n_out - k losers towards 0; "
                              "false makes each loser's target its own output, so only the winners learn, as in "
                              "Hebbian winner-take-all rules (no anti-Hebbian push on losers)", "bool")

    # --- semi-supervised --------------------------------------------------------------
    semi_seed: int = _key(13, "seed of the labeled subset's draw (label_draw); -1 takes the run's seed, so that each "
                          "seed of --seeds draws its own subset, as the paper's seeds did (a run from a "
                          "pretrained_path keeps its phase-1 network's subset)", "int", lo=-1, hi=SEED_MAX)
    train_label_number: int = _key(3000, "labeled examples in semi-supervised training", "int", lo=1)
    label_draw: str = _key("per_class", "how the labeled subset is drawn: 'per_class' takes train_label_number / "
                           "n_class examples of each class (the paper's text); 'stratified' is scikit-learn's "
                           "stratified split with random_state semi_seed, class counts proportional to the class "
                           "frequencies (the original code's draw)", "str", choices=("per_class", "stratified"))
    pre_epochs: int = _key(80, "supervised pre-training epochs (N1)", "int", lo=0)
    pre_batchSize: int = _key(32, "pre-training mini-batch size", "int", lo=1)
    pre_lr: tuple[float, ...] = _key([0.001, 0.003], "pre-training learning rate of each layer", "floats",
                                     lo=0, lo_open=True)
    pretrained_path: str | None = _key(None, "semi-supervised: a run folder (or its pretrained.pt) whose phase-1 "
                                       "network phase 2 starts from, skipping phase 1; null to train it",
                                       "str?")

    # --- class association and linear classifier ----------------------------------------
    trained_path: str | None = _key(None, "train_class_layer: the run folder whose trained network is read out; "
                                    "null for an untrained network of the config's shape (the paper's "
                                    "baseline)", "str?")
    class_label_percentage: float = _key(1.0, "share of training labels used by both association methods",
                                         "float", lo=0, hi=1, lo_open=True)
    class_activation: str = _key("x", "activation after the linear classifier", "str", choices=ACTIVATIONS)
    class_lr: tuple[float, ...] = _key([0.1], "learning rate of the linear classifier", "floats", lo=0,
                                       lo_open=True)
    class_epoch: int = _key(50, "training epochs of the linear classifier", "int", lo=0)
    class_optimizer: str = _key("Adam", "optimizer of the linear classifier", "str", choices=("SGD", "Adam"))
    class_dropProb: float = _key(0.2, "dropout before the linear classifier", "float", lo=0, hi=1,
                                 hi_open=True)
    class_smooth: bool = _key(False, "label smoothing of the classifier's targets", "bool")
    class_schedule: str = _key("auto", "classifier lr schedule: 'exponential' (x0.9 per epoch), 'linear' (1 to "
                               "0.5), 'step' (halvings), 'constant', or 'auto': 'step' after a CNN, else the "
                               "rule's own (Rule.classifier_schedule)", "str",
                               choices=("auto", "exponential", "linear", "step", "constant"))

    # The rule's own keys (Rule.fields), resolved: read as attributes (cfg.T), written flat by to_json.
    rule_values: tuple[tuple[str, Any], ...] = field(default=(), repr=False)

    def __getattr__(self, name: str):
        # Only reached when `name` is no shared field: the rule's own keys.
        if not name.startswith("__"):
            for key, value in object.__getattribute__(self, "rule_values"):
                if key == name:
                    return value
        raise AttributeError(f"config has no key '{name}' (rule {object.__getattribute__(self, 'rule')})")

    # --- derived views ---------------------------------------------------------------
    @property
    def n_out(self) -> int:
        """Number of output neurons (the last entry of fcLayers)."""
        return self.fcLayers[-1]

    @property
    def drop_probs(self) -> tuple[float, ...]:
        """Dropout probability of each entry of fcLayers as trained (a rule may switch them off)."""
        return rules.get(self.rule).drop_probs(self)

    @property
    def target_kind(self) -> str:
        """Where the target comes from: 'supervised', 'unsupervised' or 'semi_supervised'.

        train_class_layer trains nothing and is read out as unsupervised runs are.
        """
        if self.action == READ_OUT:
            return "unsupervised"
        return rules.get(self.rule).actions[self.action]

    def to_json(self) -> dict[str, Any]:
        """The config as plain JSON, in the original key names (the rule's own keys flat among them);
        `load` of it gives back an equal Config."""
        out = {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self) if f.name in FIELDS}
        return {**out, **{k: _plain(v) for k, v in self.rule_values}}


FIELDS = {f.name: f for f in dataclasses.fields(Config) if f.name != "rule_values"}  # the shared keys


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def labeled_subset_seed(semi_seed: int, seed: int) -> int:
    """The seed a semi-supervised run draws its labeled subset with: semi_seed, or the run's seed where it is -1."""
    return semi_seed if semi_seed >= 0 else seed


def fail(key: str, problem: str):
    """One UserError line naming the config key and the problem."""
    raise UserError(f"config key '{key}': {problem}")


def _scalar(key: str, value, kind: str):
    """Check one JSON scalar against a kind; ints are accepted where floats are."""
    if kind == "bool":
        # The original repository's configs write `"clamped": 1`, so 0 and 1 count as booleans.
        if isinstance(value, bool) or (type(value) is int and value in (0, 1)):
            return bool(value)
        fail(key, f"expected true or false, got {value!r}")
    if kind == "int":
        if type(value) is int:
            return value
        if type(value) is float and value.is_integer():
            return int(value)
        fail(key, f"expected an integer, got {value!r}")
    if kind == "float":
        if type(value) in (int, float) and math.isfinite(value):
            return float(value)
        fail(key, f"expected a finite number, got {value!r}")
    if isinstance(value, str):
        return value
    fail(key, f"expected a string, got {value!r}")


def _check_value(key: str, value, meta) -> None:
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        fail(key, f"{value!r} is not one of {', '.join(choices)}{did_you_mean(str(value), choices)}")
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is not None and (value <= lo if meta.get("lo_open") else value < lo):
        fail(key, f"{value} must be {'>' if meta.get('lo_open') else '>='} {lo}")
    if hi is not None and (value >= hi if meta.get("hi_open") else value > hi):
        fail(key, f"{value} must be {'<' if meta.get('hi_open') else '<='} {hi}")


_ITEM_KIND = {"ints": "int", "ints?": "int", "floats": "float", "names": "str"}  # list kinds


def _coerce(key: str, value, meta):
    """Turn one JSON value into the key's type, with the key's checks applied (meta: doc, kind, checks)."""
    kind = meta["kind"]
    if value is None:
        if kind.endswith("?"):
            return None
        fail(key, "must not be null")
    if kind == "names" and isinstance(value, str):  # one activation for every layer, as some original configs write
        kind = "str"
    if kind in _ITEM_KIND:
        if not isinstance(value, list):
            fail(key, f"expected a list, got {value!r}")
        if not value:
            fail(key, "must not be empty")
        items = tuple(_scalar(key, v, _ITEM_KIND[kind]) for v in value)
        for item in items:
            _check_value(key, item, meta)
        return items
    out = _scalar(key, value, kind.rstrip("?"))
    _check_value(key, out, meta)
    return out


def _cross_check(cfg: Config, rule) -> None:
    """Checks that involve several keys (list lengths against fcLayers, k against n_out), then the rule's own."""
    n_layers = len(cfg.fcLayers)
    if not cfg.cnn:
        if n_layers < 2:
            fail("fcLayers", f"an MLP needs an input and an output size, got {list(cfg.fcLayers)}")
        if len(cfg.lr) != n_layers - 1:
            fail("lr", f"{len(cfg.lr)} rates given but fcLayers {list(cfg.fcLayers)} has {n_layers - 1} "
                        f"weight layers")
        if len(cfg.dropProb) != n_layers:
            fail("dropProb", f"{len(cfg.dropProb)} values given but fcLayers {list(cfg.fcLayers)} has "
                              f"{n_layers} entries (input, hidden..., output)")
        if isinstance(cfg.activation_function, tuple) and len(cfg.activation_function) != n_layers:
            fail("activation_function", f"{len(cfg.activation_function)} names given but fcLayers "
                                         f"{list(cfg.fcLayers)} has {n_layers} entries")
    if cfg.cnn:
        _check_cnn(cfg, rule)
    names = (cfg.activation_function,) if isinstance(cfg.activation_function, str) else cfg.activation_function
    if not cfg.cnn and "wta" in names:
        fail("activation_function", "'wta' (triangle WTA) acts on convolution maps; it needs \"cnn\": true")
    if cfg.class_activation == "wta":
        fail("class_activation", "'wta' acts on convolution maps, not on the classifier's output")
    if len(cfg.class_lr) != 1:
        fail("class_lr", f"the linear classifier has one learning rate, got {list(cfg.class_lr)}")
    if cfg.nudge > cfg.n_out:
        fail("nudge", f"{cfg.nudge} winners but the output layer has only {cfg.n_out} neurons")
    if cfg.target_kind != "unsupervised" and cfg.n_out % cfg.n_class:
        fail("fcLayers", f"supervised training needs n_out ({cfg.n_out}) to be a multiple of "
                          f"n_class ({cfg.n_class}): each class owns n_out / n_class neurons")
    if cfg.target_kind == "semi_supervised":
        if len(cfg.pre_lr) != len(cfg.lr):
            fail("pre_lr", f"{len(cfg.pre_lr)} rates given but the network has {len(cfg.lr)} weight layers")
        if cfg.train_label_number % cfg.n_class:
            fail("train_label_number", f"{cfg.train_label_number} labels cannot be split equally over "
                                        f"{cfg.n_class} classes")
    elif cfg.pretrained_path is not None:
        fail("pretrained_path", "only semi-supervised actions start from a pre-trained phase-1 network")
    if cfg.trained_path is not None and cfg.action != READ_OUT:
        fail("trained_path", f"only the action {READ_OUT} reads out a trained network; "
                              f"'{cfg.action}' trains its own")
    rule.check(cfg)


def _check_cnn(cfg: Config, rule) -> None:
    """List lengths of a CNN: convolutions (C_list, kernel_sizes, paddings), then the fully connected part."""
    if not rule.cnn:
        trains = [r.name for r in rules.all_rules() if r.cnn]
        fail("cnn", f"the rule {rule.name} trains MLPs only; convolutional networks: {', '.join(trains)}")
    n_conv = len(cfg.C_list) - 1 if cfg.C_list else len(cfg.kernel_sizes)
    if n_conv < 1:
        fail("C_list", f"{list(cfg.C_list)} has no convolution: give the input channels and at least one more")
    for key in ("kernel_sizes", "paddings"):
        if len(getattr(cfg, key)) != n_conv:
            fail(key, f"{len(getattr(cfg, key))} values for {n_conv} convolutions")
    n_fc = len(cfg.fcLayers)
    if len(cfg.lr) != n_conv + n_fc:
        fail("lr", f"{len(cfg.lr)} rates given but the CNN has {n_conv} convolutions and {n_fc} fully "
                    f"connected layers")
    if isinstance(cfg.activation_function, str) or len(cfg.activation_function) != 1 + n_conv + n_fc:
        fail("activation_function", f"a CNN needs {1 + n_conv + n_fc} names: the input, each convolution, "
                                     f"each fully connected layer")
    if len(cfg.dropProb) != n_fc + 1:
        fail("dropProb", f"a CNN needs {n_fc + 1} values: before each fully connected layer, then the output")


def resolve_rule(raw: dict[str, Any], default: str | None = None):
    """The rule of a raw config: its `rule` key, else the owner of its action, else `default` (the entry point's,
    for a train_class_layer config that names none)."""
    action = raw.get("action", FIELDS["action"].default)
    if not isinstance(action, str):
        fail("action", f"expected a string, got {action!r}")
    owner = rules.owner(action)
    name = raw.get("rule") or (owner.name if owner else default)
    if name is None:
        fail("rule", f"action {READ_OUT} without a trained_path needs the rule to read out with: one of "
                      f"{', '.join(rules.names())}")
    if not isinstance(name, str):
        fail("rule", f"expected a rule's name, got {name!r}")
    rule = rules.get(name)
    if owner is not None and owner.name != rule.name:
        fail("action", f"'{action}' is trained by the rule {owner.name} ({owner.command}), not by {rule.name}; "
                        f"{rule.name}'s actions: {', '.join(rule.actions)}")
    return rule


def _foreign_key(key: str, value, rule) -> bool:
    """A key another rule declares, left at that rule's default (run folders written before the rule seam hold
    every rule's keys): True to drop it; an error if it was set, since this rule would ignore it."""
    owners = [other for other in rules.all_rules() if other.name != rule.name and key in other.fields]
    if any(value == _plain(other.fields[key].default) for other in owners):
        return True
    if owners:
        fail(key, f"a key of the rule {owners[0].name}; this config's rule is {rule.name}, which would ignore it")
    return False


def keys_of(rule_name: str) -> dict[str, dict]:
    """Every key a config of this rule takes, with its meta (doc, kind, checks): the shared ones and the rule's."""
    rule = rules.get(rule_name)
    return {**{k: f.metadata for k, f in FIELDS.items()}, **{k: spec.meta for k, spec in rule.fields.items()}}


def from_dict(raw: dict[str, Any], default_rule: str | None = None) -> Config:
    """Validate a mapping of config keys into a Config; raises UserError on the first problem.

    default_rule: the rule of a train_class_layer config that names none (the entry point's)."""
    if not isinstance(raw, dict):
        raise UserError("config: the top level must be a JSON object of key: value pairs")
    rule = resolve_rule(raw, default_rule)
    values, own = {}, {}
    for key, value in raw.items():
        if key in FIELDS:
            values[key] = _coerce(key, value, FIELDS[key].metadata)
        elif key in rule.fields:
            own[key] = _coerce(key, value, rule.fields[key].meta)
        elif not _foreign_key(key, value, rule):
            fail(key, f"unknown key{did_you_mean(key, [*FIELDS, *rule.fields])}")
    if values.get("action") not in (None, READ_OUT) and values["action"] not in rule.actions:
        fail("action", f"'{values['action']}' is not an action of the rule {rule.name}: "
                        f"{', '.join(rule.actions)}, or {READ_OUT}")
    if values.get("action") == READ_OUT:
        values["epochs"] = 0  # reads out, trains nothing (the original's configs keep their epochs key)
    values["rule"] = rule.name
    rule_values = tuple((k, own.get(k, spec.default)) for k, spec in rule.fields.items())
    cfg = _read_as_the_original(Config(**values, rule_values=rule_values))
    _cross_check(cfg, rule)
    return cfg


def _read_as_the_original(cfg: Config) -> Config:
    """The list lengths the original code accepts beyond ours, read as it reads them (its configFile/ runs here).

    It takes layer i's rate from lr[i], so extra rates are ignored. Its dropout is dropProb[i] before weight layer
    i and dropProb[-1] on the output (self-defined target only), so extra middle entries are ignored, and a
    supervised CNN may leave out the output's entry. An ignored entry gets one warning line; the run's saved
    config.json holds the lists as trained, so a resumed run says nothing more."""
    if not cfg.cnn and len(cfg.fcLayers) < 2:
        return cfg  # _cross_check refuses it: one error line, no warnings about the lists before it
    if cfg.cnn:
        n_fc = len(cfg.fcLayers)
        n_layers = (len(cfg.C_list) - 1 if cfg.C_list else len(cfg.kernel_sizes)) + n_fc
    else:
        n_fc = n_layers = len(cfg.fcLayers) - 1
    lr, drop = cfg.lr, cfg.dropProb
    if len(lr) > n_layers:
        _warn("lr", f"{len(lr)} rates for {n_layers} weight layers: {list(lr[n_layers:])} ignored, as the "
                    f"original code ignores them")
        lr = lr[:n_layers]
    if cfg.cnn and len(drop) == n_fc and cfg.target_kind == "supervised":
        drop = (*drop, 0.0)  # the original's supervised CNN has no output dropout
    elif len(drop) > n_fc + 1:
        _warn("dropProb", f"{len(drop)} values for {n_fc + 1} (before each of {n_fc} weight layers, then the "
                          f"output): {list(drop[n_fc:-1])} ignored, as the original code ignores them")
        drop = (*drop[:n_fc], drop[-1])
    return cfg if (lr, drop) == (cfg.lr, cfg.dropProb) else dataclasses.replace(cfg, lr=lr, dropProb=drop)


def _warn(key: str, message: str) -> None:
    print(f"warning: config key '{key}': {message}", file=sys.stderr)


def config_file(path: str | Path) -> Path:
    """`--json_path` names a folder holding config.json, or a .json file itself."""
    path = Path(path)
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    return path


def parse_override(text: str) -> tuple[str, Any]:
    """`KEY=VALUE` from `--set`; VALUE is read as JSON, else taken as a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UserError(f"--set expects KEY=VALUE, got {text!r}")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def read_json(file: Path, what: str = "config file") -> dict[str, Any]:
    """A JSON object from `file`, or one UserError line naming the file and the problem."""
    try:
        raw = json.loads(Path(file).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"{what} {file} cannot be read: {err.__class__.__name__}")
    except json.JSONDecodeError as err:
        raise UserError(f"{what} {file}: malformed JSON at line {err.lineno} column {err.colno}: {err.msg}")
    if not isinstance(raw, dict):
        raise UserError(f"{what} {file}: the top level must be a JSON object")
    return raw


def did_you_mean(name: str, names) -> str:
    """' (did you mean 'x'?)' for the closest of `names`, or ''."""
    close = difflib.get_close_matches(name, list(names), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def load(path: str | Path, overrides: list[str] | tuple[str, ...] = (), default_rule: str | None = None) -> Config:
    """Read `path` (a folder with config.json, or a .json file), apply `--set` overrides, validate.

    A train_class_layer config that names no rule takes its trained run's (`trained_path`), else default_rule."""
    raw = read_json(config_file(path))
    for text in overrides:
        key, value = parse_override(text)
        raw[key] = value
    if raw.get("action") == READ_OUT and raw.get("epochs", 0) != 0:
        print(f"note: action {READ_OUT} trains nothing; epochs {raw['epochs']} is taken as 0", file=sys.stderr)
    if raw.get("action") == READ_OUT and not raw.get("rule") and isinstance(raw.get("trained_path"), str):
        default_rule = trained_rule(Path(raw["trained_path"]))
    return from_dict(raw, default_rule)


def trained_rule(folder: Path) -> str:
    """The rule a run folder was trained with: its config's `rule`, or the owner of its action (older runs)."""
    file = Path(folder) / "config.json"
    if not file.is_file():
        fail("trained_path", f"{folder} is not a run folder (no config.json)")
    saved = read_json(file, "--trained_path config")
    if saved.get("rule"):
        return saved["rule"]
    owner = rules.owner(saved.get("action", FIELDS["action"].default))
    if owner is None:
        fail("trained_path", f"{folder} is itself a read-out that names no rule; give `rule`")
    return owner.name


def replace(cfg: Config, **changes) -> Config:
    """A new Config with some keys changed, validated like a loaded one."""
    return from_dict({**cfg.to_json(), **changes})


def schema() -> list[tuple[str, str, dict]]:
    """Every config key: (owner, name, meta with the default): 'shared' for the core's, else the rule's name."""
    rows = [("shared", f.name, {**f.metadata, "default": _plain(f.default if f.default is not dataclasses.MISSING
                                                                  else f.default_factory())})
            for f in FIELDS.values()]
    return rows + [(rule.name, name, {**spec.meta, "default": _plain(spec.default)})
                   for rule in rules.all_rules() for name, spec in rule.fields.items()]


def keys_markdown() -> str:
    """The config-key table of docs/config-keys.md, generated from the schema (`python -m funcs.config keys`)."""
    lines = ["# Config keys", "", "Generated by `python -m funcs.config keys > docs/config-keys.md` from the schema "
             "(funcs/config.py for the shared keys, each rule's `fields`); a test checks this copy is current.", ""]
    owner_seen = None
    for owner, name, meta in schema():
        if owner != owner_seen:
            title = "Shared keys (every rule)" if owner == "shared" else f"Keys of the rule `{owner}`"
            lines += ["", f"## {title}", "", "| key | default | doc |", "|---|---|---|"]
            owner_seen = owner
        lines.append(f"| `{name}` | `{json.dumps(meta['default'])}` | {meta['doc']} |")
    return "\n".join(lines[:4] + lines[5:]) + "\n"


if __name__ == "__main__":
    if sys.argv[1:] != ["keys"]:
        sys.exit("usage: python -m funcs.config keys   (prints the config-key table, docs/config-keys.md)")
    print(keys_markdown(), end="")
