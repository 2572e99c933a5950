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

from funcs import activations
from funcs.errors import UserError

ACTIONS = ("bp", "unsupervised_bp", "semi_supervised_bp", "ep", "unsupervised_ep", "semi_supervised_ep",
           "train_class_layer")
ACTIVATIONS = tuple(activations.ACTIVATIONS)
READ_OUT = "train_class_layer"  # the original code's name for "read out a network, train nothing"
DATASETS = ("mnist", "fashionMnist", "svhn", "cifar10", "digits")


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
    n_class: int = _key(10, "number of classes in the dataset", "int", lo=2)
    action: str = _key("unsupervised_bp", "the rule (bp, ep) and where the target comes from (supervised, "
                       "unsupervised_, semi_supervised_); train_class_layer: no training (epochs is taken as "
                       "0), only the association and the linear classifier on `trained_path`'s network",
                       "str", choices=ACTIONS)
    seed: int = _key(1, "random seed of the run (weights, shuffling, dropout, label subsets)", "int", lo=0)
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
        ["x", "hardsigm"], "BP: one activation per entry of fcLayers (the first acts on the input); "
        "EP: one name for every layer", "names", choices=ACTIVATIONS)
    dropProb: tuple[float, ...] = _key([0.0, 0.0], "dropout probability per entry of fcLayers: input, "
                                       "hidden..., output (the output mask hides neurons from the target)",
                                       "floats", lo=0, hi=1, hi_open=True)
    dropout: bool = _key(True, "EP: enable the dropout of dropProb (BP always uses dropProb)", "bool")
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
                            "towards lr_end_factor after the last (the paper's), or 'constant'", "str",
                            choices=("linear", "constant"))
    lr_end_factor: float = _key(5e-4, "final factor of the linear schedule (paper: 5e-4)", "float", lo=0,
                                lo_open=True)

    # --- the self-defined target ------------------------------------------------------
    nudge: int = _key(1, "number of winners k of the kWTA target (EP's nudging strength is `beta`)", "int", lo=1)
    gamma: float = _key(0.5, "homeostasis rate: H <- H + gamma * (A - T)", "float", lo=0)
    eta: float = _key(0.6, "sequential mode (batchSize 1): moving average A <- eta * d + (1 - eta) * A",
                      "float", lo=0, hi=1, lo_open=True)
    smooth: bool = _key(False, "label smoothing of the target", "bool")

    # --- equilibrium propagation ------------------------------------------------------
    dt: float = _key(0.2, "EP: discretisation step of the dynamics", "float", lo=0, lo_open=True)
    T: int = _key(40, "EP: free phase steps", "int", lo=1)
    Kmax: int = _key(10, "EP: nudged phase steps", "int", lo=1)
    beta: float = _key(0.2, "EP: nudging strength", "float", lo=0, lo_open=True)
    clamped: bool = _key(True, "EP: clamp neuron states to [0, 1]", "bool")
    error_estimate: str = _key("one-sided", "EP: 'one-sided' or 'symmetric' nudging", "str",
                               choices=("one-sided", "symmetric"))
    compile: bool = _key(False, "EP: run the relaxation through torch.compile (about 10% faster on a CPU, "
                                "bench/ep_compile; compiling costs a minute or two at the start)", "bool")

    # --- semi-supervised --------------------------------------------------------------
    semi_seed: int = _key(13, "seed of the class-balanced labeled subset; -1 draws a fresh one, recorded in "
                          "summary.json and run.log", "int", lo=-1)
    train_label_number: int = _key(3000, "labeled examples in semi-supervised training", "int", lo=1)
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
    class_schedule: str = _key("auto", "classifier lr schedule: 'exponential' (x0.9 per epoch, after BP), "
                               "'linear' (1 to 0.5, after EP), 'step' (halvings, CNN), or 'auto' to pick as "
                               "the paper did", "str", choices=("auto", "exponential", "linear", "step"))

    # --- derived views ---------------------------------------------------------------
    @property
    def n_out(self) -> int:
        """Number of output neurons (the last entry of fcLayers)."""
        return self.fcLayers[-1]

    @property
    def rule(self) -> str:
        """The learning rule named by the action: 'bp' or 'ep'.

        train_class_layer names none: the network keys tell, since EP takes one
        activation name for every layer and BP a list.
        """
        if self.action == READ_OUT:
            return "ep" if isinstance(self.activation_function, str) else "bp"
        return "ep" if self.action.endswith("ep") else "bp"

    @property
    def drop_probs(self) -> tuple[float, ...]:
        """Dropout probability of each entry of fcLayers as trained: EP's `dropout: false` turns them all off."""
        if self.rule == "ep" and not self.dropout:
            return (0.0,) * len(self.dropProb)
        return self.dropProb

    @property
    def target_kind(self) -> str:
        """Where the target comes from: 'supervised', 'unsupervised' or 'semi_supervised'.

        train_class_layer trains nothing and is read out as unsupervised runs are.
        """
        if self.action == READ_OUT:
            return "unsupervised"
        return self.action.rsplit("_", 1)[0] if "_" in self.action else "supervised"

    def to_json(self) -> dict[str, Any]:
        """The config as plain JSON, in the original key names; `load` of it gives back an equal Config."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


FIELDS = {f.name: f for f in dataclasses.fields(Config)}


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def _fail(key: str, problem: str):
    raise UserError(f"config key '{key}': {problem}")


def _scalar(key: str, value, kind: str):
    """Check one JSON scalar against a kind; ints are accepted where floats are."""
    if kind == "bool":
        # The original EP configs write `"clamped": 1`, so 0 and 1 count as booleans.
        if isinstance(value, bool) or (type(value) is int and value in (0, 1)):
            return bool(value)
        _fail(key, f"expected true or false, got {value!r}")
    if kind == "int":
        if type(value) is int:
            return value
        if type(value) is float and value.is_integer():
            return int(value)
        _fail(key, f"expected an integer, got {value!r}")
    if kind == "float":
        if type(value) in (int, float) and math.isfinite(value):
            return float(value)
        _fail(key, f"expected a finite number, got {value!r}")
    if isinstance(value, str):
        return value
    _fail(key, f"expected a string, got {value!r}")


def _check_value(key: str, value, meta) -> None:
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        _fail(key, f"{value!r} is not one of {', '.join(choices)}{did_you_mean(str(value), choices)}")
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is not None and (value <= lo if meta.get("lo_open") else value < lo):
        _fail(key, f"{value} must be {'>' if meta.get('lo_open') else '>='} {lo}")
    if hi is not None and (value >= hi if meta.get("hi_open") else value > hi):
        _fail(key, f"{value} must be {'<' if meta.get('hi_open') else '<='} {hi}")


_ITEM_KIND = {"ints": "int", "ints?": "int", "floats": "float", "names": "str"}  # list kinds


def _coerce(key: str, value):
    """Turn one JSON value into the field's type, with the field's checks applied."""
    meta = FIELDS[key].metadata
    kind = meta["kind"]
    if value is None:
        if kind.endswith("?"):
            return None
        _fail(key, "must not be null")
    if kind == "names" and isinstance(value, str):  # EP style: one activation for every layer
        kind = "str"
    if kind in _ITEM_KIND:
        if not isinstance(value, list):
            _fail(key, f"expected a list, got {value!r}")
        if not value:
            _fail(key, "must not be empty")
        items = tuple(_scalar(key, v, _ITEM_KIND[kind]) for v in value)
        for item in items:
            _check_value(key, item, meta)
        return items
    out = _scalar(key, value, kind.rstrip("?"))
    _check_value(key, out, meta)
    return out


def _cross_check(cfg: Config) -> None:
    """Checks that involve several keys (list lengths against fcLayers, k against n_out)."""
    n_layers = len(cfg.fcLayers)
    if not cfg.cnn:
        if n_layers < 2:
            _fail("fcLayers", f"an MLP needs an input and an output size, got {list(cfg.fcLayers)}")
        if len(cfg.lr) != n_layers - 1:
            _fail("lr", f"{len(cfg.lr)} rates given but fcLayers {list(cfg.fcLayers)} has {n_layers - 1} "
                        f"weight layers")
        if len(cfg.dropProb) != n_layers:
            _fail("dropProb", f"{len(cfg.dropProb)} values given but fcLayers {list(cfg.fcLayers)} has "
                              f"{n_layers} entries (input, hidden..., output)")
        if cfg.rule == "bp" and isinstance(cfg.activation_function, str):
            _fail("activation_function", "BP needs a list with one name per entry of fcLayers")
        if cfg.rule == "ep":
            _check_ep(cfg)
        if isinstance(cfg.activation_function, tuple) and len(cfg.activation_function) != n_layers:
            _fail("activation_function", f"{len(cfg.activation_function)} names given but fcLayers "
                                         f"{list(cfg.fcLayers)} has {n_layers} entries")
    if cfg.cnn:
        _check_cnn(cfg)
    names = (cfg.activation_function,) if isinstance(cfg.activation_function, str) else cfg.activation_function
    if not cfg.cnn and "wta" in names:
        _fail("activation_function", "'wta' (triangle WTA) acts on convolution maps; it needs \"cnn\": true")
    if cfg.class_activation == "wta":
        _fail("class_activation", "'wta' acts on convolution maps, not on the classifier's output")
    if len(cfg.class_lr) != 1:
        _fail("class_lr", f"the linear classifier has one learning rate, got {list(cfg.class_lr)}")
    if cfg.nudge > cfg.n_out:
        _fail("nudge", f"{cfg.nudge} winners but the output layer has only {cfg.n_out} neurons")
    if cfg.target_kind != "unsupervised" and cfg.n_out % cfg.n_class:
        _fail("fcLayers", f"supervised training needs n_out ({cfg.n_out}) to be a multiple of "
                          f"n_class ({cfg.n_class}): each class owns n_out / n_class neurons")
    if cfg.target_kind == "semi_supervised":
        if len(cfg.pre_lr) != len(cfg.lr):
            _fail("pre_lr", f"{len(cfg.pre_lr)} rates given but the network has {len(cfg.lr)} weight layers")
        if cfg.train_label_number % cfg.n_class:
            _fail("train_label_number", f"{cfg.train_label_number} labels cannot be split equally over "
                                        f"{cfg.n_class} classes")
    elif cfg.pretrained_path is not None:
        _fail("pretrained_path", "only semi-supervised actions start from a pre-trained phase-1 network")
    if cfg.trained_path is not None and cfg.action != READ_OUT:
        _fail("trained_path", f"only the action {READ_OUT} reads out a trained network; "
                              f"'{cfg.action}' trains its own")


def _check_cnn(cfg: Config) -> None:
    """List lengths of a CNN: convolutions (C_list, kernel_sizes, paddings), then the fully connected part."""
    if cfg.rule != "bp":
        _fail("cnn", "convolutional networks are trained by BP (python -m bp.main) only")
    n_conv = len(cfg.C_list) - 1 if cfg.C_list else len(cfg.kernel_sizes)
    if n_conv < 1:
        _fail("C_list", f"{list(cfg.C_list)} has no convolution: give the input channels and at least one more")
    for key in ("kernel_sizes", "paddings"):
        if len(getattr(cfg, key)) != n_conv:
            _fail(key, f"{len(getattr(cfg, key))} values for {n_conv} convolutions")
    n_fc = len(cfg.fcLayers)
    if len(cfg.lr) != n_conv + n_fc:
        _fail("lr", f"{len(cfg.lr)} rates given but the CNN has {n_conv} convolutions and {n_fc} fully "
                    f"connected layers")
    if isinstance(cfg.activation_function, str) or len(cfg.activation_function) != 1 + n_conv + n_fc:
        _fail("activation_function", f"a CNN needs {1 + n_conv + n_fc} names: the input, each convolution, "
                                     f"each fully connected layer")
    if len(cfg.dropProb) != n_fc + 1:
        _fail("dropProb", f"a CNN needs {n_fc + 1} values: before each fully connected layer, then the output")


def _check_ep(cfg: Config) -> None:
    """EP's network: one activation with a known derivative for every layer; a read-out needs a hidden layer."""
    name = cfg.activation_function
    if not isinstance(name, str):
        _fail("activation_function", "EP uses one activation for every layer: give one name such as "
                                     "\"hardsigm\", not a list")
    if name not in activations.ENERGY_ACTIVATIONS:
        _fail("activation_function", f"EP needs an activation with a derivative for its dynamics: "
                                     f"{', '.join(activations.ENERGY_ACTIVATIONS)}; got '{name}'")
    if cfg.loss == "Cross-entropy" and len(cfg.fcLayers) < 3:
        _fail("loss", "EP with cross-entropy uses a softmax read-out of the last hidden layer: fcLayers needs "
                      "at least one hidden layer")
    if cfg.loss == "Cross-entropy" and cfg.drop_probs[-1] > 0:
        _fail("dropProb", "EP's softmax read-out (loss Cross-entropy) has no dropout: set the last entry to 0")


def from_dict(raw: dict[str, Any]) -> Config:
    """Validate a mapping of config keys into a Config; raises UserError on the first problem."""
    if not isinstance(raw, dict):
        raise UserError("config: the top level must be a JSON object of key: value pairs")
    values = {}
    for key, value in raw.items():
        if key not in FIELDS:
            _fail(key, f"unknown key{did_you_mean(key, FIELDS)}")
        values[key] = _coerce(key, value)
    if values.get("action") == READ_OUT:
        values["epochs"] = 0  # reads out, trains nothing (the original's configs keep their epochs key)
    cfg = Config(**values)
    _cross_check(cfg)
    return cfg


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


def load(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read `path` (a folder with config.json, or a .json file), apply `--set` overrides, validate."""
    raw = read_json(config_file(path))
    for text in overrides:
        key, value = parse_override(text)
        raw[key] = value
    if raw.get("action") == READ_OUT and raw.get("epochs", 0) != 0:
        print(f"note: action {READ_OUT} trains nothing; epochs {raw['epochs']} is taken as 0", file=sys.stderr)
    return from_dict(raw)


def replace(cfg: Config, **changes) -> Config:
    """A new Config with some keys changed, validated like a loaded one."""
    return from_dict({**cfg.to_json(), **changes})
