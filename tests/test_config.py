"""The run configuration and the shared CLI's handling of user mistakes (funcs/config.py, funcs/cli.py)."""

import dataclasses
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from funcs import cli, rules
from funcs.config import FIELDS, Config, from_dict, load, parse_override, replace
from funcs.errors import UserError

ROOT = Path(__file__).resolve().parents[1]

# A small valid bp config; every bad-input case changes one thing in it.
BASE = {"device": -1, "dataset": "mnist", "action": "unsupervised_bp", "n_class": 10, "epochs": 1,
        "batchSize": 16, "fcLayers": [784, 20], "lr": [1.0], "activation_function": ["x", "hardsigm"],
        "dropProb": [0.0, 0.0], "nudge": 2, "gamma": 0.4, "class_epoch": 0}

# The original code's configFile/unsupervised_bp/1layer/config.json, as it is.
ORIGINAL_BP_1LAYER = {
    "device": 0, "dataset": "mnist", "action": "unsupervised_bp", "n_class": 10, "epochs": 200,
    "batchSize": 16, "test_batchSize": 256, "fcLayers": [784, 2000], "cnn": False, "lr": [8],
    "activation_function": ["x", "hardsigm"], "optimizer": "SGD", "loss": "MSE", "eta": 0.6, "gamma": 0.4,
    "nudge": 6, "smooth": False, "dropProb": [0.3, 0.2],
    "semi_seed": 13, "train_label_number": 3000, "pre_epochs": 80, "pre_batchSize": 32, "pre_lr": [0.001, 0.003],
    "class_label_percentage": 1, "class_activation": "sigmoid", "class_lr": [0.1], "class_epoch": 50,
    "class_optimizer": "Adam", "class_dropProb": 0.2, "class_smooth": False,
}

# An EP-style config as the original code writes them: one activation name, clamped as 1.
ORIGINAL_EP = {
    "device": 0, "dataset": "mnist", "action": "unsupervised_ep", "n_class": 10, "epochs": 100,
    "batchSize": 16, "test_batchSize": 512, "fcLayers": [784, 2000], "cnn": False, "lr": [0.1],
    "activation_function": "hardsigm", "optimizer": "SGD", "loss": "MSE", "eta": 0.6, "gamma": 0.5,
    "nudge": 10, "smooth": True, "dropProb": [0.2, 0.2], "dt": 0.2, "T": 60, "Kmax": 10, "beta": 0.5,
    "clamped": 1, "error_estimate": "one-sided", "dropout": True,
    "class_label_percentage": 1, "class_activation": "x", "class_lr": [0.1], "class_epoch": 50,
    "class_optimizer": "Adam", "class_dropProb": 0.4, "class_smooth": False,
}


def changed(**kw):
    return {**BASE, **kw}


# name: (config content (dict, or raw text), extra CLI args, fragments the one stderr line must contain)
BAD_INPUTS = {
    "unknown_key": ({**BASE, "fcLayer": [784, 20]}, [], ["'fcLayer'", "did you mean 'fcLayers'"]),
    "wrong_type": (changed(epochs="2"), [], ["'epochs'", "integer"]),
    "negative_gamma": (changed(gamma=-0.1), [], ["'gamma'"]),
    "dropprob_one": (changed(dropProb=[0.0, 1.0]), [], ["'dropProb'"]),
    "lr_length": (changed(fcLayers=[784, 30, 20], dropProb=[0, 0, 0], activation_function=["x", "relu", "relu"]),
                  [], ["'lr'", "1 rates given"]),  # too few (too many are ignored, as the original code does)
    "dropprob_length": (changed(dropProb=[0.0]), [], ["'dropProb'"]),
    "activation_length": (changed(activation_function=["x", "relu", "hardsigm"]), [], ["'activation_function'"]),
    "nudge_too_large": (changed(nudge=21), [], ["'nudge'", "21"]),
    "malformed_json": ('{"epochs": 2,,}', [], ["malformed JSON", "line 1"]),
    "missing_file": (None, [], ["config file not found"]),
    "other_rules_action": (changed(action="unsupervised_ep", activation_function="hardsigm"), [],
                           ["'action'", "is run by python -m ep.main, not python -m bp.main"]),
    "nan_value": ('{"gamma": NaN}', [], ["'gamma'", "finite"]),
    "wta_in_mlp": (changed(activation_function=["x", "wta"]), [], ["'activation_function'", "cnn"]),
    "class_lr_length": (changed(class_lr=[0.1, 0.2]), [], ["'class_lr'"]),
    "n_class_mismatch": (changed(n_class=5), [], ["'n_class'", "10 classes"]),
    "input_size_mismatch": (changed(fcLayers=[100, 20]), [], ["'fcLayers'", "784 pixels"]),
    "svhn_input_size": (changed(dataset="svhn", fcLayers=[784, 20]), [], ["'fcLayers'", "3072 pixels"]),
    "seeds_zero": (BASE, ["--seeds", "0"], ["--seeds"]),
    "seeds_not_a_number": (BASE, ["--seeds", "abc"], ["--seeds", "invalid int"]),
    "unknown_option": (BASE, ["--sett", "epochs=1"], ["unrecognized arguments: --sett"]),
    "cnn_lr_length": (changed(cnn=True), ["--dry-run"], ["'lr'", "2 convolutions"]),
    "set_bad_key": (BASE, ["--set", "fcLayer=[784,100]"], ["'fcLayer'", "did you mean 'fcLayers'"]),
    "set_bad_value": (BASE, ["--set", "dataset=mnst"], ["'dataset'", "did you mean 'mnist'"]),
    "one_layer_size": (changed(fcLayers=[784]), [], ["'fcLayers'", "an input and an output size"]),  # no warnings
    "seed_above_32_bits": (changed(seed=2 ** 40), [], ["'seed'"]),
    # 627 TB of weights: more than a 64-bit process can address, refused even where memory is overcommitted
    "network_too_large": (changed(fcLayers=[784, 2 * 10 ** 11]), [], ["out of memory", "627200000000000 bytes",
                                                                      "'fcLayers'"]),
}


def test_out_of_memory_line_keeps_what_was_asked_for_and_says_what_to_change():
    from funcs.errors import is_out_of_memory, out_of_memory_line

    class OutOfMemoryError(RuntimeError):  # torch.OutOfMemoryError, matched by name (CPU-only builds have it too)
        pass
    cuda = OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total capacity of "
                            "139.00 GiB of which 1.00 GiB is free. Of the allocated memory ...\nmore lines")
    assert is_out_of_memory(cuda) and not is_out_of_memory(RuntimeError("shape mismatch"))
    line = out_of_memory_line(cuda)
    assert line.startswith("out of memory: CUDA out of memory. Tried to allocate 20.00 GiB. Use smaller layers")
    assert "\n" not in line and "total capacity" not in line and "'batchSize'" in line


def write_config(workdir: Path, config) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    cfg_path = workdir / "config.json"
    if isinstance(config, dict):
        cfg_path.write_text(json.dumps(config))
    elif isinstance(config, str):
        cfg_path.write_text(config)
    return cfg_path  # None: the file is missing


def run_cli(workdir: Path, config, extra):
    """Run the real `python -m bp.main` in a fresh interpreter from `workdir` (not the repo)."""
    cfg_path = write_config(workdir, config)
    out = workdir / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "bp.main", "--json_path", str(cfg_path), "--out", str(out),
                           *extra], cwd=workdir, env=env, capture_output=True, text=True, timeout=120)
    return proc, out


def check_one_error_line(code, stdout, stderr, fragments):
    lines = stderr.strip().splitlines()
    assert code == 2, stderr
    assert "Traceback" not in stderr
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    assert stdout == ""


# Every case in-process through the CLI's main() (same code path as `python -m bp.main`, without the ~2.5 s
# interpreter + torch start each); the real entry point in a subprocess for a few cases below.
@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_cli_bad_input_is_one_stderr_line_exit_2_and_no_run_folder(tmp_path, monkeypatch, capsys, case):
    from bp.main import RULE
    config, extra, fragments = BAD_INPUTS[case]
    cfg_path = write_config(tmp_path, config)
    out = tmp_path / "run"
    monkeypatch.chdir(tmp_path)  # a DATA-0/ or data/ folder would appear here
    code = cli.main(RULE, ["--json_path", str(cfg_path), "--out", str(out), *extra])
    captured = capsys.readouterr()
    check_one_error_line(code, captured.out, captured.err, fragments)
    assert not out.exists()
    assert not (tmp_path / "DATA-0").exists() and not (tmp_path / "data").exists()


SUBPROCESS_CASES = tuple(BAD_INPUTS)  # every kind, through the real entry point too


@pytest.fixture(scope="module")
def cli_results(tmp_path_factory):
    """The subprocess cases, run concurrently (each one is a fresh interpreter importing torch)."""
    base = tmp_path_factory.mktemp("cli")
    cases = {name: BAD_INPUTS[name][:2] for name in SUBPROCESS_CASES}
    cases["dry_run"] = (BASE, ["--dry-run", "--set", "epochs=3", "--set", "fcLayers=[784,100]",
                               "--set", "lr=[1.0]"])
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(run_cli, base / name, config, extra) for name, (config, extra) in cases.items()}
        return {name: (*f.result(), base / name) for name, f in futures.items()}


@pytest.mark.parametrize("case", SUBPROCESS_CASES)
def test_real_cli_bad_input_exits_2_with_one_line_and_no_folder(cli_results, case):
    proc, out, workdir = cli_results[case]
    check_one_error_line(proc.returncode, proc.stdout, proc.stderr, BAD_INPUTS[case][2])
    assert not out.exists()
    assert not (workdir / "DATA-0").exists() and not (workdir / "data").exists()


def test_real_cli_dry_run_prints_resolved_config_with_overrides(cli_results):
    proc, out, workdir = cli_results["dry_run"]
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout)
    assert printed["epochs"] == 3 and printed["fcLayers"] == [784, 100] and printed["lr"] == [1.0]
    assert printed["nudge"] == BASE["nudge"] and printed["out_dir"] == str(out)
    # what it prints is the config the run would use: every key, validated
    expected = replace(from_dict({**BASE, "epochs": 3, "fcLayers": [784, 100], "lr": [1.0]}), out_dir=str(out))
    assert from_dict(printed) == expected
    assert set(printed) == set(FIELDS)  # the shared keys; BP declares none of its own
    assert not out.exists() and not (workdir / "DATA-0").exists()


# --- in-process: Config, from_dict, load, overrides ---------------------------------------------

def test_original_bp_preset_loads_unchanged():
    cfg = from_dict(ORIGINAL_BP_1LAYER)
    assert cfg.fcLayers == (784, 2000) and cfg.lr == (8.0,) and cfg.nudge == 6 and cfg.gamma == 0.4
    assert cfg.dropProb == (0.3, 0.2) and cfg.class_label_percentage == 1.0
    assert cfg.n_out == 2000 and cfg.rule == "bp" and cfg.target_kind == "unsupervised"
    # keys it leaves out take the documented defaults
    assert cfg.seed == Config().seed and cfg.lr_schedule == "linear"


def test_original_ep_style_config_loads_unchanged_with_clamped_one_as_true():
    cfg = from_dict(ORIGINAL_EP)
    assert cfg.clamped is True and cfg.dropout is True
    assert cfg.activation_function == "hardsigm"
    assert cfg.rule == "ep" and cfg.target_kind == "unsupervised"
    assert from_dict({**ORIGINAL_EP, "clamped": 0}).clamped is False


def test_to_json_from_dict_round_trip_gives_equal_config():
    for raw in (BASE, ORIGINAL_BP_1LAYER, ORIGINAL_EP):
        cfg = from_dict(raw)
        again = from_dict(json.loads(json.dumps(cfg.to_json())))
        assert again == cfg


def test_config_is_frozen():
    cfg = from_dict(BASE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.epochs = 5
    assert isinstance(cfg.fcLayers, tuple)


def test_semi_supervised_and_supervised_target_kinds():
    assert from_dict(changed(action="semi_supervised_bp", pre_lr=[0.001])).target_kind == "semi_supervised"
    assert from_dict(changed(action="bp", fcLayers=[784, 20], n_class=10)).target_kind == "supervised"
    with pytest.raises(UserError, match="'fcLayers'"):
        from_dict(changed(action="bp", fcLayers=[784, 25], n_class=10))  # 25 not a multiple of 10


def test_parse_override_reads_json_else_string():
    assert parse_override("epochs=3") == ("epochs", 3)
    assert parse_override("fcLayers=[784, 100]") == ("fcLayers", [784, 100])
    assert parse_override("smooth=true") == ("smooth", True)
    assert parse_override("dataset=fashionMnist") == ("dataset", "fashionMnist")
    assert parse_override("out_dir=a=b") == ("out_dir", "a=b")
    with pytest.raises(UserError, match="KEY=VALUE"):
        parse_override("epochs")


def test_load_applies_overrides_over_file(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(BASE))
    cfg = load(tmp_path, ["epochs=7", "lr=[0.5]", "fcLayers=[784,30]"])
    assert (cfg.epochs, cfg.lr, cfg.fcLayers) == (7, (0.5,), (784, 30))
    assert load(tmp_path / "config.json") == from_dict(BASE)


def test_int_keys_accept_integral_floats_and_float_keys_accept_ints():
    cfg = from_dict(changed(epochs=3.0, gamma=1))
    assert cfg.epochs == 3 and type(cfg.epochs) is int
    assert cfg.gamma == 1.0 and type(cfg.gamma) is float
    with pytest.raises(UserError, match="'epochs'"):
        from_dict(changed(epochs=2.5))
    with pytest.raises(UserError, match="'smooth'"):
        from_dict(changed(smooth=2))


def test_train_and_test_size_are_null_or_positive_int():
    assert from_dict(BASE).train_size is None and from_dict(BASE).test_size is None
    assert from_dict(changed(train_size=500, test_size=None)).train_size == 500
    with pytest.raises(UserError, match="'train_size'"):
        from_dict(changed(train_size=0))
    with pytest.raises(UserError, match="'test_size'"):
        from_dict(changed(test_size="100"))


def test_replace_validates_the_change():
    cfg = from_dict(BASE)
    assert replace(cfg, seed=4).seed == 4
    with pytest.raises(UserError, match="'nudge'"):
        replace(cfg, nudge=100)


# --- device fallback -------------------------------------------------------------------------------

@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_resolve_device_falls_back_to_cpu_with_one_warning_line(capsys):
    assert cli.resolve_device(0) == torch.device("cpu")
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "warning" in err and "GPU 0" in err
    assert cli.resolve_device(-1) == torch.device("cpu")
    assert capsys.readouterr().err == ""


# --- the original code's configFile/, as it is -----------------------------------------------------

ORIGINALS = ROOT / "tests" / "original_configs"


@pytest.mark.parametrize("path", sorted(p.parent.relative_to(ORIGINALS).as_posix()
                                        for p in ORIGINALS.rglob("config.json")))
def test_every_original_config_passes_dry_run_unchanged(path, capsys):
    raw = json.loads((ORIGINALS / path / "config.json").read_text())
    rule = from_dict(raw).rule  # the rule that owns its action decides the entry point, as a user would pick it
    assert cli.main(rules.get(rule), ["--json_path", str(ORIGINALS / path), "--dry-run"]) == 0
    printed = json.loads(capsys.readouterr().out)  # the resolved config, as the run would save it
    assert printed["action"] == raw["action"] and printed["fcLayers"] == raw["fcLayers"]


def test_the_original_count_is_25():
    assert len(list(ORIGINALS.rglob("config.json"))) == 25


def test_original_supervised_cnn_lists_are_read_as_the_original_code_reads_them(capsys):
    """lr[i] for weight layer i (a fifth rate for four layers is ignored, with a warning); dropProb before each
    fully connected layer and no output dropout in supervised training."""
    mnist = from_dict(json.loads((ORIGINALS / "supervised_bp/cnn/mnist/config.json").read_text()))
    assert mnist.lr == (0.06, 0.003, 2e-05, 0.0006) and mnist.dropProb == (0.2, 0.6, 0.0)
    assert capsys.readouterr().err.strip() == ("warning: config key 'lr': 5 rates for 4 weight layers: [0.01] "
                                               "ignored, as the original code ignores them")
    svhn = from_dict(json.loads((ORIGINALS / "supervised_bp/cnn/svhn/config.json").read_text()))
    assert svhn.lr == (0.00023, 0.00024, 0.0001, 0.00023) and svhn.dropProb == (0.35, 0.35, 0.0)
    assert capsys.readouterr().err == ""  # nothing ignored, nothing said
    # the saved form is read back without a warning: a resumed run says nothing more
    assert from_dict(mnist.to_json()) == mnist and capsys.readouterr().err == ""


def test_extra_middle_dropout_entries_are_ignored_with_one_warning(capsys):
    cfg = from_dict({**BASE, "dropProb": [0.1, 0.7, 0.2]})
    assert cfg.dropProb == (0.1, 0.2)
    assert capsys.readouterr().err.count("\n") == 1
    with pytest.raises(UserError, match="dropProb"):  # too few is still refused: nothing says what is meant
        from_dict({**BASE, "fcLayers": [784, 30, 20], "lr": [1.0, 1.0], "dropProb": [0.1, 0.2]})


def test_rates_may_decay_to_nothing_and_the_classifier_may_keep_its_rate():
    from funcs import association, loop
    cfg = from_dict({**BASE, "lr_end_factor": 0, "epochs": 4, "class_schedule": "constant"})
    assert [loop.lr_factor(cfg, e) for e in range(4)] == [1.0, 0.75, 0.5, 0.25]  # Krotov's eps0 (1 - t/T)
    assert [association.classifier_lr_factor(cfg.class_schedule, e, 10) for e in (0, 5, 9)] == [1.0, 1.0, 1.0]
    with pytest.raises(UserError, match="lr_end_factor"):
        from_dict({**BASE, "lr_end_factor": -0.1})


@pytest.mark.parametrize("rule", rules.names())
def test_help_names_each_rule_and_its_own_actions(rule, capsys):
    assert cli.main(rules.get(rule), ["--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert rules.get(rule).title in text and all(action in text for action in rules.get(rule).actions)
