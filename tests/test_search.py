"""The optuna search: its space and errors, the validation split, a real tiny search whose best config repeats
its score through bp.main, failed and pruned trials, resuming, a dead worker's trial on a journal file, the test
run that only `--test` makes, and no private optuna attribute in the package."""
from __future__ import annotations

import csv
import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from bp.main import RULE as BP
from ep.main import RULE as EP
from funcs import cli, loop, rules, search
from funcs import config as config_mod
from funcs import data as data_mod
from funcs.errors import UserError
from tests.conftest import DATA_DIR

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "docs/search.md").read_text()  # the search's commands


@pytest.fixture(scope="module")
def tiny() -> dict:
    return tiny_search()


def tiny_search() -> dict:
    """optuna_config.json of a tiny unsupervised BP search on MNIST (scikit-learn's digits where MNIST cannot be
    had): 784-30, 600 training and 300 validation images, 2 epochs; 500 test images (digits: 297) for the final
    test run."""
    try:
        data_mod.provision("mnist", DATA_DIR)
        data = {"dataset": "mnist", "data_dir": str(DATA_DIR), "fcLayers": [784, 30]}
    except UserError as err:
        warnings.warn(f"MNIST could not be provisioned ({err}); search tests use scikit-learn's digits")
        data = {"dataset": "digits", "fcLayers": [64, 30], "test_size": 297}  # digits has 297 test images
    return {"device": -1, "action": "unsupervised_bp", "epochs": 2, "batchSize": 16, "lr": [1.0],
            "activation_function": ["x", "hardsigm"], "dropProb": [0.3, 0.2], "nudge": 2, "gamma": 0.5,
            "train_size": 600, "validation_size": 300, "test_size": 500, "test_batchSize": 500,
            "class_epoch": 2, "class_activation": "sigmoid", "seed": 3,
            "mode": "batch", "nudge_max": 4,
            "search": {"gamma": {"low": 0.1, "high": 1, "log": True},
                       "lr": {"low": 0.1, "high": 10, "log": True, "per_layer": True}},
            "n_trials": 3, "sampler_seed": 7, "pruner": "none", "metric": "error_mean", **data}


def write(folder: Path, raw: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "optuna_config.json").write_text(json.dumps(raw))
    return folder


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# --- the search space -----------------------------------------------------------------------------------

def test_search_space_names_one_param_per_layer_and_keeps_the_originals_mode_and_nudge_max(tiny):
    raw = {**tiny, "fcLayers": [tiny["fcLayers"][0], 20, 30], "lr": [1.0, 2.0], "dropProb": [0.3, 0.1, 0.2],
           "activation_function": ["x", "relu", "hardsigm"],
           "search": {"lr": {"low": 0.1, "high": 10, "log": True, "per_layer": True},
                      "dropProb": [None, None, {"low": 0.0, "high": 0.5}],
                      "class_lr": {"low": 1e-3, "high": 1, "log": True},
                      "activation_function": [None, {"choices": ["relu", "sigmoid"]}, None]}}
    s = search.parse(raw, BP)
    assert [(p.name, p.key, p.index, p.type) for p in s.params] == [
        ("lr0", "lr", 0, "float"), ("lr1", "lr", 1, "float"), ("dropProb2", "dropProb", 2, "float"),
        ("class_lr", "class_lr", None, "float"), ("activation_function1", "activation_function", 1, "categorical"),
        ("nudge", "nudge", None, "int")]
    assert (s.params[-1].low, s.params[-1].high) == (1, 4)  # nudge_max: k in 1..nudge_max
    cfg = s.trial_config({"lr0": 0.5, "lr1": 3.0, "dropProb2": 0.25, "class_lr": 0.01,
                          "activation_function1": "sigmoid", "nudge": 3})
    assert cfg.lr == (0.5, 3.0) and cfg.dropProb == (0.3, 0.1, 0.25) and cfg.class_lr == (0.01,)
    assert cfg.activation_function == ("x", "sigmoid", "hardsigm") and cfg.nudge == 3 and cfg.validation_size == 300
    sequential = search.parse({**tiny, "mode": "sequential", "batchSize": 1,
                               "search": {"eta": {"low": 0.01, "high": 1, "log": True}}}, BP)
    assert sequential.base.batchSize == 1 and [p.name for p in sequential.params] == ["eta", "nudge"]


ERRORS = [  # (change to the tiny search, the start of the one-line message)
    ({"nudge_mx": 3}, "optuna_config key 'nudge_mx': unknown key (did you mean 'nudge_max'?)"),
    ({"search": {"gama": {"low": 0.1, "high": 1}}}, "search key 'gama': not a config key (did you mean 'gamma'?)"),
    ({"search": {"gamma": {"low": 1, "high": 0.1}}}, "search key 'gamma': 'low' (1.0) must be below 'high' (0.1)"),
    ({"search": {"gamma": {"low": 0, "high": 1, "log": True}}}, "search key 'gamma': a log scale needs 'low' > 0"),
    ({"search": {"gamma": {"low": 0.1, "hi": 1}}}, "search key 'gamma': unknown entry 'hi' (did you mean 'high'?)"),
    ({"search": {"batchSize": {"type": "float", "low": 8, "high": 64}}},
     "search key 'batchSize': 'batchSize' is an integer key"),
    ({"search": {"optimizer": {"low": 0, "high": 1}}}, "search key 'optimizer': 'optimizer' takes text"),
    ({"search": {"gamma": {"low": 0.1, "high": 1, "per_layer": True}}},
     "search key 'gamma': 'per_layer' needs a list key"),
    ({"search": {"dropProb": [None, {"low": 0, "high": 0.5}, None]}},
     "search key 'dropProb': 3 entries given but 'dropProb' has 2"),
    ({"search": {"seed": {"low": 1, "high": 9}}},
     "search key 'seed': cannot be searched: the validation split is drawn from it"),
    ({"search": {"dropProb": [None, {"low": 0, "high": 1}]}},
     "search key 'dropProb1': high 1.0 makes an invalid config: config key 'dropProb': 1.0 must be < 1"),
    ({"nudge_max": 40}, "search key 'nudge': high 40 makes an invalid config: config key 'nudge': 40 winners"),
    ({"mode": "sequential", "search": {"batchSize": {"choices": [8, 16]}}},
     "optuna_config key 'mode': 'sequential' trains one example at a time"),
    ({"search": {"eta": {"low": 0.1, "high": 1}}},
     "search key 'eta': eta is the moving-average rate of mode 'sequential'"),
    ({"mode": "bacth"}, "optuna_config key 'mode': 'bacth' is not one of batch, sequential (did you mean 'batch'?)"),
    ({"validation_size": None}, "optuna_config key 'validation_size': missing"),
    ({"metric": "error"}, "optuna_config key 'metric': 'error' is not one of error_mean, error_max"),
    ({"pruner": {"name": "median", "percentile": 20}}, "optuna_config key 'pruner': the median pruner takes"),
    ({"sampler": "grid"}, "optuna_config key 'sampler': 'grid' is not one of random, tpe"),
    ({"n_trials": 0}, "optuna_config key 'n_trials': expected an integer >= 1"),
    ({"gamma": -1}, "config key 'gamma': -1.0 must be >= 0"),
    ({"search": {}, "nudge_max": None}, "optuna_config key 'search': nothing to search"),
    ({"action": "train_class_layer", "trained_path": "run", "metric": "classifier_error", "nudge_max": None,
      "search": {"activation_function": [None, {"choices": ["relu", "sigmoid"]}]}},
     "search key 'activation_function': cannot be searched: the network is read from trained_path"),
]
ERROR_IDS = [m.split(":")[0] + ":" + str(i) for i, (_, m) in enumerate(ERRORS)]


@pytest.mark.parametrize("change,message", ERRORS, ids=ERROR_IDS)
def test_bad_search_space_is_one_line_naming_the_key(tiny, change, message):
    with pytest.raises(UserError) as err:
        search.parse({**tiny, **change}, BP)
    assert str(err.value).startswith(message), str(err.value)
    assert "\n" not in str(err.value)


def test_bad_search_through_the_command_line_is_one_line_and_exit_2_with_no_study(tiny, tmp_path, capsys):
    folder = write(tmp_path / "cfg", {**tiny, "search": {"lr": {"low": 0.1, "high": 10, "step": 0.5, "log": True}}})
    code = search.main(BP, ["--json_path", str(folder), "--out", str(tmp_path / "study")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: search key 'lr': 'step' and 'log' cannot be combined")
    assert not (tmp_path / "study").exists()
    assert search.main(EP, ["--json_path", str(folder), "--dry-run"]) == 2  # a BP action under ep.optuna_optim
    assert "is run by python -m bp.main, not python -m ep.main" in capsys.readouterr().err


@pytest.mark.parametrize("preset,bad", [
    ("hyper_bp/classifier", ["--trained_path", str(REPO / "configFile/quickstart")]),  # a config, no network
    ("hyper_bp/semi", ["--set", 'pretrained_path="no/such/run"'])])
def test_bad_trained_or_pretrained_network_is_one_line_and_exit_2_before_any_trial_or_folder(preset, bad, tmp_path,
                                                                                             capsys):
    argv = ["--json_path", str(REPO / "configFile" / preset), *bad, "--set", "device=-1", "--out", str(tmp_path / "s")]
    assert search.main(BP, argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(("error: config key 'trained_path': ",
                                                     "error: config key 'pretrained_path': ")), err
    assert not (tmp_path / "s").exists()


def test_storage_without_its_driver_is_one_line_and_leaves_no_folder(tiny, tmp_path, capsys, monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if "psycopg" in name else real(name, *a))
    folder = write(tmp_path / "cfg", tiny)
    argv = ["--json_path", str(folder), "--storage", "postgresql://u@localhost/db", "--out", str(tmp_path / "s")]
    assert search.main(BP, argv) == 2
    err = capsys.readouterr().err.splitlines()  # after the data's lines: its checks come first
    assert err[-1].startswith("error: --storage postgresql://u@localhost/db: no PostgreSQL driver")
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("rule,path", sorted(set(re.findall(r"python -m (bp|ep)\.optuna_optim --json_path (\S+?)[` ]",
                                                             README))))
def test_readme_search_command_names_a_valid_preset(rule, path, capsys):
    trained = ["--trained_path", str(REPO / "configFile" / {"bp": "quickstart", "ep": "quickstart_ep"}[rule])]
    argv = ["--json_path", str(REPO / path), "--dry-run", *(trained if path.endswith("classifier") else [])]
    assert search.main({"bp": BP, "ep": EP}[rule], argv) == 0  # a dry run reads only the trained run's config.json
    assert "validation examples" in capsys.readouterr().out


@pytest.mark.parametrize("name", [r.name for r in rules.all_rules() if r.search])
def test_each_rule_s_search_runs_without_json_path(name, monkeypatch, capsys):
    """`python -m hebb.optuna_optim` alone named configFile/hyper_hebb/unsupervised, which does not exist."""
    monkeypatch.chdir(REPO)  # the default --json_path is relative to the repository, as the commands are run
    assert search.main(rules.get(name), ["--dry-run"]) == 0, capsys.readouterr().err
    assert "validation examples" in capsys.readouterr().out


# --- the validation split --------------------------------------------------------------------------------

def test_validation_split_is_a_balanced_hold_out_of_the_training_set_disjoint_from_training_and_test(tiny):
    cfg = search.parse(tiny, BP).base
    full = data_mod.load_dataset(cfg.dataset, cfg.data_dir)
    shrunk = cli.shrink(full, cfg)
    rest, held, idx = data_mod.hold_out(full.train, cfg.validation_size, torch.Generator().manual_seed(cfg.seed))
    assert torch.equal(shrunk.test.x, full.train.x[idx]) and torch.equal(shrunk.test.y, full.train.y[idx])
    counts = shrunk.test.y.bincount(minlength=cfg.n_class)
    assert counts.sum() == cfg.validation_size and counts.max() - counts.min() <= 1  # class-balanced
    assert len(rest.y) + len(held.y) == len(full.train.y) and shrunk.train.y.shape[0] == cfg.train_size

    def rows(x):
        return {bytes(r.numpy().tobytes()) for r in x.reshape(x.shape[0], -1)}
    val = rows(shrunk.test.x)
    assert not val & rows(shrunk.train.x)  # never trained on
    if cfg.dataset == "mnist":  # MNIST's test set holds no copy of a training image
        assert not val & rows(full.test.x)
    again = cli.shrink(full, cfg)  # seeded: the same split every time
    assert torch.equal(again.test.y, shrunk.test.y)


# --- a real search ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def study(tiny, tmp_path_factory) -> Path:
    """A real 3-trial random search on the journal file, then the best config's test run (`--test`)."""
    root = tmp_path_factory.mktemp("search")
    folder = write(root / "cfg", tiny)
    argv = ["--json_path", str(folder), "--out", str(root / "study"), "--study-name", "tiny"]
    assert search.main(BP, argv) == 0
    assert search.main(BP, [*argv, "--test"]) == 0
    return root / "study"


def test_search_writes_trials_plots_best_config_and_summary(study, tiny):
    rows = read_csv(study / "trials.csv")
    assert [r["number"] for r in rows] == ["0", "1", "2"] and {r["state"] for r in rows} == {"COMPLETE"}
    values = [float(r["error_mean"]) for r in rows]
    summary = json.loads((study / "summary.json").read_text())
    assert summary["best"]["value"] == min(values) and summary["trials"] == {"COMPLETE": 3}
    assert set(summary["best"]["params"]) == {"gamma", "lr0", "nudge"}
    assert (study / "history.png").stat().st_size > 10_000 and (study / "importance.png").stat().st_size > 10_000
    assert set(summary["importance"]) == {"gamma", "lr0", "nudge"}
    best = json.loads((study / "best" / "config.json").read_text())
    p = summary["best"]["params"]
    assert (best["gamma"], best["lr"], best["nudge"]) == (p["gamma"], [p["lr0"]], p["nudge"])
    assert best["validation_size"] == tiny["validation_size"] and best["out_dir"] is None
    held = data_mod.hold_out(data_mod.load_dataset(best["dataset"], best["data_dir"]).train, best["validation_size"],
                             torch.Generator().manual_seed(best["seed"]))[2]
    from funcs import association
    assert summary["validation"]["indices"] == association.describe_subset(held)["sha256"]
    assert "best: trial" in (study / "summary.txt").read_text()


def test_best_config_repeats_its_validation_score_through_bp_main(study, tmp_path):
    summary = json.loads((study / "summary.json").read_text())
    assert cli.main(BP, ["--json_path", str(study / "best"), "--out", str(tmp_path / "again")]) == 0
    again = json.loads((tmp_path / "again" / "summary.json").read_text())
    assert again["metrics"]["error_mean"] == summary["best"]["value"]  # the same validation split, bit for bit
    assert again["metrics"]["classifier_error"] == summary["best"]["metrics"]["classifier_error"]
    assert again["evaluated_on"].startswith("validation: 300 training examples")


def test_test_set_is_used_once_by_the_best_config_trained_without_hold_out(study, tiny):
    summary = json.loads((study / "summary.json").read_text())
    test_cfg = json.loads((study / "test" / "config.json").read_text())
    assert test_cfg["validation_size"] is None and test_cfg["gamma"] == summary["best"]["params"]["gamma"]
    test_run = json.loads((study / "test" / "summary.json").read_text())
    assert "evaluated_on" not in test_run
    assert summary["test"]["accuracy_percent"] == test_run["accuracy_percent"]
    assert summary["test"]["trial"] == summary["best"]["trial"]


def test_rerun_resumes_the_study_and_a_changed_search_is_refused(study, tiny, tmp_path, capsys):
    folder = write(tmp_path / "cfg", tiny)
    args = ["--json_path", str(folder), "--out", str(study), "--study-name", "tiny"]
    assert search.main(BP, [*args, "--n-trials", "4"]) == 0
    assert [r["number"] for r in read_csv(study / "trials.csv")] == ["0", "1", "2", "3"]
    out = capsys.readouterr().out
    assert "3 of 4 trials there" in out and "--test" not in out  # tested already: the test set is not used again
    write(folder, {**tiny, "gamma": 0.3})
    assert search.main(BP, args) == 2
    assert "study 'tiny' was created with another search (config keys gamma differ)" in capsys.readouterr().err


def test_failed_trial_keeps_its_reason_and_the_search_goes_on(tiny, tmp_path, monkeypatch):
    """Trial 1 diverges (its loss becomes NaN), trial 2 raises: both failed with their reason, the others scored."""
    real = loop.train
    calls = []

    def train(cfg, data, learner, run=None, state=None):
        calls.append(cfg)
        if len(calls) == 2:
            run.epoch_done({"epoch": 1, "loss": math.nan, "error_mean": 0.9}, {})
        if len(calls) == 3:
            raise RuntimeError("out of memory")
        return real(cfg, data, learner, run=run, state=state)

    monkeypatch.setattr(loop, "train", train)
    folder = write(tmp_path / "cfg", {**tiny, "n_trials": 4, "class_epoch": 0})
    assert search.main(BP, ["--json_path", str(folder), "--out", str(tmp_path / "study")]) == 0
    rows = read_csv(tmp_path / "study" / "trials.csv")
    assert [r["state"] for r in rows] == ["COMPLETE", "FAIL", "FAIL", "COMPLETE"]
    assert rows[1]["reason"] == "diverged: loss nan at epoch 1"
    assert rows[2]["reason"] == "RuntimeError: out of memory"
    assert "RuntimeError: out of memory" in (tmp_path / "study" / "search.log").read_text()  # with its traceback
    assert json.loads((tmp_path / "study" / "summary.json").read_text())["best"]["trial"] in (0, 3)


def test_reporter_reports_each_epoch_and_prunes_when_optuna_says_so():
    import optuna

    class Trial:
        number, reports = 5, []

        def report(self, value, step):
            self.reports.append((value, step))

        def should_prune(self):
            return len(self.reports) == 2

    lines = []
    reporter = search.TrialReporter(Trial(), "error_mean", Path("."), lines.append)
    reporter.epoch_done({"epoch": 1, "loss": 0.1, "error_mean": 0.5, "seconds": 1.0}, {})
    with pytest.raises(optuna.TrialPruned, match="pruned after epoch 2: error_mean 0.4000"):
        reporter.epoch_done({"epoch": 2, "loss": 0.1, "error_mean": 0.4, "seconds": 1.0}, {})
    assert Trial.reports == [(0.5, 1), (0.4, 2)] and lines[0] == "trial 5 epoch 1: error_mean 0.5000 (1.0 s)"


def test_trial_of_a_killed_worker_on_the_journal_file_is_failed_when_the_search_is_run_again(tiny, tmp_path, capsys):
    """A journal file has no heartbeat: the next worker of the machine fails the trials of dead processes."""
    folder = write(tmp_path / "cfg", {**tiny, "epochs": 12, "n_trials": 2, "class_epoch": 0})
    out = tmp_path / "study"
    cmd = [sys.executable, "-m", "bp.optuna_optim", "--json_path", str(folder), "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    worker = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in worker.stdout:
        if line.startswith("trial 0 epoch 1:"):
            break
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    assert search.main(BP, cmd[3:]) == 0  # the same command again, in this process
    assert f"trial 0 failed: its worker (process {worker.pid} on" in capsys.readouterr().out
    rows = read_csv(out / "trials.csv")
    assert [r["state"] for r in rows] == ["FAIL", "COMPLETE"]
    assert rows[0]["reason"].endswith("stopped during the trial")


def test_classifier_search_reads_out_a_trained_run_and_its_best_config_repeats_through_bp_main(study, tmp_path):
    """hyper_bp/classifier on the tiny search's test run: the network's keys come from the run, the read-out is
    searched, and the best config (action train_class_layer, trained_path) repeats its score through bp.main."""
    trained = study / "test"
    argv = ["--json_path", str(REPO / "configFile/hyper_bp/classifier"), "--trained_path", str(trained),
            "--set", "n_trials=2", "--set", "class_epoch=2", "--set", "validation_size=300",
            "--out", str(tmp_path / "study")]
    assert search.main(BP, argv) == 0
    summary = json.loads((tmp_path / "study" / "summary.json").read_text())
    assert summary["trials"] == {"COMPLETE": 2} and set(summary["best"]["params"]) == {"class_activation", "class_lr"}
    best = json.loads((tmp_path / "study" / "best" / "config.json").read_text())
    run_cfg = json.loads((trained / "config.json").read_text())
    assert best["action"] == "train_class_layer" and best["trained_path"] == str(trained)
    assert (best["fcLayers"], best["gamma"], best["seed"]) == (run_cfg["fcLayers"], run_cfg["gamma"], run_cfg["seed"])
    assert best["class_lr"] == [summary["best"]["params"]["class_lr"]]
    assert cli.main(BP, ["--json_path", str(tmp_path / "study" / "best"), "--out", str(tmp_path / "again")]) == 0
    again = json.loads((tmp_path / "again" / "summary.json").read_text())
    assert again["metrics"]["classifier_error"] == summary["best"]["value"]
    assert "may have seen the validation images" in (tmp_path / "study" / "search.log").read_text()


def test_hold_out_note_says_what_the_trained_network_may_know_of_the_validation_images(tmp_path):
    cfg = config_mod.from_dict({"validation_size": 300, "seed": 3})
    notes = {}
    for action in ("unsupervised_bp", "bp", "semi_supervised_ep"):
        (tmp_path / action).mkdir()
        (tmp_path / action / "config.json").write_text(json.dumps({"action": action, "validation_size": None,
                                                                    "seed": 3}))
        notes[action] = search.hold_out_note(str(tmp_path / action), cfg)
    assert "may have seen the validation images (never their labels)" in notes["unsupervised_bp"]
    assert "trained on the validation images with their labels" in notes["bp"]
    assert "some of them with their labels" in notes["semi_supervised_ep"]
    (tmp_path / "bp" / "config.json").write_text(json.dumps({"action": "bp", "validation_size": 300, "seed": 3}))
    assert search.hold_out_note(str(tmp_path / "bp"), cfg).endswith("trained without these 300 validation images")


# --- the test run: only --test makes it ----------------------------------------------------------------------

@pytest.fixture
def test_runs(monkeypatch) -> tuple[list, list]:
    """A stand-in for cli.run_one that records its calls (folder, resume) and writes the run's config.json, as the
    real one does first; each entry put in the second list makes one call stop as Ctrl-C does."""
    calls: list = []
    interrupt: list = []

    def run_one(rule, cfg, folder, argv, resume=False):
        calls.append((folder, resume))
        Path(cfg.out_dir).mkdir(parents=True, exist_ok=True)
        (Path(cfg.out_dir) / "config.json").write_text(json.dumps(cfg.to_json()))
        if interrupt:
            interrupt.pop()
            raise cli.UserInterrupt(Path(cfg.out_dir))
        return {"accuracy_percent": {"direct": 90.0}, "metrics": {"error": 0.1}}

    monkeypatch.setattr(cli, "run_one", run_one)
    return calls, interrupt


def one_trial_search(tiny, tmp_path) -> Path:
    """A one-trial search of one epoch on scikit-learn's 8x8 digits: quick to start, train and plot."""
    return write(tmp_path / "cfg", {**tiny, "dataset": "digits", "fcLayers": [64, 30], "test_size": None,
                                    "n_trials": 1, "epochs": 1, "class_epoch": 0})


def test_finished_study_prints_the_test_command_and_only_that_command_runs_the_test_once(tiny, tmp_path, capsys,
                                                                                       test_runs):
    calls, _ = test_runs
    folder = one_trial_search(tiny, tmp_path)
    argv = ["--json_path", str(folder), "--out", str(tmp_path / "my study")]  # a space: the command quotes it
    assert search.main(BP, [*argv, "--test"]) == 2  # no trial yet: nothing to test
    assert capsys.readouterr().err.splitlines()[-1].startswith(
        "error: --test: the study is not finished (0 of its 1 trials, none running)")
    assert search.main(BP, argv) == 0
    printed = capsys.readouterr().out.splitlines()
    command = printed[printed.index("the study is complete; score its best config on the test set, once, with:") + 1]
    assert shlex.split(command) == ["python", "-m", "bp.optuna_optim", *argv, "--test"] and calls == []
    assert search.main(BP, argv) == 0  # a worker started on the finished study: no trial, no test, the command
    assert f"\n{command}\n" in capsys.readouterr().out and calls == []
    assert len(read_csv(tmp_path / "my study" / "trials.csv")) == 1
    assert search.main(BP, shlex.split(command)[3:]) == 0
    assert calls == [(None, False)]
    summary = json.loads((tmp_path / "my study" / "summary.json").read_text())
    assert summary["test"]["trial"] == 0 and summary["test"]["accuracy_percent"] == {"direct": 90.0}
    capsys.readouterr()
    assert search.main(BP, shlex.split(command)[3:]) == 0  # once: a second --test runs nothing
    assert calls == [(None, False)]
    assert "the test set was used already, by trial 0's config" in capsys.readouterr().out


def stopped_line(err: str) -> bool:
    """The last line printed is the one about resuming, and no traceback came before it (the data's lines may)."""
    last = err.splitlines()[-1]
    return "Traceback" not in err and last == "interrupted; run the same command again to resume the search"


def test_ctrl_c_in_a_trial_or_the_test_run_is_one_line_and_exit_130_and_the_rerun_continues_it(tiny, tmp_path, capsys,
                                                                                                monkeypatch, test_runs):
    calls, interrupt = test_runs
    argv = ["--json_path", str(one_trial_search(tiny, tmp_path)), "--out", str(tmp_path / "study"), "--study-name", "c"]
    real = loop.train

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "train", ctrl_c)
    assert search.main(BP, argv) == 130
    assert stopped_line(capsys.readouterr().err)
    rows = read_csv(tmp_path / "study" / "trials.csv")
    assert [(r["state"], r["reason"]) for r in rows] == [("FAIL", "interrupted (Ctrl-C)")]
    monkeypatch.setattr(loop, "train", real)
    assert search.main(BP, argv) == 0  # the interrupted trial made up
    assert [r["state"] for r in read_csv(tmp_path / "study" / "trials.csv")] == ["FAIL", "COMPLETE"]
    interrupt.append(True)
    assert search.main(BP, [*argv, "--test"]) == 130
    assert stopped_line(capsys.readouterr().err)
    assert json.loads((tmp_path / "study" / "summary.json").read_text())["test"] is None  # not recorded
    assert search.main(BP, [*argv, "--test"]) == 0  # continues the stopped run in test/
    assert calls == [(None, False), (tmp_path / "study" / "test", True)]


PRIVATE = re.compile(r"\b(?!self\b)\w+\._[a-z]\w*")  # obj._name, an object's own self._name aside


def test_search_package_reaches_no_private_attribute_of_optuna():
    """Only optuna's public API: no study._storage, trial._trial_id, study._study_id, optuna.x._module, nor a
    getattr of a private name; they change between optuna releases without notice."""
    assert PRIVATE.findall("study._storage.get(t._trial_id), self._line()") == ["study._storage", "t._trial_id"]
    modules = sorted((REPO / "funcs" / "search").glob("*.py"))
    assert len(modules) >= 5  # the package, not a stale path
    found = [f"{path.name}:{n}: {line.strip()}" for path in modules
             for n, line in enumerate(path.read_text().splitlines(), 1)
             if PRIVATE.search(line) or re.search(r"getattr\([^)]*['\"]_", line)]
    assert found == []


def test_trial_whose_real_training_diverges_fails_with_the_loops_line(tiny, tmp_path):
    """A linear network at lr 1e29-1e30 overflows after its first step: the epoch loop stops it at batch 2 of
    epoch 1 and the trial fails with that line as its reason (funcs.loop.Diverged, the search's Diverged)."""
    raw = {**tiny, "activation_function": ["x", "x"], "n_trials": 1, "class_epoch": 0,
           "search": {"lr": {"low": 1e29, "high": 1e30, "log": True, "per_layer": True}}}
    folder = write(tmp_path / "cfg", raw)
    assert search.main(BP, ["--json_path", str(folder), "--out", str(tmp_path / "study")]) == 0
    [row] = read_csv(tmp_path / "study" / "trials.csv")
    assert row["state"] == "FAIL" and row["reason"].startswith("diverged: loss ")
    assert " at epoch 1, batch 2 of 38; the learning rate is the likely cause" in row["reason"]
    assert search.Diverged is loop.Diverged


def test_diverged_test_run_exits_3_and_a_rerun_says_to_resume_it(tiny, tmp_path, monkeypatch, capsys):
    """The best config's test run (the full training set) diverges: the search exits as bp.main does (3); run
    again, it points at the diverged run folder instead of reporting its empty accuracies."""
    args = ["--json_path", str(one_trial_search(tiny, tmp_path)), "--out", str(tmp_path / "study"), "--test"]
    assert search.main(BP, args[:-1]) == 0  # the study, finished

    def diverge(rule, cfg, out, command, resume=False):
        Path(cfg.out_dir).mkdir(parents=True)
        (Path(cfg.out_dir) / "config.json").write_text(json.dumps(cfg.to_json()))
        (Path(cfg.out_dir) / "summary.json").write_text(json.dumps(
            {"status": "diverged", "diverged": {"reason": "diverged: loss nan at epoch 2, batch 7 of 9"}}))
        raise cli.RunDiverged("diverged: loss nan at epoch 2, batch 7 of 9")

    monkeypatch.setattr(cli, "run_one", diverge)
    assert search.main(BP, args) == cli.DIVERGED_EXIT
    assert capsys.readouterr().err.strip().splitlines()[-1] == "diverged: loss nan at epoch 2, batch 7 of 9"
    assert search.main(BP, args) == 2
    err = capsys.readouterr().err
    assert "diverged (diverged: loss nan at epoch 2, batch 7 of 9); continue it with python -m bp.main --resume" in err


def requirement_floor(name: str, file: str = "requirements-search.txt") -> str:
    """The `NAME>=X` floor of a package in a requirements file."""
    for line in (REPO / file).read_text().splitlines():
        found = re.match(rf"\s*{re.escape(name)}\s*>=\s*([\w.]+)", line)
        if found:
            return found.group(1)
    raise AssertionError(f"no floor for {name} in {file}")


def test_optuna_floor_is_the_version_whose_api_the_search_calls(tiny, tmp_path, monkeypatch, capsys):
    """requirements-search.txt's optuna floor is search.OPTUNA_MIN, the first release with every keyword make_storage
    passes to RDBStorage (heartbeat_stale_trial_callback: 4.9.0); an older optuna is one line and exit 2."""
    import inspect

    import optuna
    from packaging.version import Version
    assert requirement_floor("optuna") == search.OPTUNA_MIN == "4.9"
    assert Version(optuna.__version__) >= Version(search.OPTUNA_MIN)
    accepted = inspect.signature(optuna.storages.RDBStorage).parameters
    assert {"heartbeat_interval", "grace_period", "heartbeat_stale_trial_callback", "engine_kwargs"} <= set(accepted)
    monkeypatch.setattr(optuna, "__version__", "4.8.0")
    folder = write(tmp_path / "cfg", tiny)
    assert search.main(BP, ["--json_path", str(folder), "--out", str(tmp_path / "study")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == \
        "error: the search needs optuna >= 4.9, this environment has 4.8.0: pip install 'optuna>=4.9'"
    assert not (tmp_path / "study").exists()


def test_search_log_has_a_line_per_training_and_per_classifier_epoch_of_each_trial(study, tiny):
    """Neither phase of a trial is silent: a line per training epoch (its metric) and per classifier epoch."""
    log = (study / "search.log").read_text()
    for trial in range(3):
        assert re.findall(rf"^trial {trial} epoch (\d+): error_mean ", log, re.M) == ["1", "2"]
        assert re.findall(rf"^trial {trial} classifier epoch (\d+): test_error \d\.\d{{4}} \(\d+\.\d s\)$", log,
                          re.M) == ["1", "2"]


# --- damaged or misplaced study files: one line naming the file, exit 2, nothing written ------------------------

def one_error_line(capsys) -> str:
    """The one line a refused command printed on stderr (no traceback, nothing else)."""
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err.strip()


CREATE = b'{"op_code": 0, "worker_id": "w", "study_name": "s", "directions": [1]}\n'  # a study created


@pytest.mark.parametrize("garbage", [b"garbage{{{\n", CREATE + b"[1]\n", CREATE.replace(b', "directions": [1]', b"")],
                         ids=["not JSON", "a list", "no directions"])
def test_damaged_study_journal_is_one_line_naming_it_and_is_left_as_it_was(tiny, tmp_path, capsys, garbage):
    out = tmp_path / "study"
    out.mkdir()
    (out / "study.journal").write_bytes(garbage)
    argv = ["--json_path", str(one_trial_search(tiny, tmp_path)), "--out", str(out)]
    assert search.main(BP, argv) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"error: study journal {out / 'study.journal'}"), line
    assert " is damaged (line " in line or ": optuna " in line and " cannot replay it (KeyError" in line, line
    assert (out / "study.journal").read_bytes() == garbage  # nothing appended to it
    assert sorted(p.name for p in out.iterdir()) == ["study.journal"]


def test_out_that_is_a_file_is_one_line_naming_it(tiny, tmp_path, capsys):
    out = tmp_path / "study"
    out.write_text("mine")
    for extra in ([], ["--storage", str(tmp_path / "elsewhere.journal")]):
        argv = ["--json_path", str(one_trial_search(tiny, tmp_path)), "--out", str(out), *extra]
        assert search.main(BP, argv) == 2
        line = one_error_line(capsys)
        assert line == f"error: --out {out}: a file is there, not a folder; choose another study folder", line
        assert out.read_text() == "mine" and not (tmp_path / "elsewhere.journal").exists()
    assert search.main(BP, ["--json_path", str(one_trial_search(tiny, tmp_path)), "--out", ""]) == 2
    assert one_error_line(capsys) == "error: --out: an empty path; give the study folder"


def test_storage_that_is_a_folder_is_one_line_naming_it(tiny, tmp_path, capsys):
    storage = tmp_path / "folder"
    storage.mkdir()
    argv = ["--json_path", str(one_trial_search(tiny, tmp_path)), "--storage", str(storage),
            "--out", str(tmp_path / "study")]
    assert search.main(BP, argv) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"error: --storage {storage}: cannot open the journal file (Is a directory"), line
    assert list(storage.iterdir()) == [] and not (tmp_path / "study").exists()


@pytest.mark.parametrize("damaged", [{"status": "diverged"}, {"status": "finished"}, {"status": "diverged",
                                     "diverged": "nan"}, {"status": "finished", "accuracy_percent": {}}])
def test_damaged_test_run_summary_is_one_line_naming_it(tiny, tmp_path, capsys, damaged):
    argv = ["--json_path", str(one_trial_search(tiny, tmp_path)), "--out", str(tmp_path / "study")]
    assert search.main(BP, argv) == 0  # the study, finished
    capsys.readouterr()
    test = tmp_path / "study" / "test"
    test.mkdir()
    (test / "summary.json").write_text(json.dumps(damaged))
    assert search.main(BP, [*argv, "--test"]) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"error: test run summary {test / 'summary.json'} is damaged ("), line
    assert line.endswith(f"remove {test} to run the test again"), line
    assert json.loads((tmp_path / "study" / "summary.json").read_text())["test"] is None  # nothing recorded


def test_integer_keys_of_the_search_file_take_an_integral_float_as_config_keys_do(tiny):
    s = search.parse({**tiny, "n_trials": 1e3, "sampler_seed": 7.0, "nudge_max": 4.0,
                      "pruner": {"name": "median", "n_startup_trials": 2.0, "n_warmup_steps": 1e0}}, BP)
    assert (s.n_trials, s.sampler_seed, s.nudge_max) == (1000, 7, 4)
    assert all(type(v) is int for v in (s.n_trials, s.sampler_seed, s.nudge_max))
    assert s.pruner == {"name": "median", "n_startup_trials": 2, "n_warmup_steps": 1}
    assert type(s.pruner["n_warmup_steps"]) is int
    assert s.record() == search.parse({**tiny, "n_trials": 1000, "sampler_seed": 7, "nudge_max": 4, "pruner": {
        "name": "median", "n_startup_trials": 2, "n_warmup_steps": 1}}, BP).record()
    for bad in (2.5, True, "3", float("nan")):
        with pytest.raises(UserError, match="optuna_config key 'n_trials': expected an integer >= 1"):
            search.parse({**tiny, "n_trials": bad}, BP)
