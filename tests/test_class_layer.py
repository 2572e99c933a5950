"""Action train_class_layer: a trained (or untrained) network read out by both association methods, no training."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from bp.main import RULE as BP
from ep.main import RULE as EP
from funcs import cli
from tests.conftest import INPUT_SIZE
from tests.test_training import dataset  # noqa: F401 (the fixture that fills SMALL)
from tests.test_training import REPO, SMALL, error_line, read_csv, train

ASSOCIATION = ("direct_association_mean", "direct_association_max")


def read_out(tmp_path: Path, name: str, rule=BP, *args: str) -> dict:
    out = tmp_path / name
    assert cli.main(rule, [*args, "--out", str(out)]) == 0
    return json.loads((out / "summary.json").read_text())


def test_reading_out_a_finished_run_gives_its_last_epochs_association(tmp_path):
    """Same seed, same share of labels: the numbers of the trained run's last row, from its saved weights."""
    trained = train(tmp_path, "trained", "--set", "epochs=2")
    last = read_csv(tmp_path / "trained/results.csv")[-1]
    summary = read_out(tmp_path, "readout", BP, "--trained_path", str(tmp_path / "trained"), "--set", "class_epoch=1")
    saved = json.loads((tmp_path / "readout/config.json").read_text())
    assert (saved["action"], saved["epochs"], saved["trained_path"]) == ("train_class_layer", 0,
                                                                        str(tmp_path / "trained"))
    assert summary["metrics"]["error_mean"] == pytest.approx(float(last["error_mean"]), abs=1e-7)
    assert summary["metrics"]["error_max"] == pytest.approx(float(last["error_max"]), abs=1e-7)
    assert [summary["accuracy_percent"][k] for k in ASSOCIATION] == [trained["accuracy_percent"][k]
                                                                      for k in ASSOCIATION]
    assert not (tmp_path / "readout/results.csv").exists()  # nothing trained
    read = summary["trained_network"]  # which state of the trained run was read
    assert (read["epochs_done"], read["weights"]) == (2, "model_state_dict.pt")
    assert read["weights_sha256"] == hashlib.sha256((tmp_path / "trained/model_state_dict.pt").read_bytes()).hexdigest()
    assert len(read_csv(tmp_path / "readout/classifier.csv")) == 1


def test_a_smaller_share_of_labels_uses_that_many_labeled_examples(tmp_path):
    train(tmp_path, "trained", "--set", "epochs=1")
    summary = read_out(tmp_path, "readout", BP, "--trained_path", str(tmp_path / "trained"),
                       "--set", "class_label_percentage=0.1", "--set", "class_epoch=1")
    n_train = json.loads((tmp_path / "trained/summary.json").read_text())["association_labels"]["size"]
    assert summary["association_labels"]["size"] == pytest.approx(n_train / 10, abs=5)  # rounded per class


def test_without_trained_path_it_reads_out_the_untrained_network_of_the_config(tmp_path):
    """The paper's baseline: the same numbers as a run of 0 epochs (same seed, same initial weights)."""
    untrained = train(tmp_path, "untrained", "--set", "epochs=0")
    summary = train(tmp_path, "readout", "--set", 'action="train_class_layer"')
    assert summary["metrics"]["error_mean"] == pytest.approx(untrained["metrics"]["error_mean"], abs=1e-7)
    assert summary["metrics"]["error_max"] == pytest.approx(untrained["metrics"]["error_max"], abs=1e-7)


def test_an_ep_run_is_read_out_by_ep_main_and_refused_by_bp_main(dataset, tmp_path, capsys):
    n_in = INPUT_SIZE[dataset]  # the BP tests' data, on a small EP network
    args = ["--json_path", str(REPO / "configFile/quickstart_ep"), *SMALL, "--set", f"fcLayers=[{n_in},100]",
            "--set", "epochs=1", "--set", "T=10", "--set", "Kmax=4"]
    assert cli.main(EP, [*args, "--out", str(tmp_path / "trained")]) == 0
    last = read_csv(tmp_path / "trained/results.csv")[-1]
    summary = read_out(tmp_path, "readout", EP, "--trained_path", str(tmp_path / "trained"))
    assert summary["metrics"]["error_mean"] == pytest.approx(float(last["error_mean"]), abs=1e-7)
    assert cli.main(BP, ["--trained_path", str(tmp_path / "trained"), "--out", str(tmp_path / "bp")]) == 2
    assert "of a ep network is run by python -m ep.main, not python -m bp.main" in error_line(capsys)
    assert not (tmp_path / "bp").exists()


@pytest.mark.parametrize("problem, message", [
    ("other_network", "was trained with fcLayers [784, 500], this config has [784, 300]"),
    ("no_weights", "holds no trained network"),
    ("corrupt_weights", "cannot be read"),
    ("not_a_run", "no config.json there"),
    ("malformed_config", "malformed JSON at line 1"),
    ("training_action", "config key 'trained_path': only the action train_class_layer reads out"),
])
def test_bad_trained_paths_are_one_line_errors_before_any_folder(tmp_path, capsys, problem, message):
    run = tmp_path / "trained"
    run.mkdir()
    (run / "config.json").write_text((REPO / "configFile/quickstart/config.json").read_text())
    torch.save({"not": torch.zeros(1)}, run / "model_state_dict.pt")
    args = ["--trained_path", str(run), *SMALL]
    if problem == "other_network":  # MNIST's input size whatever SMALL's data: the mismatch is the hidden layer
        args = ["--trained_path", str(run), "--set", "fcLayers=[784,300]"]
    elif problem == "no_weights":
        (run / "model_state_dict.pt").unlink()
    elif problem == "corrupt_weights":
        (run / "model_state_dict.pt").write_bytes(b"not a torch file")
    elif problem == "not_a_run":
        (run / "config.json").unlink()
    elif problem == "malformed_config":
        (run / "config.json").write_text("{,}")
    else:
        args = ["--json_path", str(REPO / "configFile/quickstart"), "--set", f'trained_path="{run}"']
    assert cli.main(BP, [*args, "--out", str(tmp_path / "out")]) == 2
    assert message in error_line(capsys)
    assert not (tmp_path / "out").exists()


def test_weights_that_do_not_fit_the_network_are_refused(tmp_path, capsys):
    train(tmp_path, "trained", "--set", "epochs=1")
    torch.save({"not": torch.zeros(1)}, tmp_path / "trained/model_state_dict.pt")
    assert cli.main(BP, ["--trained_path", str(tmp_path / "trained"), "--out", str(tmp_path / "out")]) == 2
    assert "do not fit this config's network" in error_line(capsys)


def test_a_phase_two_run_is_read_out_without_its_phase_one_path_and_epochs_are_zero(tmp_path, capsys):
    """--trained_path takes the trained run's config minus where it came from (out_dir, pretrained_path)."""
    run = tmp_path / "semi"
    run.mkdir()
    saved = json.loads((REPO / "configFile/semi_bp/100/config.json").read_text())
    (run / "config.json").write_text(json.dumps({**saved, "pretrained_path": "elsewhere", "out_dir": str(run)}))
    assert cli.main(BP, ["--trained_path", str(run), "--set", "epochs=5", "--dry-run"]) == 0
    out, err = capsys.readouterr()
    resolved = json.loads(out)
    assert (resolved["action"], resolved["pretrained_path"], resolved["out_dir"], resolved["epochs"]) == \
        ("train_class_layer", None, None, 0)
    assert "epochs 5 is taken as 0" in err
