"""Training through the real entry point on real MNIST subsets: end to end, resume, seeds, baselines.

Where MNIST cannot be provisioned (no mirror, no npm), the tests fall back to
scikit-learn's bundled 8x8 digits and say so in a warning, with thresholds
watched on that dataset.
"""
from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bp.main import RULE
from funcs import cli
from funcs import config as config_mod
from funcs import results

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("UT_DATA_DIR", REPO / "data"))

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
    assert a != b  # different seeds, different runs
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


def test_resume_refuses_non_runs_corrupt_checkpoints_changed_configs_and_overrides(tmp_path, capsys):
    assert cli.main(RULE, ["--resume", str(tmp_path)]) == 2
    assert "no config.json" in error_line(capsys)

    train(tmp_path, "run", "--set", "epochs=1", "--set", "class_epoch=0")
    run = tmp_path / "run"
    assert cli.main(RULE, ["--resume", str(run)]) == 2
    assert "this run has finished" in error_line(capsys)
    (run / "summary.json").unlink()  # as if it had been stopped before its end
    assert cli.main(RULE, ["--resume", str(run), "--set", "epochs=2"]) == 2
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
