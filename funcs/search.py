"""Hyperparameter search with optuna: `python -m bp.optuna_optim --json_path configFile/hyper_bp/unsupervised`.

`optuna_config.json` holds a full config (the keys of config.json, validated the
same way) plus the search keys of `SEARCH_KEYS`:

    "search": {"gamma": {"low": 0.1, "high": 1, "log": true},            # float (the key's kind)
               "batchSize": {"choices": [16, 32]},                         # categorical
               "lr": {"low": 1e-5, "high": 10, "log": true, "per_layer": true},  # lr0, lr1, ... one per layer
               "dropProb": [null, null, {"low": 0, "high": 0.5}]}          # per entry; null keeps the value
    "mode": "batch" | "sequential"   the original's: homeostasis over mini-batches, or batchSize 1
                                     with the moving average of rate eta
    "nudge_max": 10                  the original's: k (`nudge`) searched in 1..nudge_max
    "n_trials", "sampler" ("random", the paper's, or "tpe"), "sampler_seed", "pruner", "metric", "direction"

Each trial is one Config, trained by the call `bp.main` makes (`cli.prepare`,
then `cli.train_config`) and scored on `validation_size` training examples held
out from training (`cli.shrink`), never on the test set. The best trial's
config.json repeats the trial under `python -m bp.main --json_path`; the test
set is used once, at the end, by the best config trained with the validation
examples back in the training set.

Storage: a journal file in the study folder by default (several processes of
one machine may share it; a trial left running by a process that died is
failed when the next worker of that machine starts), or any optuna storage URL
with `--storage` (PostgreSQL for several machines: workers that stop sending
heartbeats have their trial failed while the study goes on).
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import math
import os
import random
import re
import socket
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from funcs import cli, loop, results, rules, semi
from funcs import config as config_mod
from funcs import data as data_mod
from funcs.errors import UserError

# Keys of optuna_config.json that describe the search rather than a run.
SEARCH_KEYS = ("search", "mode", "nudge_max", "n_trials", "sampler", "sampler_seed", "pruner", "metric", "direction")
SPEC_KEYS = ("type", "low", "high", "log", "step", "choices", "per_layer")
# Keys fixed for a whole study: where it runs, what it trains, and the seed the validation split is drawn from.
FIXED_KEYS = ("action", "dataset", "n_class", "device", "data_dir", "out_dir", "seed", "validation_size",
              "trained_path", "pretrained_path")
# The original code's pruner (bp/optuna_optim.py): keep the best 20% at each epoch, after 2 trials and 3 epochs.
DEFAULT_PRUNER = {"name": "percentile", "percentile": 20.0, "n_startup_trials": 2, "n_warmup_steps": 3}
PRUNER_ARGS = {"none": (), "median": ("n_startup_trials", "n_warmup_steps", "interval_steps"),
               "percentile": ("percentile", "n_startup_trials", "n_warmup_steps", "interval_steps")}
# The final metrics each kind of run returns (errors as fractions, on the validation split during a search).
METRICS = {"unsupervised": ("error_mean", "error_max", "classifier_error", "loss"),
           "supervised": ("error", "loss"),
           "semi_supervised": ("error", "pretrain_error", "loss"),
           "train_class_layer": ("classifier_error", "error_mean", "error_max")}
DEFAULT_METRIC = {"unsupervised": "error_mean", "supervised": "error", "semi_supervised": "error",
                  "train_class_layer": "classifier_error"}
SCALARS = (type(None), bool, int, float, str)


def _fail(where: str, problem: str):
    raise UserError(f"{where}: {problem}")


# --- the search space ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Param:
    """One searched value: optuna's parameter `name`, the config `key` it sets, and where in a list.

    index None sets the whole key (a list key gets the value in every entry);
    an int sets that entry of the list (`per_layer`).
    """
    name: str
    key: str
    index: int | None
    type: str  # 'float', 'int' or 'categorical'
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple | None = None

    def suggest(self, trial):
        if self.type == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.type == "int":
            return trial.suggest_int(self.name, self.low, self.high, step=self.step or 1, log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def describe(self) -> str:
        if self.type == "categorical":
            return f"{self.name}: one of {list(self.choices)}"
        scale = ", log scale" if self.log else (f", step {self.step}" if self.step else "")
        return f"{self.name}: {self.type} in [{self.low}, {self.high}]{scale}"


@dataclass(frozen=True)
class Search:
    """A parsed optuna_config.json: the base Config, the searched Params and how the study runs."""
    base: config_mod.Config
    params: tuple[Param, ...]
    n_trials: int
    sampler: str
    sampler_seed: int | None
    pruner: dict
    metric: str
    direction: str
    mode: str | None
    nudge_max: int | None

    def trial_config(self, values: dict[str, Any]) -> config_mod.Config:
        """The Config of one trial: the base with each Param's value set; validated like any config."""
        return config_mod.from_dict(assign(self.base.to_json(), self.params, values))

    def record(self) -> dict:
        """What makes two workers run the same study (kept with the study; local paths and devices left out)."""
        base = {k: v for k, v in self.base.to_json().items() if k not in ("device", "data_dir", "out_dir")}
        return {"base": base, "params": [dataclasses.asdict(p) for p in self.params], "metric": self.metric,
                "direction": self.direction, "mode": self.mode, "nudge_max": self.nudge_max,
                "sampler": self.sampler, "pruner": self.pruner}


def assign(raw: dict, params, values: dict[str, Any]) -> dict:
    """Config JSON with each param's value put at its key (and list entry)."""
    raw = dict(raw)
    for p in params:
        value = values[p.name]
        current = raw.get(p.key)
        if p.index is not None:
            items = list(current)
            items[p.index] = value
            raw[p.key] = items
        elif isinstance(current, list) and not isinstance(value, list):
            raw[p.key] = [value] * len(current)
        else:
            raw[p.key] = value
    return raw


def _number(where: str, name: str, value, integer: bool):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        _fail(where, f"'{name}' must be a finite number, got {value!r}")
    if integer:
        if isinstance(value, float) and not value.is_integer():
            _fail(where, f"'{name}' must be an integer for an integer key, got {value!r}")
        return int(value)
    return float(value)


def _item_kind(kind: str) -> str:
    """The kind of one value of a config key of this kind: 'int', 'float' or 'text' (strings and booleans)."""
    if kind in ("int", "int?", "ints", "ints?"):
        return "int"
    if kind in ("float", "floats"):
        return "float"
    return "text"


def _is_list_key(key: str, base) -> bool:
    return isinstance(base.to_json()[key], list)


def _param(where: str, name: str, key: str, index: int | None, spec, kind: str) -> Param:
    """One Param from its JSON spec, its type taken from the config key's kind unless given."""
    if not isinstance(spec, dict):
        _fail(where, f"expected an object such as {{\"low\": 0.1, \"high\": 1}} or {{\"choices\": [...]}}, "
                     f"got {spec!r}")
    for k in spec:
        if k not in SPEC_KEYS:
            _fail(where, f"unknown entry '{k}'{config_mod.did_you_mean(k, SPEC_KEYS)}; "
                         f"an entry takes {', '.join(SPEC_KEYS)}")
    kind = _item_kind(kind)
    typ = spec.get("type", "categorical" if "choices" in spec else kind)
    if typ == "text" and "type" not in spec:
        _fail(where, f"'{key}' takes text or true/false: search it over choices, e.g. {{\"choices\": [...]}}")
    if typ not in ("float", "int", "categorical"):
        _fail(where, f"'type' must be float, int or categorical, got {typ!r}")
    if typ == "categorical":
        choices = spec.get("choices")
        extra = [k for k in ("low", "high", "log", "step") if k in spec]
        if extra:
            _fail(where, f"choices take no '{extra[0]}'")
        if not isinstance(choices, list) or not choices:
            _fail(where, f"'choices' must be a non-empty list, got {choices!r}")
        for c in choices:
            if not isinstance(c, SCALARS):
                _fail(where, f"each choice must be a number, a string, true/false or null, got {c!r}")
        if len({json.dumps(c) for c in choices}) != len(choices):
            _fail(where, f"'choices' lists a value twice: {choices}")
        return Param(name, key, index, "categorical", choices=tuple(choices))
    if kind == "text":
        _fail(where, f"'{key}' takes text or true/false: search it over 'choices', not a {typ} range")
    if typ != kind:
        _fail(where, f"'{key}' is {'an integer' if kind == 'int' else 'a real-valued'} key; "
                     f"'type' {typ!r} does not fit it (leave 'type' out)")
    if "choices" in spec:
        _fail(where, "give either 'choices' or 'low' and 'high', not both")
    for k in ("low", "high"):
        if k not in spec:
            _fail(where, f"'{k}' is missing (a range needs 'low' and 'high')")
    integer = typ == "int"
    low, high = _number(where, "low", spec["low"], integer), _number(where, "high", spec["high"], integer)
    if not low < high:
        _fail(where, f"'low' ({low}) must be below 'high' ({high})")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        _fail(where, f"'log' must be true or false, got {log!r}")
    step = spec.get("step")
    if step is not None:
        step = _number(where, "step", step, integer)
        if step <= 0:
            _fail(where, f"'step' must be positive, got {step}")
        if log:
            _fail(where, "'step' and 'log' cannot be combined (optuna samples a log scale without steps)")
    if log and low <= 0:
        _fail(where, f"a log scale needs 'low' > 0, got {low}")
    return Param(name, key, index, typ, low=low, high=high, log=log, step=step)


def _params_of(key: str, spec, base) -> list[Param]:
    """The Params of one entry of "search": one, or one per list entry (per_layer or a list of specs)."""
    where = f"search key '{key}'"
    known = config_mod.keys_of(base.rule)
    if key not in known:
        _fail(where, f"not a config key{config_mod.did_you_mean(key, known)}")
    if key in FIXED_KEYS:
        why = "the validation split is drawn from it" if key == "seed" else "it is fixed for the whole study"
        _fail(where, f"cannot be searched: {why}")
    # The network read in fixes these keys: cli.load_trained and semi.load_pretrained refuse any other value.
    if base.trained_path and key in cli.NETWORK_KEYS + cli.NETWORK_KEYS_CNN + rules.get(base.rule).network_keys:
        _fail(where, "cannot be searched: the network is read from trained_path, which fixes it")
    if base.pretrained_path and key in semi.PRETRAINED_KEYS:
        _fail(where, "cannot be searched: the phase-1 network is read from pretrained_path, which fixes it")
    current = base.to_json()[key]
    if isinstance(spec, list):  # one spec (or null) per entry of a list key
        if not isinstance(current, list):
            _fail(where, f"a list of specs searches a list key entry by entry, but '{key}' is {current!r}")
        if len(spec) != len(current):
            _fail(where, f"{len(spec)} entries given but '{key}' has {len(current)} ({current})")
        out = [_param(f"search key '{key}' entry {i}", f"{key}{i}", key, i, s, known[key]["kind"])
               for i, s in enumerate(spec) if s is not None]
        if not out:
            _fail(where, "every entry is null: nothing to search")
        return out
    per_layer = spec.get("per_layer", False) if isinstance(spec, dict) else False
    if not isinstance(per_layer, bool):
        _fail(where, f"'per_layer' must be true or false, got {per_layer!r}")
    if per_layer and not isinstance(current, list):
        _fail(where, f"'per_layer' needs a list key, but '{key}' is {current!r}")
    if per_layer:
        one = {k: v for k, v in spec.items() if k != "per_layer"}
        return [_param(where, f"{key}{i}", key, i, one, known[key]["kind"]) for i in range(len(current))]
    if isinstance(spec, dict):
        spec = {k: v for k, v in spec.items() if k != "per_layer"}
    return [_param(where, key, key, None, spec, known[key]["kind"])]


def _probe(base, params: list[Param]) -> None:
    """Each bound and choice of each Param must make a valid config with the other keys at their base values."""
    for p in params:
        probes = list(p.choices) if p.type == "categorical" else [p.low, p.high]
        for value in probes:
            try:
                config_mod.from_dict(assign(base.to_json(), [p], {p.name: value}))
            except UserError as err:
                what = "choice" if p.type == "categorical" else ("low" if value == p.low else "high")
                _fail(f"search key '{p.name}'", f"{what} {value!r} makes an invalid config: {err}")


def _choice(where: str, value, allowed) -> str:
    if value not in allowed:
        _fail(where, f"{value!r} is not one of {', '.join(map(str, allowed))}"
                     f"{config_mod.did_you_mean(str(value), allowed)}")
    return value


def _positive_int(where: str, value, allow_zero: bool = False) -> int:
    lowest = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
        _fail(where, f"expected an integer >= {lowest}, got {value!r}")
    return value


def _pruner(value) -> dict:
    where = "optuna_config key 'pruner'"
    if value is None:
        return {"name": "none"}
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict) or "name" not in value:
        _fail(where, f"expected a name (none, median, percentile) or an object with 'name', got {value!r}")
    name = _choice(where, value["name"], tuple(PRUNER_ARGS))
    out = {"name": name}
    for k, v in value.items():
        if k == "name":
            continue
        if k not in PRUNER_ARGS[name]:
            allowed = ", ".join(PRUNER_ARGS[name]) or "nothing"
            _fail(where, f"the {name} pruner takes {allowed}; got '{k}'")
        if k == "percentile":
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 100:
                _fail(where, f"'percentile' must be a number in [0, 100], got {v!r}")
            v = float(v)
        else:
            v = _positive_int(f"{where} '{k}'", v, allow_zero=k != "interval_steps")
        out[k] = v
    if name == "percentile" and "percentile" not in out:
        _fail(where, "the percentile pruner needs 'percentile' (the share of best trials kept at each epoch)")
    return out


def parse(raw: dict, rule: rules.Rule) -> Search:
    """Validate optuna_config.json's content into a Search; raises UserError naming the key on the first problem."""
    if not isinstance(raw, dict):
        raise UserError("optuna_config: the top level must be a JSON object of key: value pairs")
    known = config_mod.keys_of(rule.name)
    for key in raw:
        if key not in known and key not in SEARCH_KEYS:
            _fail(f"optuna_config key '{key}'", f"unknown key{config_mod.did_you_mean(key, [*known, *SEARCH_KEYS])}")
    mode = raw.get("mode")
    if mode is not None:
        _choice("optuna_config key 'mode'", mode, ("batch", "sequential"))
    base = _base_config(raw, rule, mode)
    params, base, nudge_max = _search_params(raw, base, mode)
    seed = raw.get("sampler_seed")
    if seed is not None:
        _positive_int("optuna_config key 'sampler_seed'", seed, allow_zero=True)
    return Search(base=base, params=tuple(params),
                  n_trials=_positive_int("optuna_config key 'n_trials'", raw.get("n_trials", 100)),
                  sampler=_choice("optuna_config key 'sampler'", raw.get("sampler", "random"), ("random", "tpe")),
                  sampler_seed=seed, pruner=_pruner(raw.get("pruner", DEFAULT_PRUNER)), metric=_metric(raw, base),
                  direction=_choice("optuna_config key 'direction'", raw.get("direction", "minimize"),
                                    ("minimize", "maximize")),
                  mode=mode, nudge_max=nudge_max)


def _base_config(raw: dict, rule: rules.Rule, mode: str | None) -> config_mod.Config:
    """The config every trial starts from: the run keys of optuna_config.json, checked as bp.main checks them,
    with a validation split and the batch size of `mode`."""
    run = {k: v for k, v in raw.items() if k not in SEARCH_KEYS}
    if mode == "sequential":
        if run.get("batchSize", 1) != 1:
            _fail("optuna_config key 'mode'", f"'sequential' trains one example at a time (batchSize 1), but "
                                              f"batchSize is {run['batchSize']}; remove it or use mode 'batch'")
        run["batchSize"] = 1
    base = config_mod.from_dict(run, default_rule=rule.name)
    cli.check(rule, base)
    if base.validation_size is None:
        _fail("optuna_config key 'validation_size'", "missing: trials are scored on a validation split carved "
                                                     "from the training set, never on the test set; set it "
                                                     "(e.g. 10000 for MNIST)")
    if base.out_dir is not None:
        _fail("optuna_config key 'out_dir'", "the search writes into its study folder: use --out instead")
    if mode == "batch" and base.batchSize == 1:
        _fail("optuna_config key 'mode'", "'batch' averages the activity over mini-batches: batchSize must be > 1 "
                                          "(batchSize 1 is mode 'sequential')")
    return base


def _search_params(raw: dict, base, mode: str | None) -> tuple[list[Param], config_mod.Config, int | None]:
    """The Params of "search" and of nudge_max, each bound and choice probed; (params, base, nudge_max), the base
    with nudge 1 where nudge_max is 1."""
    search = raw.get("search", {})
    if not isinstance(search, dict):
        _fail("optuna_config key 'search'", f"expected an object of KEY: SPEC, got {search!r}")
    params: list[Param] = []
    for key, spec in search.items():
        params += _params_of(key, spec, base)
    if mode == "sequential" and "batchSize" in search:
        _fail("search key 'batchSize'", "mode 'sequential' fixes batchSize to 1")
    if mode == "batch" and "eta" in search:
        _fail("search key 'eta'", "eta is the moving-average rate of mode 'sequential' (batchSize 1); "
                                  "mode 'batch' does not use it")
    if mode == "batch":
        for p in params:
            if p.key == "batchSize" and (1 in (p.choices or ()) or p.low == 1):
                _fail(f"search key '{p.name}'", "mode 'batch' needs batchSize > 1 (1 is mode 'sequential')")
    nudge_max = raw.get("nudge_max")
    if nudge_max is not None:
        nudge_max = _positive_int("optuna_config key 'nudge_max'", nudge_max)
        if "nudge" in search:
            _fail("optuna_config key 'nudge_max'", "give either nudge_max or search key 'nudge', not both")
        if nudge_max > 1:
            params.append(Param("nudge", "nudge", None, "int", low=1, high=nudge_max))
        else:
            base = config_mod.replace(base, nudge=1)
    names = [p.name for p in params]
    for name in names:
        if names.count(name) > 1:
            _fail(f"search key '{name}'", "searched twice")
    if not params:
        _fail("optuna_config key 'search'", "nothing to search: give at least one key, e.g. "
                                            "\"search\": {\"gamma\": {\"low\": 0.1, \"high\": 1}}")
    _probe(base, params)
    return params, base, nudge_max


def _metric(raw: dict, base) -> str:
    """The metric optimised: one of the final metrics of the base config's kind of run."""
    kind = config_mod.READ_OUT if base.action == config_mod.READ_OUT else base.target_kind
    metric = raw.get("metric", DEFAULT_METRIC[kind])
    _choice("optuna_config key 'metric'", metric, METRICS[kind])
    if metric == "classifier_error" and base.class_epoch == 0:
        _fail("optuna_config key 'metric'", "classifier_error needs the linear classifier: class_epoch > 0")
    if metric == "loss" and base.epochs == 0:
        _fail("optuna_config key 'metric'", "loss needs training epochs (epochs > 0)")
    return metric


def search_file(path) -> Path:
    """`--json_path` names a folder holding optuna_config.json, or a .json file itself."""
    path = Path(path)
    return config_mod.config_file(path / "optuna_config.json" if path.is_dir() else path)


def load(path, rule: rules.Rule, overrides=(), trained_path: str | None = None) -> tuple[Search, dict]:
    """Read optuna_config.json, apply `--set` overrides (search keys too), validate; (Search, raw JSON).

    With trained_path (a run folder, for the classifier searches), the keys the
    file does not give come from that run's config.json: its network, data and seed
    (not its folder, its validation split, nor a phase-2 run's phase-1 network).
    """
    raw = config_mod.read_json(search_file(path), "search file")
    if trained_path is not None:
        saved = config_mod.read_json(results.trained_config_file(Path(trained_path)), "--trained_path config")
        raw = {**{k: v for k, v in saved.items() if k not in ("out_dir", "validation_size", "pretrained_path")},
               **raw, "trained_path": str(trained_path)}
    elif raw.get("action") == config_mod.READ_OUT:
        raise UserError("this search reads out a trained network: give --trained_path RUN_DIR (a run folder of "
                        "a training run)")
    for text in overrides:
        key, value = config_mod.parse_override(text)
        raw[key] = value
    return parse(raw, rule), raw


# --- one trial ----------------------------------------------------------------------------------------

# A trial whose loss is not finite (raised by the epoch loop, or below): recorded failed with its one-line reason.
Diverged = loop.Diverged


class TrialReporter:
    """Stands in for a run folder during a trial (loop.train's `run`): reports the metric each epoch, may prune.

    It writes nothing but semi-supervised phase-1 files into a temporary folder. A line per training and per
    classifier epoch (into search.log too), a bar over them on a terminal, and a line a minute inside a long
    epoch elsewhere (results.Progress).
    """

    def __init__(self, trial, metric: str, folder: Path, echo):
        self.trial, self.metric, self.folder, self.echo = trial, metric, folder, echo
        self.facts: dict = {}
        self.progress: results.Progress | None = None

    def log(self, message: str, echo: bool = True) -> None:
        pass  # the run's own lines; the search prints one line per epoch instead

    def _line(self, message: str) -> None:
        with self.progress.writing() if self.progress is not None else contextlib.nullcontext():
            self.echo(message)

    def start_progress(self, total: int, initial: int) -> None:
        self.stop_progress()
        self.progress = results.Progress(total, initial, "epoch", desc=f"trial {self.trial.number}", say=self._line)

    def within_epoch(self, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress.within(done, total)

    def start_classifier(self, epochs: int, n_train: int, n_test: int, seconds: float) -> None:
        self.stop_progress()
        self.progress = results.Progress(epochs, 0, "epoch", desc=f"trial {self.trial.number} classifier",
                                         say=self._line)

    def stop_progress(self) -> None:
        if self.progress is not None:
            self.progress.close()
            self.progress = None

    def _report(self, value: float, step: int) -> None:
        import optuna
        self.trial.report(value, step)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {step}: {self.metric} {value:.4f}")

    def epoch_done(self, row: dict, checkpoint: dict) -> None:
        if not math.isfinite(row["loss"]):
            raise Diverged(f"diverged: loss {row['loss']} at epoch {row['epoch']}")
        if self.progress is not None:
            self.progress.step()
        shown = (self.metric, row[self.metric]) if self.metric in row else ("loss", row["loss"])
        took = f" ({row['seconds']:.1f} s)" if row.get("seconds") is not None else ""
        self._line(f"trial {self.trial.number} epoch {row['epoch']}: {shown[0]} {shown[1]:.4f}{took}")
        if self.metric in row:
            self._report(row[self.metric], row["epoch"])

    def classifier_epoch_done(self, row: dict) -> None:
        seconds = self.progress.step() if self.progress is not None else None
        took = f" ({seconds:.1f} s)" if seconds is not None else ""
        self._line(f"trial {self.trial.number} classifier epoch {row['epoch']}: test_error "
                   f"{row['test_error']:.4f}{took}")
        if self.metric == "classifier_error":
            self._report(row["test_error"], row["epoch"])


# --- storage and study --------------------------------------------------------------------------------

def masked(url: str) -> str:
    """A storage URL without its password, for messages and records."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def make_storage(url: str | None, folder: Path, heartbeat: int, echo):
    """The study's storage: a journal file in the study folder, a journal file path, or an RDB URL."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if url is None or "://" not in url:
        path = Path(url) if url else folder / "study.journal"
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))

    def stale(study, trial) -> None:
        echo(f"trial {trial.number} failed: its worker ({trial.user_attrs.get('worker', 'unknown')}) sent no "
             f"heartbeat for {2 * heartbeat} s (stopped or killed); the study goes on")

    url = rdb_url(url)
    engine = {} if url.startswith("sqlite") else {"pool_pre_ping": True}  # recycle idle connections
    import sqlalchemy.exc
    for attempt in range(6):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, engine_kwargs=engine, heartbeat_interval=heartbeat,
                                                  grace_period=2 * heartbeat, heartbeat_stale_trial_callback=stale)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as err:
            # Workers started together on an empty database all create optuna's tables; the losers of that
            # race see a duplicate table or type: wait a moment and open the tables the winner made.
            if attempt == 5:
                raise UserError(f"--storage {masked(url)}: cannot create optuna's tables ({_first_line(err)})")
            time.sleep(random.uniform(0.2, 1.0))
        except ImportError as err:
            driver = "psycopg2-binary" if url.startswith("postgres") else "the database's Python driver"
            raise UserError(f"--storage {masked(url)}: the driver is missing ({err}); pip install {driver}")
        except Exception as err:  # sqlalchemy's many connection and URL errors
            raise UserError(f"--storage {masked(url)}: cannot open it ({_first_line(err)})")


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return f"{err.__class__.__name__}: {text.splitlines()[0]}" if text else err.__class__.__name__


def rdb_url(url: str) -> str:
    """postgresql://... with the PostgreSQL driver that is installed: SQLAlchemy 2.1 means psycopg (3) by it,
    2.0 psycopg2; either works, and the URL users write should not depend on which one they have."""
    scheme, sep, rest = url.partition("://")
    if scheme not in ("postgresql", "postgres"):
        return url
    import importlib.util
    for driver in ("psycopg", "psycopg2"):
        if importlib.util.find_spec(driver) is not None:
            return f"postgresql+{driver}://{rest}"
    raise UserError(f"--storage {masked(url)}: no PostgreSQL driver; pip install psycopg2-binary")


def fail_dead_local_trials(study, echo) -> None:
    """Journal storage has no heartbeat: fail the running trials of this machine whose process is gone.
    (An RDB storage fails a dead worker's trial by its heartbeat.)"""
    from optuna.storages import JournalStorage
    from optuna.trial import TrialState

    if not isinstance(study._storage, JournalStorage):
        return
    host = socket.gethostname()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        where = t.user_attrs.get("worker", "")
        name, _, pid = where.rpartition(":")
        if name == host and pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            reason = f"its worker (process {pid} on {host}) stopped during the trial"
            study._storage.set_trial_user_attr(t._trial_id, "fail_reason", reason)
            study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            echo(f"trial {t.number} failed: {reason}")


def counted(trials) -> list:
    """Trials that count towards n_trials: all but those stopped by Ctrl-C (a rerun makes up for them)."""
    return [t for t in trials if not t.user_attrs.get("interrupted")]


class StopAfter:
    """Stop this worker once the study holds n_trials counted trials (its other workers' included)."""

    def __init__(self, n_trials: int):
        self.n_trials = n_trials

    def __call__(self, study, trial) -> None:
        if len(counted(study.get_trials(deepcopy=False))) >= self.n_trials:
            study.stop()


def worker_seed(search: Search, worker: int, n_existing: int) -> int:
    """This worker's sampler seed: drawn fresh, or derived from sampler_seed, the worker index and the trials
    already in the study, so that workers and reruns never propose the same sequence."""
    if search.sampler_seed is None:
        return random.SystemRandom().randrange(2 ** 31)
    import numpy as np
    return int(np.random.SeedSequence([search.sampler_seed, worker, n_existing]).generate_state(1)[0] >> 1)


def make_sampler(search: Search, seed: int):
    import optuna
    if search.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def make_pruner(spec: dict):
    import optuna
    args = {k: v for k, v in spec.items() if k != "name"}
    if spec["name"] == "median":
        return optuna.pruners.MedianPruner(**args)
    if spec["name"] == "percentile":
        return optuna.pruners.PercentilePruner(**args)
    return optuna.pruners.NopPruner()


def validation_record(cfg) -> dict:
    """The validation split of a search (a seeded hold-out of the training set): its size, seed and checksum."""
    from funcs import association
    import torch
    train = data_mod.load_dataset(cfg.dataset, cfg.data_dir).train
    _, _, held = data_mod.hold_out(train, cfg.validation_size, torch.Generator().manual_seed(cfg.seed))
    return {"size": cfg.validation_size, "seed": cfg.seed, "indices": association.describe_subset(held)["sha256"],
            "dataset": cfg.dataset, "training_examples": train.y.shape[0]}


def open_study(search: Search, name: str, storage, sampler):
    """Create the study or join it; refuse one created with another search."""
    import optuna
    study = optuna.create_study(study_name=name, storage=storage, sampler=sampler,
                                pruner=make_pruner(search.pruner), direction=search.direction,
                                load_if_exists=True)
    record = json.loads(json.dumps(search.record()))  # as stored: tuples become lists
    saved = study.user_attrs.get("search")
    if saved is None:
        study.set_user_attr("search", record)
    elif saved != record:
        changed = sorted(k for k in record if saved.get(k) != record.get(k))
        if "base" in changed:
            keys = sorted(k for k in set(saved["base"]) | set(record["base"])
                          if saved["base"].get(k) != record["base"].get(k))
            changed[changed.index("base")] = "config keys " + ", ".join(keys)
        raise UserError(f"study '{name}' was created with another search ({'; '.join(changed)} differ); "
                        f"restore optuna_config.json or choose a new --study-name")
    return study


# --- the objective ------------------------------------------------------------------------------------

def objective(rule: rules.Rule, search: Search, worker: str, echo, log_file: Path):
    """optuna's objective: one trial's config trained as bp.main would, scored on the validation split."""
    import optuna

    def run(trial) -> float:
        trial.set_user_attr("worker", worker)
        values = {p.name: p.suggest(trial) for p in search.params}
        tic = time.perf_counter()
        try:
            cfg = search.trial_config(values)
            with tempfile.TemporaryDirectory(prefix=f"trial-{trial.number}-") as tmp:
                prepared = cli.prepare(rule, cfg)
                metrics = cli.train_config(rule, cfg, TrialReporter(trial, search.metric, Path(tmp), echo),
                                           prepared=prepared)
            value = metrics[search.metric]
            trial.set_user_attr("metrics", metrics)
            if not math.isfinite(value):
                raise Diverged(f"diverged: {search.metric} is {value}")
        except optuna.TrialPruned as pruned:
            trial.set_user_attr("pruned", str(pruned))
            raise
        except KeyboardInterrupt:
            trial.set_user_attr("fail_reason", "interrupted (Ctrl-C)")
            trial.set_user_attr("interrupted", True)
            raise
        except (UserError, Diverged) as err:
            trial.set_user_attr("fail_reason", str(err))
            raise
        except Exception as err:  # a bug or a resource problem: the reason in the study, the traceback in the log
            trial.set_user_attr("fail_reason", f"{err.__class__.__name__}: {err}"[:500])
            with open(log_file, "a") as f:
                f.write(f"trial {trial.number} ({worker}):\n{traceback.format_exc()}\n")
            raise
        finally:
            trial.set_user_attr("seconds", round(time.perf_counter() - tic, 3))
        return value

    return run


# --- outputs ------------------------------------------------------------------------------------------

def trial_rows(study, search: Search) -> list[dict]:
    """One row per trial: number, state, value, parameters, seconds, worker, the reason it failed or was pruned,
    and the final validation metrics."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        row = {"number": t.number, "state": t.state.name, search.metric: t.value if t.values else ""}
        row.update({p.name: t.params.get(p.name, "") for p in search.params})
        steps = sorted(t.intermediate_values)
        reason = t.user_attrs.get("fail_reason") or t.user_attrs.get("pruned", "")
        if t.state.name == "FAIL" and not reason:
            reason = "its worker stopped sending heartbeats (stopped or killed)"
        row.update({"last_epoch": steps[-1] if steps else "", "seconds": t.user_attrs.get("seconds", ""),
                    "worker": t.user_attrs.get("worker", ""), "reason": reason})
        for k, v in (t.user_attrs.get("metrics") or {}).items():
            if k != search.metric and k.startswith(("error", "classifier", "loss", "pretrain")):
                row[f"final_{k}"] = v
        rows.append(row)
    return rows


def write_csv(path: Path, rows: list[dict]) -> None:
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def best_trial(study):
    try:
        return study.best_trial
    except ValueError:  # no complete trial yet
        return None


def best_config(search: Search, trial) -> config_mod.Config:
    """The best trial's config as bp.main runs it: same keys, same validation split, its own run folder."""
    return config_mod.replace(search.trial_config(trial.params), out_dir=None)


def write_plots(study, folder: Path, metric: str) -> dict:
    """history.png (value of each trial, best so far) and importance.png (fANOVA, optuna's default); the
    importances, or why there are none."""
    import matplotlib
    matplotlib.use("Agg")  # files only
    import matplotlib.pyplot as plt
    import optuna
    from optuna.visualization import matplotlib as oplt

    out: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        ax = oplt.plot_optimization_history(study)
        ax.set_ylabel(f"{metric} (validation)")
        ax.set_title(f"{study.study_name}: {metric} of each complete trial, best so far")
        ax.figure.set_size_inches(7, 4.5)
        ax.figure.tight_layout()
        ax.figure.savefig(folder / "history.png", dpi=110)
        plt.close(ax.figure)
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
        try:
            out["importance"] = {k: round(v, 4) for k, v in
                                 optuna.importance.get_param_importances(study, evaluator=evaluator).items()}
            ax = oplt.plot_param_importances(study, evaluator=evaluator)
            ax.set_title(f"{study.study_name}: parameter importances for {metric} (fANOVA)")
            ax.figure.set_size_inches(7, 4.5)
            ax.figure.tight_layout()
            ax.figure.savefig(folder / "importance.png", dpi=110)
            plt.close(ax.figure)
        except (ValueError, RuntimeError) as err:  # fewer than two complete trials, or nothing varied
            out["importance"] = None
            out["importance_note"] = f"no parameter importances: {err}"
    return out


def write_outputs(study, search: Search, folder: Path, plots: bool = True) -> dict:
    """trials.csv, best/config.json, and with plots the PNGs and summary.json + summary.txt of the study folder."""
    rows = trial_rows(study, search)
    write_csv(folder / "trials.csv", rows)
    best = best_trial(study)
    if best is not None:
        (folder / "best").mkdir(exist_ok=True)
        results.write_json(folder / "best" / "config.json", best_config(search, best).to_json())
    if not plots:
        return {}
    states: dict[str, int] = {}
    for row in rows:
        states[row["state"]] = states.get(row["state"], 0) + 1
    summary = {"study": study.study_name, "metric": search.metric, "direction": search.direction,
               "n_trials": search.n_trials, "trials": states,
               "searched": [p.describe() for p in search.params],
               "validation": study.user_attrs.get("validation"),
               "best": None, "test": study.user_attrs.get("test"),
               "trial_seconds": round(sum(float(r["seconds"] or 0) for r in rows), 1)}
    if best is not None:
        summary["repeat"] = f"{rules.get(search.base.rule).command} --json_path {folder / 'best'}"
        summary["best"] = {"trial": best.number, "value": best.value, "params": best.params,
                           "metrics": best.user_attrs.get("metrics"), "config": "best/config.json"}
        summary.update(write_plots(study, folder, search.metric))
    results.write_json(folder / "summary.json", summary)
    (folder / "summary.txt").write_text(summary_text(summary))
    return summary


def summary_text(s: dict) -> str:
    lines = [f"study {s['study']}: {sum(s['trials'].values())} trials of {s['n_trials']} "
             f"({', '.join(f'{n} {k.lower()}' for k, n in sorted(s['trials'].items()))}); "
             f"{s['direction']} {s['metric']} on the validation split"]
    if s.get("validation"):
        v = s["validation"]
        lines.append(f"validation: {v['size']} of the {v['training_examples']} {v['dataset']} training examples, "
                     f"held out with seed {v['seed']} (indices sha256 {v['indices'][:12]}); the test set is not used")
    lines += [f"searched: {'; '.join(s['searched'])}", f"trial time: {s['trial_seconds']} s in all"]
    if s["best"] is None:
        lines.append("no trial completed yet")
    else:
        b = s["best"]
        params = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in b["params"].items())
        lines.append(f"best: trial {b['trial']}, {s['metric']} {b['value']:.4f} ({params})")
        lines.append(f"repeat it (same validation split): {s['repeat']}")
    if s.get("test"):
        t = s["test"]
        lines.append(f"test (once: trial {t['trial']}'s config without the hold-out, {t['folder']}): " +
                     ", ".join(f"{k} {v}%" for k, v in t["accuracy_percent"].items()))
    if s.get("importance"):
        lines.append("importance (fANOVA): " + ", ".join(f"{k} {v:.2f}" for k, v in s["importance"].items()))
    return "\n".join(lines) + "\n"


# A test-run claim older than this is taken over even when its worker cannot be checked (another machine): longer
# than the test runs we make (the paper's largest configs train in a few hours on a GPU).
TEST_CLAIM_TIMEOUT_S = 24 * 3600


def test_best(rule: rules.Rule, study, search: Search, folder: Path, command, echo) -> None:
    """The test set, once: the best config without the hold-out (validation_size null: the validation examples
    back in the training set), trained into `folder/test`; its accuracies are kept with the study. One worker
    does it (claimed in the study); a run stopped on the way is continued from `folder/test` by the next one."""
    best = best_trial(study)
    if best is None or study.user_attrs.get("test"):
        return
    holder = claim_test(study)
    if holder is not None:
        echo(f"the test run is done by {holder}")
        return
    out = folder / "test"
    cfg = config_mod.replace(best_config(search, best), validation_size=None, out_dir=str(out))
    echo(f"test: trial {best.number}'s config without the hold-out (validation_size null), scored on the test set, "
         f"into {out}")
    try:
        started = (out / "config.json").exists()  # a test run into this folder that stopped (or was not recorded)
        if started and config_mod.read_json(out / "config.json", "test run config") != cfg.to_json():
            raise UserError(f"{out} holds the run of another config than trial {best.number}'s; move it away")
        if (out / "summary.json").exists():
            summary = config_mod.read_json(out / "summary.json", "test run summary")
            if summary.get("status") == "diverged":
                raise UserError(f"the test run in {out} diverged ({summary['diverged']['reason']}); continue it "
                                f"with {rule.command} --resume {out} --set lr=[...], then run this command again")
        else:
            summary = cli.run_one(rule, cfg, out if started else None, command, resume=started)
        study.set_user_attr("test", {"trial": best.number, "folder": str(out), "worker": worker_id(),
                                     "accuracy_percent": summary["accuracy_percent"], "metrics": summary["metrics"]})
    except BaseException:  # stopped or failed: the next run of the command takes the test over
        study.set_user_attr("test_claimed_by", None)
        raise


def claim_test(study) -> str | None:
    """Claim the test run for this worker: None once it holds the claim, else the worker holding it.

    A claim is taken over when its worker is gone: a dead process of this
    machine, or a claim older than TEST_CLAIM_TIMEOUT_S. What remains racy:
    two workers that find no live claim at nearly the same moment each write
    theirs and read back the last one written half a second later, so only its
    writer runs the test; but if one reads back before the other writes, both
    run it (each into its own folder/test). A test run longer than the timeout
    gets a second one beside it.
    """
    me = worker_id()
    claim = _fresh_attrs(study).get("test_claimed_by")
    if isinstance(claim, str):  # written by earlier code, without its time: taken as old
        claim = {"worker": claim, "since": 0.0}
    if claim is None or _claim_gone(claim):
        study.set_user_attr("test_claimed_by", {"worker": me, "since": time.time()})
        time.sleep(0.5)  # two workers claiming together: the last to write wins, the other sees it
        claim = _fresh_attrs(study).get("test_claimed_by")
    return None if claim and claim["worker"] == me else (claim or {}).get("worker", "another worker")


def _claim_gone(claim: dict) -> bool:
    host, _, pid = claim["worker"].rpartition(":")
    if host == socket.gethostname() and pid.isdigit() and not _alive(int(pid)):
        return True
    return time.time() - claim["since"] > TEST_CLAIM_TIMEOUT_S


def _fresh_attrs(study) -> dict:
    return study._storage.get_study_user_attrs(study._study_id)


# --- the command line ---------------------------------------------------------------------------------

def parse_args(rule: rules.Rule, argv):
    p = cli._Parser(prog=f"python -m {rule.search}",
                    description=f"Random (or TPE) search of {rule.title} hyperparameters with optuna, "
                                f"scored on a validation split of the training set.")
    p.add_argument("--json_path", default=f"configFile/hyper_{rule.name}/unsupervised",
                   help="folder holding optuna_config.json, or a .json file (default: %(default)s)")
    p.add_argument("--trained_path", metavar="RUN_DIR",
                   help="classifier searches: the run folder whose trained network is read out")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of optuna_config.json; VALUE is JSON (e.g. --set epochs=3 --set n_trials=10)")
    p.add_argument("--storage", metavar="URL",
                   help="optuna storage shared by the workers: postgresql://user@host/db (or any RDB URL), or a "
                        "journal file path (default: STUDY_DIR/study.journal)")
    p.add_argument("--study-name", help="the study's name in the storage (default: from --json_path)")
    p.add_argument("--out", metavar="STUDY_DIR",
                   help="where this worker writes the outputs (default: DATA-0/optuna/<study name>)")
    p.add_argument("--n-trials", type=int, help="trials of the whole study (default: optuna_config's n_trials)")
    p.add_argument("--worker", type=int, default=0, metavar="I",
                   help="this worker's index, mixed into the sampler seed when sampler_seed is set")
    p.add_argument("--heartbeat", type=int, default=60, metavar="SECONDS",
                   help="RDB storage: heartbeat interval; a trial silent for twice this is failed (default 60)")
    p.add_argument("--no-test", action="store_true",
                   help="do not train the best config without the hold-out for its test score at the end")
    p.add_argument("--dry-run", action="store_true",
                   help="validate the search file, print the search space and exit (reads no data or network)")
    return p.parse_args(argv)


def default_study_name(json_path: str, trained_path: str | None = None) -> str:
    """hyper_bp-unsupervised for configFile/hyper_bp/unsupervised; the read-out searches add the trained run's name."""
    path = Path(json_path).resolve()
    if path.suffix == ".json":
        path = path.parent if path.name == "optuna_config.json" else path.with_suffix("")
    return f"{path.parent.name}-{path.name}" + (f"-{Path(trained_path).resolve().name}" if trained_path else "")


def main(rule: rules.Rule, argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = parse_args(rule, argv)
    except SystemExit as done:
        return done.code
    command = [f"python -m {rule.search}", *argv]
    try:
        return _main(rule, args, command)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except cli.RunDiverged as stop:  # the test run of the best config
        print(stop, file=sys.stderr)
        return cli.DIVERGED_EXIT
    except (cli.UserInterrupt, KeyboardInterrupt):  # a trial, the test run or the outputs stopped by Ctrl-C
        print("interrupted; run the same command again to resume the search", file=sys.stderr)
        return 130


def _main(rule: rules.Rule, args, command) -> int:
    search, raw = load(args.json_path, rule, args.set, args.trained_path)
    if args.n_trials is not None:
        search = dataclasses.replace(search, n_trials=_positive_int("--n-trials", args.n_trials))
    if args.heartbeat < 1:
        raise UserError(f"--heartbeat must be at least 1 second, got {args.heartbeat}")
    name = args.study_name or default_study_name(args.json_path, args.trained_path)
    folder = Path(args.out or Path("DATA-0") / "optuna" / name)
    where = args.storage and masked(args.storage) or folder / "study.journal"
    if args.dry_run:
        print(f"study {name} in {where}: {search.n_trials} trials, {search.sampler} sampler, pruner "
              f"{search.pruner['name']}, {search.direction} {search.metric} on {search.base.validation_size} "
              f"validation examples")
        for p in search.params:
            print("  " + p.describe())
        return 0
    check_optuna()
    echo = logger(folder / "search.log")
    # What no sampled value changes is refused once, not by every trial: the data files and sizes, the trained
    # network of trained_path, the phase-1 network of pretrained_path.
    cli.prepare(rule, search.base)
    study, seed = set_up_study(search, args, name, folder, echo)
    folder.mkdir(parents=True, exist_ok=True)  # every check passed
    write_json_once(folder / "optuna_config.json", raw)
    fail_dead_local_trials(study, echo)
    if args.trained_path:
        echo(hold_out_note(args.trained_path, search.base))
    echo(f"study {name} ({where}), worker {worker_id()}, sampler {search.sampler} seed {seed}: "
         f"{len(counted(study.get_trials(deepcopy=False)))} of {search.n_trials} trials there; scoring "
         f"{search.metric} on {search.base.validation_size} validation examples")
    optimise(rule, study, search, folder, echo)
    if args.storage and "://" in args.storage:
        settle(study, args.heartbeat)
    if study_complete(study, search) and not args.no_test:
        test_best(rule, study, search, folder, command, echo)
    summary = write_outputs(study, search, folder)
    echo(summary_text(summary).rstrip())
    echo(f"outputs in {folder}: trials.csv, summary.txt, summary.json" +
         (", history.png, importance.png, best/config.json" if summary.get("best") else ""))
    return 0


def logger(log_file: Path):
    """echo(message): print a line and append it to the study's search.log (once the study folder exists)."""
    def echo(message: str) -> None:
        print(message, flush=True)
        with open(log_file, "a") as f:
            f.write(message + "\n")
    return echo


# The oldest optuna this code runs on: RDBStorage's heartbeat_stale_trial_callback came in 4.9 (4.0-4.8 name it
# failed_trial_callback). requirements-search.txt's floor is this one (tests/test_search.py checks it).
OPTUNA_MIN = "4.9"


def check_optuna() -> None:
    """One line, not a failure deep in the storage, when the installed optuna is older than OPTUNA_MIN."""
    import optuna
    from packaging.version import Version  # optuna's own dependency
    if Version(optuna.__version__) < Version(OPTUNA_MIN):
        raise UserError(f"the search needs optuna >= {OPTUNA_MIN}, this environment has {optuna.__version__}: "
                        f"pip install 'optuna>={OPTUNA_MIN}'")


def set_up_study(search: Search, args, name: str, folder: Path, echo):
    """Open the study (or create it) and refuse one made by another search or on another validation split;
    this worker recorded in it. The default journal file's folder is the only one made. (study, sampler seed)."""
    import optuna
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # one line per epoch and per trial, printed here
    validation = validation_record(search.base)
    storage = make_storage(args.storage, folder, args.heartbeat, echo)
    try:
        existing = len(optuna.load_study(study_name=name, storage=storage).trials)
    except KeyError:  # a new study
        existing = 0
    seed = worker_seed(search, args.worker, existing)
    study = open_study(search, name, storage, make_sampler(search, seed))
    saved = study.user_attrs.get("validation")
    if saved is None:
        study.set_user_attr("validation", validation)
    elif saved["indices"] != validation["indices"]:
        raise UserError(f"study '{name}': this machine's {search.base.dataset} training set gives another "
                        f"validation split than the study's (indices sha256 {saved['indices'][:12]}); check "
                        f"the dataset files")
    study.set_user_attr(f"worker {worker_id()}", {"sampler_seed": seed, "worker_index": args.worker,
                                                  "started": time.strftime("%Y-%m-%dT%H:%M:%S")})
    return study, seed


def optimise(rule: rules.Rule, study, search: Search, folder: Path, echo) -> None:
    """This worker's trials, until the study holds n_trials; on Ctrl-C, trials.csv is brought up to date and the
    KeyboardInterrupt goes on up."""
    def after_trial(study, trial) -> None:
        value = f"{search.metric} {trial.value:.4f}" if trial.values else (
            trial.user_attrs.get("fail_reason") or trial.user_attrs.get("pruned") or "")
        best = best_trial(study)
        lead = f"; best {best.value:.4f} (trial {best.number})" if best is not None else ""
        echo(f"trial {trial.number} {trial.state.name.lower()}: {value}{lead}; "
             f"{len(counted(study.get_trials(deepcopy=False)))} of {search.n_trials} trials")
        write_outputs(study, search, folder, plots=False)

    if len(counted(study.get_trials(deepcopy=False))) >= search.n_trials:
        return
    try:
        study.optimize(objective(rule, search, worker_id(), echo, folder / "search.log"), catch=(Exception,),
                       callbacks=[after_trial, StopAfter(search.n_trials)], gc_after_trial=True)
    except KeyboardInterrupt:
        write_outputs(study, search, folder, plots=False)
        raise


def fail_stale(study) -> None:
    """Fail a dead worker's trial once its heartbeat is past the grace period (RDB storage; else nothing)."""
    import optuna
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def running(study) -> bool:
    return any(t.state.name == "RUNNING" for t in study.get_trials(deepcopy=False))


def settle(study, heartbeat: int) -> None:
    """Wait up to three heartbeat intervals for trials still running elsewhere to end.

    A worker killed mid-trial leaves its trial RUNNING until some worker fails it, two
    heartbeats later; the last worker standing waits for that, so that its outputs
    show the trial failed rather than running. Live workers' trials that run longer
    are left to them.
    """
    deadline = time.monotonic() + 3 * heartbeat
    while running(study) and time.monotonic() < deadline:
        time.sleep(min(1.0, heartbeat / 2))
        fail_stale(study)


def study_complete(study, search: Search) -> bool:
    """Whether the study holds its n_trials and none is running (a dead worker's trial failed first)."""
    fail_stale(study)
    return len(counted(study.get_trials(deepcopy=False))) >= search.n_trials and not running(study)


# What the trained run's own training used of the validation images, by its kind (config.Config.target_kind).
SEEN = {"unsupervised": "it may have seen the validation images (never their labels)",
        "supervised": "it may have been trained on the validation images with their labels, which flatters the "
                      "validation score",
        "semi_supervised": "it may have been trained on the validation images, some of them with their labels, "
                           "which flatters the validation score"}


def hold_out_note(trained_path: str, cfg) -> str:
    """Whether the read-out network was trained without the search's validation images, and if not what it may
    have learnt of them (their labels too, for a supervised or semi-supervised run)."""
    saved = config_mod.read_json(results.trained_config_file(Path(trained_path)), "--trained_path config")
    if saved.get("validation_size") == cfg.validation_size and saved.get("seed") == cfg.seed:
        return f"the network of {trained_path} was trained without these {cfg.validation_size} validation images"
    action = saved.get("action")
    if action == config_mod.READ_OUT:
        if saved.get("trained_path") is None:
            return f"the network of {trained_path} is untrained (action {action}): it has seen no image"
        return (f"note: the network of {trained_path} is that of {saved['trained_path']} (action {action}); "
                f"whether that one was trained without these validation images is not checked")
    owner = rules.owner(action) if isinstance(action, str) else None
    kind = owner.actions[action] if owner else "supervised"  # as Config.target_kind
    return (f"note: the network of {trained_path} was trained ({action}) with validation_size "
            f"{saved.get('validation_size')} and seed {saved.get('seed')}: {SEEN.get(kind, SEEN['supervised'])}; "
            f"train it with validation_size {cfg.validation_size} and seed {cfg.seed} for a clean hold-out")


def write_json_once(path: Path, obj) -> None:
    if not path.exists():
        results.write_json(path, obj)
