"""Training through the real entry point on real MNIST subsets: end to end, resume, seeds, baselines.

Where MNIST cannot be provisioned (no mirror, no npm), the tests fall back to
scikit-learn's bundled 8x8 digits and say so in a warning, with thresholds
watched on that dataset.
"""
from __future__ import annotations

import csv
import itertools
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bp.main import RULE
from funcs import cli, loop
from funcs import config as config_mod
from funcs import results
from tests.conftest import DATA_DIR

REPO = Path(__file__).resolve().parents[1]

# The quickstart network (784-500) on a class-balanced MNIST subset: seconds per epoch on a laptop CPU.
DATASET_ARGS = {
    "mnist": ["--set", f"data_dir={DATA_DIR}", "--set", "train_size=3000", "--set", "test_size=1000"],
    "digits": ["--set", "dataset=digits", "--set", "fcLayers=[64,500]"],  # all 1,500 / 297 images
}
# The end-to-end test's setting and the accuracies (%) it must beat, chosen from watched runs (seeds 1-3),
# above what the same network reaches untrained (epochs 0), so that a network that stops learning fails:
#   mnist (6,000 images, 3 epochs): direct 80.0 / 79.9 / 80.4, linear 89.4 / 89.0 / 90.05; untrained 62.1, 86.2;
#   digits (1,500 images, 3 epochs): direct 80.8 / 82.8 / 79.1, linear 85.5 / 87.2 / 86.5; untrained 72.4, 85.9
#   (on digits the linear read-out of random features is as good: only the direct association tells).
E2E = {"mnist": (["--set", f"data_dir={DATA_DIR}", "--set", "train_size=6000", "--set", "test_size=2000"],
                 {"direct_association_mean": 72, "linear_classifier": 87.5}),
       "digits": (DATASET_ARGS["digits"], {"direct_association_mean": 76.5})}
# Supervised BP, 2 epochs: watched 80+% on the MNIST subset, 46% on digits (1,500 images only).
SUPERVISED_MIN = {"mnist": 70, "digits": 30}
SMALL: list[str] = []  # the chosen dataset's arguments plus quick settings, filled by the fixture


@pytest.fixture(scope="module", autouse=True)
def dataset(dataset) -> str:
    """tests/conftest.py's dataset ('mnist', or 'digits' where MNIST cannot be had), with SMALL filled for it."""
    SMALL[:] = [*DATASET_ARGS[dataset], "--set", "test_batchSize=500", "--set", "class_epoch=3"]
    return dataset


def label_counts() -> list[int]:
    """Examples per class in the training set the tests use."""
    cfg = config_mod.load(REPO / "configFile/quickstart", [a for a in SMALL if a != "--set"])
    _, data, _ = cli.prepare(RULE, cfg)
    return data.train.y.bincount().tolist()


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def train(tmp_path: Path, name: str, *extra: str) -> dict:
    out = tmp_path / name
    code = cli.main(RULE, ["--json_path", str(REPO / "configFile/quickstart"), *SMALL, "--out", str(out), *extra])
    assert code == 0
    return json.loads((out / "summary.json").read_text())


def test_every_cpu_thread_computes_with_subnormal_floats_as_zero():
    """Adam's decayed moments reach the subnormal range, where a CPU is slow (bench/denormals.py): importing the
    command line flushes them on every thread of torch's pool (a thread keeps the mode it started with)."""
    assert 0 < 1e-39 < torch.finfo(torch.float32).tiny  # a float32 subnormal
    code = ("import torch, funcs.cli; torch.set_num_threads(2); x = torch.full((1_000_000,), 1e-39); "
            "print(((x * 1) == 0).float().mean().item())")
    flushed = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert float(flushed.stdout) == 1.0  # on both threads (before, none: the product kept them)


def test_cli_trains_unsupervised_network_above_chance_by_far(tmp_path, dataset):
    """The real command line, in a fresh process: the quickstart network, three epochs (6,000 MNIST images)."""
    out = tmp_path / "run"
    args, minimum = E2E[dataset]
    proc = subprocess.run(
        [sys.executable, "-m", "bp.main", "--json_path", "configFile/quickstart", *args, "--set", "class_epoch=5",
         "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    acc = json.loads((out / "summary.json").read_text())["accuracy_percent"]
    for key, value in minimum.items():
        assert acc[key] > value, (key, acc)
    assert [int(r["epoch"]) for r in read_csv(out / "results.csv")] == [1, 2, 3]
    rows = read_csv(out / "classifier.csv")
    assert [float(r["lr"]) for r in rows] == pytest.approx([0.1 * 0.9 ** e for e in range(5)])  # BP: x0.9
    # not a terminal: a plain line per classifier epoch, with the numbers of classifier.csv
    printed = re.findall(r"^classifier epoch (\d+)/5 .* test_error (\S+) ", proc.stdout, re.M)
    assert [(int(e), float(v)) for e, v in printed] == [(int(r["epoch"]), pytest.approx(float(r["test_error"]),
                                                                                        abs=5e-5)) for r in rows]
    overrides = dict(config_mod.parse_override(a) for a in args if a != "--set")
    assert config_mod.load(out) == config_mod.replace(config_mod.load(REPO / "configFile/quickstart"),
                                                      **overrides, class_epoch=5, out_dir=str(out))
    for name in ("checkpoint.pt", "model_state_dict.pt", "run.log", "curves.png"):
        assert (out / name).is_file()


def interrupt_then_resume(rule, args: list[str], out: Path, monkeypatch, stop_epoch: int = 1) -> None:
    """Train `args` into `out`, stopped by Ctrl-C after `stop_epoch`, then continue it with --resume."""
    original = results.Run.epoch_done

    def stop(self, row, checkpoint):
        original(self, row, checkpoint)
        if row["epoch"] == stop_epoch:
            raise KeyboardInterrupt

    monkeypatch.setattr(results.Run, "epoch_done", stop)
    assert cli.main(rule, [*args, "--out", str(out)]) == 130
    assert not (out / "summary.json").exists() and len(read_csv(out / "results.csv")) == stop_epoch
    monkeypatch.setattr(results.Run, "epoch_done", original)
    assert cli.main(rule, ["--resume", str(out)]) == 0


def test_seeds_report_mean_and_sample_std_of_each_seed(tmp_path):
    out = tmp_path / "seeds"
    code = cli.main(RULE, ["--json_path", str(REPO / "configFile/quickstart"), *SMALL, "--set", "epochs=1",
                           "--out", str(out), "--seeds", "2"])
    assert code == 0
    stats = json.loads((out / "seeds_summary.json").read_text())
    assert stats["seeds"] == [1, 2]
    per_seed = [json.loads((out / f"S-{s}/summary.json").read_text())["accuracy_percent"] for s in (1, 2)]
    a, b = (p["direct_association_mean"] for p in per_seed)
    losses = [read_csv(out / f"S-{s}/results.csv")[-1]["loss"] for s in (1, 2)]
    assert losses[0] != losses[1]  # different seeds, different runs (297 digits test images may tie on accuracy)
    assert stats["mean"]["direct_association_mean"] == pytest.approx((a + b) / 2, abs=1e-3)
    assert stats["std"]["direct_association_mean"] == pytest.approx(abs(a - b) / 2 ** 0.5, abs=1e-3)
    assert (out / "curves.png").is_file() and (out / "S-1/curves.png").is_file()


def test_untrained_network_is_evaluated_like_a_trained_one(tmp_path):
    """epochs 0: the paper's baseline of a random network read out by both association methods."""
    untrained = train(tmp_path, "untrained", "--set", "epochs=0")
    trained = train(tmp_path, "trained", "--set", "epochs=3")
    assert set(untrained["accuracy_percent"]) == {"direct_association_mean", "direct_association_max",
                                                  "linear_classifier"}
    assert trained["accuracy_percent"]["direct_association_mean"] > \
        untrained["accuracy_percent"]["direct_association_mean"] + 5


def test_supervised_bp_learns_with_class_blocks_of_output_neurons(tmp_path, dataset):
    """Action 'bp' with 500 outputs: each class owns 50 neurons; two epochs on 3,000 images."""
    summary = train(tmp_path, "supervised", "--set", "action=bp", "--set", "epochs=2", "--set", "lr=[1.0]",
                    "--set", "dropProb=[0,0]", "--set", "batchSize=32")
    assert summary["accuracy_percent"]["test"] > SUPERVISED_MIN[dataset]


def error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines and lines[-1].startswith("error: ")
    return lines[-1]


def test_atomic_write_replaces_a_file_whole_or_leaves_it_and_no_temporary_file(tmp_path):
    path = tmp_path / "seeds_summary.json"
    results.write_json(path, {"seeds": [1]})

    def half_then_fail(tmp):
        tmp.write_text('{"see')  # a disk full, a kill: half a file
        raise OSError("No space left on device")
    with pytest.raises(OSError):
        results.atomic_write(path, half_then_fail)
    assert json.loads(path.read_text()) == {"seeds": [1]} and os.listdir(tmp_path) == [path.name]
    # each write has its own temporary file: another writer of the same file at the same time (a second process,
    # here nested in the first's write) neither overwrites it nor renames it away
    def outer(tmp):
        tmp.write_text("outer")
        results.atomic_write(path, lambda inner: inner.write_text("inner"))
        assert path.read_text() == "inner" and tmp.read_text() == "outer"
    results.atomic_write(path, outer)
    assert path.read_text() == "outer" and os.listdir(tmp_path) == [path.name]
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())  # as open() makes it, not mkstemp's 0600
    # what a kill (SIGKILL) in the middle of a write leaves is removed when the run is resumed
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / ".checkpoint.pt.0123abcd.tmp").write_bytes(b"half a checkpoint")
    results.Run.open(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["config.json", path.name]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_out_that_is_a_file_or_a_nonempty_folder_is_refused_untouched(tmp_path, capsys):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    for out in (a_file, folder):
        code = cli.main(RULE, ["--json_path", str(REPO / "configFile/quickstart"), *SMALL, "--out", str(out)])
        assert code == 2 and "not an empty folder" in error_line(capsys)
    assert a_file.read_text() == "mine" and (folder / "config.json").read_text() == "{}"
    assert sorted(p.name for p in folder.iterdir()) == ["config.json"]
    code = cli.main(RULE, ["--json_path", str(REPO / "configFile/quickstart"), *SMALL, "--out", ""])
    assert code == 2 and error_line(capsys) == "error: --out: an empty path; give the run folder"


def test_resume_on_another_machine_takes_its_data_dir_and_nothing_else(tmp_path, capsys, dataset):
    """A run stopped on one machine continues on another whose data lie elsewhere (`--set data_dir`, or device):
    config.json, run.log and summary.json say so, and the run ends as it would have; what it learns cannot
    change that way."""
    finished = train(tmp_path, "run", "--set", "epochs=2", "--set", "class_epoch=2")
    run = tmp_path / "run"
    (run / "summary.json").unlink()  # as if it had been stopped after its last checkpoint (epoch 2)
    was = json.loads((run / "config.json").read_text())["data_dir"]
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    if dataset == "mnist":
        (moved / "mnist").symlink_to(Path(DATA_DIR).resolve() / "mnist")
    assert cli.main(RULE, ["--resume", str(run), "--set", "seed=2", "--set", f"data_dir={moved}"]) == 2
    assert "seed cannot change in a resumed run" in error_line(capsys)
    assert cli.main(RULE, ["--resume", str(run), "--set", f"data_dir={moved}"]) == 0
    assert json.loads((run / "config.json").read_text())["data_dir"] == str(moved)
    assert f'resumed with data_dir "{moved}" (was "{was}")' in (run / "run.log").read_text()
    summary = json.loads((run / "summary.json").read_text())
    move = {"after_epoch": 2, "changed": {"data_dir": {"was": was, "now": str(moved)}}}
    assert summary["resumed_with"] == [move]
    assert summary["accuracy_percent"] == finished["accuracy_percent"]
    # stopped again before it checkpointed on the new machine (its checkpoint still has the old data_dir): a plain
    # resume continues it, and the move is still reported
    (run / "summary.json").unlink()
    assert cli.main(RULE, ["--resume", str(run)]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["resumed_with"] == [move] and summary["accuracy_percent"] == finished["accuracy_percent"]


def test_resume_refuses_non_runs_corrupt_checkpoints_changed_configs_and_overrides(tmp_path, capsys):
    assert cli.main(RULE, ["--resume", str(tmp_path)]) == 2
    assert "no config.json" in error_line(capsys)

    train(tmp_path, "run", "--set", "epochs=1", "--set", "class_epoch=0")
    run = tmp_path / "run"
    assert cli.main(RULE, ["--resume", str(run)]) == 2
    assert "this run has finished" in error_line(capsys)
    (run / "summary.json").unlink()  # as if it had been stopped before its end
    assert cli.main(RULE, ["--resume", str(run), "--set", "lr=[1.0]"]) == 2
    assert "--set lr changes a run only after it diverged" in error_line(capsys)
    assert cli.main(RULE, ["--resume", str(run), "--out", str(tmp_path / "elsewhere")]) == 2
    assert "--resume continues a run with its saved config" in error_line(capsys)

    saved = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**saved, "fcLayers": [saved["fcLayers"][0], 30]}))
    assert cli.main(RULE, ["--resume", str(run)]) == 2
    assert "differs from the checkpoint's config (fcLayers)" in error_line(capsys)

    # a checkpoint from before checkpoints kept their config: the network's shapes still have to fit
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    del state["config"]
    torch.save(state, run / "checkpoint.pt")
    assert cli.main(RULE, ["--resume", str(run)]) == 2
    assert "does not fit this config's network" in error_line(capsys)

    (run / "config.json").write_text(json.dumps(saved))
    (run / "checkpoint.pt").write_bytes(b"not a checkpoint")
    assert cli.main(RULE, ["--resume", str(run)]) == 2
    assert "checkpoint.pt cannot be read" in error_line(capsys)


def test_resume_refuses_a_damaged_results_csv_summary_or_rng_state_in_one_line(tmp_path, capsys):
    train(tmp_path, "run", "--set", "epochs=1", "--set", "class_epoch=0")
    run = tmp_path / "run"
    (run / "summary.json").write_text("[1, 2]")  # not an object: neither finished nor diverged
    assert cli.main(RULE, ["--resume", str(run)]) == 2
    assert "summary.json: the top level must be a JSON object" in error_line(capsys)
    for hand_edited in ({"resumed_with": 3}, {"diverged": "at epoch 2"}):  # what --set would append to
        (run / "summary.json").write_text(json.dumps({"status": "diverged", **hand_edited}))
        assert cli.main(RULE, ["--resume", str(run), "--set", "lr=[0.1]"]) == 2
        assert f"{run}/summary.json is damaged" in error_line(capsys)
    (run / "summary.json").unlink()
    rows = (run / "results.csv").read_bytes()
    for damage in (b"foo,bar\n1,2\n", b"epoch,loss\nabc,1\n", b"\xff\xfe\x00"):
        (run / "results.csv").write_bytes(damage)
        assert cli.main(RULE, ["--resume", str(run)]) == 2
        assert error_line(capsys).startswith(f"error: {run}/results.csv: damaged (")
        assert (run / "results.csv").read_bytes() == damage  # left as it was
    (run / "results.csv").write_bytes(rows)
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    torch.save({**state, "rng": {"cpu": torch.zeros(3)}}, run / "checkpoint.pt")  # a float tensor: refused by torch
    assert cli.main(RULE, ["--resume", str(run)]) == 2
    assert "does not fit this config's network" in error_line(capsys)


@pytest.mark.parametrize("setting, problem", [
    ("seed=1e30", "config key 'seed'"),
    ("pool_padding=5", "config key 'pool_padding': 5 is more than half of pool_size 4"),
])
def test_impossible_settings_are_refused_before_any_folder(tmp_path, capsys, setting, problem):
    cnn = ["--json_path", str(REPO / "configFile/unsupervised_bp/cnn/mnist"), "--set", "device=-1"]
    assert cli.main(RULE, [*cnn, "--set", setting, "--out", str(tmp_path / "run")]) == 2
    assert problem in error_line(capsys)
    assert not (tmp_path / "run").exists()


def test_seeds_past_the_largest_seed_are_refused_before_the_first(tmp_path, capsys):
    argv = ["--json_path", str(REPO / "configFile/quickstart"), *SMALL, "--out", str(tmp_path / "seeds")]
    assert cli.main(RULE, [*argv, "--set", f"seed={config_mod.SEED_MAX}", "--seeds", "2"]) == 2
    assert f"its last seed, {config_mod.SEED_MAX + 1}, is above the largest" in error_line(capsys)
    assert not (tmp_path / "seeds").exists()


def test_linear_classifier_that_diverges_ends_the_run_as_diverged_and_resumes_with_a_lower_class_lr(
        tmp_path, capsys, monkeypatch):
    """A run whose classifier's loss is not finite is not 'finished' at chance: summary.json says diverged, and
    --resume --set class_lr redoes the classifier alone from the network's last checkpoint. (With the bounded
    read-out activations no rate makes that loss NaN here: the classifier is made to return one.)"""
    real = loop.association.train_linear_classifier

    def nan_above_one(*args, lr, **kwargs):
        rows = real(*args, lr=lr, **kwargs)
        return [{**r, "test_loss": float("nan")} for r in rows] if lr > 1 else rows
    monkeypatch.setattr(loop.association, "train_linear_classifier", nan_above_one)
    run = tmp_path / "run"
    argv = ["--json_path", str(REPO / "configFile/quickstart"), *SMALL, "--set", "epochs=1", "--out", str(run)]
    assert cli.main(RULE, [*argv, "--set", "class_lr=[5]"]) == cli.DIVERGED_EXIT
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line == ("diverged: the linear classifier's test loss is nan at its epoch 1, once the network's "
                    "training had ended; the learning rate is the likely cause (class_lr 5 in that epoch). Lower it "
                    "and continue with the network as trained (only the linear classifier is redone): "
                    f"{RULE.command} --resume {run} --set class_lr=[...] (a tenth: [0.5])")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["diverged"]["last_good_epoch"] == 1
    assert summary["metrics"]["epoch"] == 1 and summary["accuracy_percent"] == {}
    assert cli.main(RULE, ["--resume", str(run), "--set", "class_lr=[0.1]"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["accuracy_percent"]["linear_classifier"] > 50
    rows = read_csv(run / "results.csv")
    assert len(rows) == 1  # the network was not trained again, and its last row is the summary's
    assert summary["metrics"]["loss"] == pytest.approx(float(rows[0]["loss"]))


def test_network_outputs_that_are_not_finite_end_the_run_as_diverged_not_finished(tmp_path, capsys):
    """Krotov's read-out raised to the power 300 overflows: before, the classifier trained on inf and the run
    ended 'finished' at chance."""
    from hebb.main import RULE as HEBB
    run = tmp_path / "run"
    assert cli.main(HEBB, ["--json_path", str(REPO / "configFile/unsupervised_hebb/krotov"), "--set", "device=-1",
                           "--set", "dataset=digits", "--set", "fcLayers=[64,20]", "--set", "epochs=1",
                           "--set", "class_epoch=2", "--set", "readout_power=300", "--out", str(run)]) == 3
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "diverged: the network's outputs (the linear classifier's inputs) are not finite, once the network's "
        "training had ended; a setting that scales them is the likely cause, not a learning rate.")
    assert json.loads((run / "summary.json").read_text())["status"] == "diverged"
    assert not (run / "classifier.csv").exists()


def test_summary_records_the_labeled_subset_used_for_association(tmp_path):
    summary = train(tmp_path, "share", "--set", "epochs=0", "--set", "class_label_percentage=0.1")
    labels = summary["association_labels"]
    assert labels["size"] == sum(max(1, math.floor(0.1 * n + 0.5)) for n in label_counts())  # 10% of each class
    again = train(tmp_path, "share_again", "--set", "epochs=0", "--set", "class_label_percentage=0.1")
    assert again["association_labels"] == labels  # same seed, same labels


def test_summary_names_the_code_version_the_run_started_with(tmp_path, monkeypatch):
    versions = iter(["abc1234", "later99"])
    monkeypatch.setattr(results, "code_version", lambda: next(versions))
    assert train(tmp_path, "versioned", "--set", "epochs=0", "--set", "class_epoch=0")["code_version"] == "abc1234"


def test_code_version_is_dirty_only_when_python_code_changed(tmp_path):
    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "rule.py").write_text("x = 1\n")
    (tmp_path / "table.md").write_text("| a |\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "first")
    commit = results.code_version(tmp_path)
    assert len(commit) >= 7 and "+" not in commit
    (tmp_path / "table.md").write_text("| b |\n")  # a regenerated table: still the commit's code
    (tmp_path / "new.py").write_text("y = 2\n")  # untracked: not part of the code that runs from the package
    assert results.code_version(tmp_path) == commit
    (tmp_path / "pkg" / "rule.py").write_text("x = 2\n")
    assert results.code_version(tmp_path) == commit + "+dirty"


def test_seeds_refuse_a_root_folder_that_is_not_empty_before_training_any_seed(tmp_path, capsys):
    root = tmp_path / "seeds"
    (root / "S-1").mkdir(parents=True)
    code = cli.main(RULE, ["--json_path", str(REPO / "configFile/quickstart"), *SMALL, "--set", "seed=0",
                           "--out", str(root), "--seeds", "2"])
    assert code == 2 and "not an empty folder" in error_line(capsys)
    assert [p.name for p in root.iterdir()] == ["S-1"]  # no S-0 trained before the refusal


def test_curves_are_read_from_results_csv_and_plotted(tmp_path):
    from funcs import plots
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.csv").write_text("epoch,loss,error_mean,error_max,seconds\n1,0.5,0.2,0.3,1.0\n2,0.25,0.1,0.4,1.0\n")
    (run / "classifier.csv").write_text("epoch,lr,train_error,test_error,test_loss\n1,0.1,0.2,0.05,0.3\n")
    series = plots.curves(run)
    assert series["epoch"].tolist() == [1, 2] and series["loss"].tolist() == [0.5, 0.25]
    assert series["direct association (mean)"].tolist() == pytest.approx([80.0, 90.0])
    assert series["direct association (max)"].tolist() == pytest.approx([70.0, 60.0])
    assert plots.final_classifier_accuracy(run) == pytest.approx(95.0)
    assert plots.plot_run(run).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    other = tmp_path / "other"
    other.mkdir()
    (other / "results.csv").write_text("epoch,loss,error_mean,error_max,seconds\n1,0.4,0.3,0.3,1.0\n")
    assert plots.plot_seeds(tmp_path, [run, other]).name == "curves.png"  # the shorter run sets the epochs


@pytest.mark.parametrize("name, content", [
    ("results.csv", b"foo,bar\n1,2\n"), ("results.csv", b"epoch,loss\n1,abc\n"), ("results.csv", b"\xff\xfe\x00"),
    ("classifier.csv", b"epoch,test_error\n1,zz\n"),
])
def test_plots_refuse_a_damaged_csv_in_one_line_naming_it(tmp_path, capsys, name, content):
    from funcs import plots
    (tmp_path / "results.csv").write_text("epoch,loss,error_mean\n1,0.5,0.2\n")
    (tmp_path / name).write_bytes(content)
    assert plots.main([str(tmp_path)]) == 2
    assert error_line(capsys).startswith(f"error: {tmp_path / name}: damaged (")
    assert not (tmp_path / "curves.png").exists()


def test_plots_refuse_an_output_they_cannot_write_in_one_line(tmp_path, capsys):
    from funcs import plots
    (tmp_path / "results.csv").write_text("epoch,loss,update_size_1\n1,0.5,0.01\n")
    (tmp_path / "file").write_text("")
    for out in (tmp_path / "file" / "x.png", tmp_path / "x.txt", tmp_path):
        assert plots.main(["--update-sizes", str(out), str(tmp_path)]) == 2
        assert error_line(capsys).startswith(f"error: {out}: the figure cannot be written there (")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "results.csv"]
    (tmp_path / "results.csv").write_text("epoch,loss,update_size_x\n1,0.5,0.01\n")
    assert plots.main(["--update-sizes", str(tmp_path / "x.png"), str(tmp_path)]) == 2
    assert "a column update_size_<layer> names no layer number" in error_line(capsys)


def test_keys_added_to_the_code_after_a_run_started_count_as_their_defaults_on_resume():
    """A checkpoint written before a key existed resumes, unless the config now sets that key otherwise."""
    cfg = config_mod.load(REPO / "configFile/quickstart")
    saved = cfg.to_json()
    del saved["hflip"]
    assert results.config_changes(saved, cfg) == []
    # written before the rule seam: every rule's keys (EP's at their defaults) and no `rule`
    older = {**saved, "dt": 0.2, "T": 40, "compile": False, "dropout": True}
    del older["rule"]
    assert results.config_changes(older, cfg) == []
    assert results.config_changes(saved, config_mod.replace(cfg, hflip=True)) == ["hflip"]
    assert results.config_changes({**saved, "gamma": 0.25}, cfg) == ["gamma"]


# --- a diverging run ------------------------------------------------------------------------------

def test_diverging_run_stops_with_exit_3_one_line_and_a_summary_then_resumes_with_a_lower_rate(tmp_path, dataset):
    """The issue's command (a linear network at lr 1e30) in a fresh process: batch 1's loss is finite (computed
    before any step), its step overflows the weights, so batch 2's loss is the first that is not finite."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "bp.main", "--json_path", "configFile/quickstart", "--set",
           'activation_function=["x","x"]', "--set", "lr=[1e30]", *DATASET_ARGS[dataset], "--set", "class_epoch=2"]
    if dataset == "mnist":
        cmd += ["--set", "train_size=1000"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([*cmd, "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == cli.DIVERGED_EXIT == 3
    lines = [line for line in proc.stderr.splitlines() if "diverged" in line]
    assert len(lines) == 1 and "diverged:" not in proc.stdout
    assert lines[0].startswith("diverged: loss ") and " at epoch 1, batch 2 of " in lines[0]
    assert "the learning rate is the likely cause (lr [1e+30] in this epoch)" in lines[0]
    assert f"--resume {out} --set lr=" in lines[0] and "no epoch finished" in lines[0]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["accuracy_percent"] == {}
    assert (summary["diverged"]["epoch"], summary["diverged"]["batch"], summary["diverged"]["last_good_epoch"]) == \
        (1, 2, 0)
    assert not (out / "checkpoint.pt").exists() and not (out / "results.csv").exists()  # no epoch was good
    assert lines[0] in (out / "run.log").read_text()

    proc = subprocess.run([sys.executable, "-m", "bp.main", "--resume", str(out), "--set", "lr=[8]"], cwd=REPO,
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["accuracy_percent"]["linear_classifier"] > 10
    assert summary["resumed_with"] == [{"after_epoch": 0, "changed": {"lr": {"was": [1e30], "now": [8.0]}}}]
    assert json.loads((out / "config.json").read_text())["lr"] == [8.0]
    assert "resumed with lr [8.0] (was [1e+30])" in (out / "run.log").read_text()
    assert [int(r["epoch"]) for r in read_csv(out / "results.csv")] == [1, 2, 3]


def test_run_diverging_in_epoch_2_keeps_epoch_1_and_resumed_with_a_sane_schedule_ends_as_a_straight_run(
        tmp_path, capsys):
    """lr_end_factor 1e30 leaves epoch 1 at factor 1 and multiplies epoch 2's rate by 3.3e29: epoch 1's
    checkpoint is kept, and continuing it with the paper's factor gives, number for number, the run that had
    that factor from the start (the checkpoint holds the random states)."""
    linear = ["--set", 'activation_function=["x","x"]', "--set", "lr=[0.01]", "--set", "class_epoch=2"]
    args = ["--json_path", str(REPO / "configFile/quickstart"), *SMALL, *linear]
    run, straight = tmp_path / "run", tmp_path / "straight"
    assert cli.main(RULE, [*args, "--set", "lr_end_factor=1e30", "--out", str(run)]) == 3
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert " at epoch 2, batch " in line and "lr [0.01] x 3.33e+29 from the schedule" in line
    assert "continue from epoch 1 (its checkpoint is kept)" in line
    assert torch.load(run / "checkpoint.pt", weights_only=True)["epoch"] == 1
    assert [int(r["epoch"]) for r in read_csv(run / "results.csv")] == [1]

    assert cli.main(RULE, ["--resume", str(run), "--set", "fcLayers=[784,30]"]) == 2
    assert "fcLayers cannot change in a resumed run" in error_line(capsys)
    assert cli.main(RULE, ["--resume", str(run), "--set", "lr_end_factor=0.0005"]) == 0
    assert cli.main(RULE, [*args, "--out", str(straight)]) == 0
    resumed, expected = read_csv(run / "results.csv"), read_csv(straight / "results.csv")
    assert [(r["epoch"], r["loss"], r["error_mean"]) for r in resumed] == \
        [(r["epoch"], r["loss"], r["error_mean"]) for r in expected]
    assert json.loads((run / "summary.json").read_text())["accuracy_percent"] == \
        json.loads((straight / "summary.json").read_text())["accuracy_percent"]


def test_restore_takes_the_configured_rates_from_the_config_and_the_moments_from_the_checkpoint():
    """Adam keeps its rates in the optimizer's state: a checkpoint of lr 5 loaded into a learner built with lr 0.5
    goes on at 0.5 (x the schedule), with the checkpoint's moment estimates."""
    from funcs.target import Target
    cfg = config_mod.load(REPO / "configFile/quickstart", ["fcLayers=[784,20]", "optimizer=\"Adam\"", "lr=[5]"])
    torch.manual_seed(0)
    before = RULE.build(cfg, torch.device("cpu"))
    target = Target.from_config(cfg)
    x = torch.rand(8, 784)
    out, mask = before.output(x)
    before.learn(target(out, torch.zeros(8, dtype=torch.long), mask))
    state = {"learner": before.state_dict(), "target": target.state_dict(), "rng": loop.rng_states(x.device),
             "epoch": 1}
    lower = config_mod.replace(cfg, lr=[0.5])
    after = RULE.build(lower, torch.device("cpu"))
    assert loop.restore(state, after, Target.from_config(lower), x.device) == 1
    after.set_lr_factor(0.5)
    assert [g["lr"] for g in after.optimizer.param_groups] == [0.25]
    moments = [s["exp_avg"] for s in after.optimizer.state.values()]
    assert moments and all(torch.equal(a, b["exp_avg"]) for a, b in
                           zip(moments, before.optimizer.state_dict()["state"].values()))


# --- what training needs ---------------------------------------------------------------------------

OPTIONAL = ("optuna", "sklearn", "umap", "numba", "matplotlib", "scipy", "nbclient", "nbformat", "ipykernel",
            "IPython", "sqlalchemy", "psycopg2")  # requirements-{search,figures,datasets,test}.txt


def test_training_runs_with_the_core_requirements_alone_and_says_curves_are_not_drawn(tmp_path, dataset):
    """Each optional package made unimportable (None in sys.modules: `import` fails, find_spec says absent), as in
    a venv of requirements.txt alone: BP and EP train and read out; curves.png is skipped in one line."""
    blocked = [m for m in OPTIONAL if not (dataset == "digits" and m in ("sklearn", "scipy"))]  # digits: sklearn's
    for rule in ("bp", "ep"):
        out = tmp_path / rule
        argv = ["--json_path", f"configFile/{'quickstart' if rule == 'bp' else 'quickstart_ep'}", *SMALL,
                "--set", "epochs=1", "--set", "class_epoch=1", "--out", str(out)]
        script = (f"import sys\nfor m in {blocked!r}: sys.modules[m] = None\n"
                  f"from {rule}.main import RULE\nfrom funcs import cli\nsys.exit(cli.main(RULE, {argv!r}))")
        proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=600,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
        assert proc.returncode == 0, proc.stderr
        summary = json.loads((out / "summary.json").read_text())
        assert set(summary["accuracy_percent"]) == {"direct_association_mean", "direct_association_max",
                                                    "linear_classifier"}
        assert not (out / "curves.png").exists()
        assert proc.stdout.count("curves.png not drawn: matplotlib is not installed") == 1
        assert "curves.png not drawn" in (out / "run.log").read_text()


# --- progress --------------------------------------------------------------------------------------

def test_long_epochs_print_a_line_a_minute_with_the_batches_done(tmp_path, monkeypatch, capsys):
    """Not a terminal, the loop's check every 30 s and one line a minute made immediate: one line per check,
    i.e. per mini-batch but the last (the epoch's own line follows it), counting 1 .. n-1 of n = ceil(size/16)."""
    monkeypatch.setattr(loop, "CHECK_SECONDS", -1.0)
    monkeypatch.setattr(results.Progress, "LINE_SECONDS", -1.0)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    out = tmp_path / "run"
    assert cli.main(RULE, ["--json_path", str(REPO / "configFile/quickstart"), *SMALL, "--set", "epochs=2",
                           "--set", "class_epoch=0", "--out", str(out)]) == 0
    n = -(-sum(label_counts()) // 16)  # mini-batches of 16 (the quickstart's batchSize)
    lines = re.findall(r"^epoch (\d)/2: (\d+) of (\d+) batches \(\d+\.\d min so far\)$", capsys.readouterr().out,
                       re.M)
    assert lines == [(str(e), str(b), str(n)) for e in (1, 2) for b in range(1, n)]
    assert "batches" not in (out / "run.log").read_text()  # progress, not a result


def test_progress_prints_a_line_a_minute_off_a_terminal_and_draws_a_bar_on_one(monkeypatch, capsys):
    clock = itertools.chain([0.0, 30.0, 61.0, 70.0, 200.0], itertools.count(300.0))
    monkeypatch.setattr(results.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    lines = []
    progress = results.Progress(3, 0, "epoch", desc="classifier", say=lines.append)  # started at 0 s
    progress.within(10, 100)  # 30 s: under a minute since the start, no line
    progress.within(20, 100)  # 61 s: a line
    assert progress.step() == 70.0  # 70 s: the step took 70 s; the caller prints its line
    progress.within(5, 100)  # 200 s: 130 s after the last line
    assert lines == ["classifier epoch 1/3: 20 of 100 batches (1.0 min so far)",
                     "classifier epoch 2/3: 5 of 100 batches (2.2 min so far)"]
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    bar = results.Progress(2, 0, "epoch", desc="classifier", say=lines.append)
    bar.step({"acc_test": "90.00%"})
    bar.close()
    assert len(lines) == 2 and "classifier:  50%" in capsys.readouterr().err


def test_classifier_epochs_on_a_terminal_go_to_run_log_and_the_bar_not_to_stdout(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    out = tmp_path / "run"
    assert cli.main(RULE, ["--json_path", str(REPO / "configFile/quickstart"), *SMALL, "--set", "epochs=1",
                           "--out", str(out)]) == 0
    captured = capsys.readouterr()
    log = (out / "run.log").read_text()
    assert [f"classifier epoch {e}/3" in log for e in (1, 2, 3)] == [True] * 3
    assert "classifier epoch" not in captured.out and "classifier: 100%" in captured.err
    assert "epoch 1  loss" in captured.out  # a training epoch's line is printed above the bar, as before
