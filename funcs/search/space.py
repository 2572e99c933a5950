"""The search space: optuna_config.json read and checked into a Search (the base Config and its searched Params).

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
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from funcs import cli, results, rules, semi
from funcs import config as config_mod
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


def positive_int(where: str, value, allow_zero: bool = False) -> int:
    """An integer >= 1 (>= 0 with allow_zero); a float of integral value (1e3) is one, as for config keys."""
    lowest = 0 if allow_zero else 1
    if type(value) is float and value.is_integer():
        value = int(value)
    if type(value) is not int or value < lowest:
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
            v = positive_int(f"{where} '{k}'", v, allow_zero=k != "interval_steps")
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
        seed = positive_int("optuna_config key 'sampler_seed'", seed, allow_zero=True)
    return Search(base=base, params=tuple(params),
                  n_trials=positive_int("optuna_config key 'n_trials'", raw.get("n_trials", 100)),
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
        nudge_max = positive_int("optuna_config key 'nudge_max'", nudge_max)
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

