"""The convolutional network from config: shapes, pruning that stays, the triangle WTA, flips, config errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bp.learner import BPLearner, build
from bp.main import RULE
from funcs.networks import CNN, PrunedConv2d
from funcs import cli
from funcs import extract
from funcs.activations import TriangleWTA
from funcs.dropout import Dropout
from funcs.config import from_dict
from funcs.errors import UserError
from funcs.loop import random_hflip
from tests.conftest import DATA_DIR

REPO = Path(__file__).resolve().parents[1]
MNIST_CNN = {"cnn": True, "dataset": "mnist", "C_list": [1, 32, 128], "pool_type": "av", "fcLayers": [300],
             "lr": [1e-3, 1e-3, 1e-3], "activation_function": ["x", "relu", "relu", "x"], "optimizer": "Adam",
             "dropProb": [0.2, 0.3], "cnn_prune": 0.3, "nudge": 1, "device": -1}


@pytest.mark.parametrize("dataset,shape,flat", [("mnist", (1, 28, 28), 128 * 7 * 7),
                                                 ("cifar10", (3, 32, 32), 128 * 8 * 8)])
def test_output_and_flattened_sizes_follow_the_input_shape(dataset, shape, flat):
    """28 -> conv5 pad2 -> 28 -> pool(4, 2, 1) -> 14 -> conv3 pad1 -> 14 -> pool -> 7 (32 -> 16 -> 8)."""
    cfg = from_dict({**MNIST_CNN, "dataset": dataset, "C_list": [shape[0], 32, 128]})
    model = build(cfg, torch.device("cpu")).model
    assert model.flat_size == flat
    assert model(torch.rand(4, *shape)).shape == (4, 300)


def test_two_fully_connected_layers_and_wta_activation():
    cfg = from_dict({**MNIST_CNN, "dataset": "cifar10", "C_list": [3, 8, 16], "fcLayers": [50, 10],
                     "lr": [1e-3] * 4, "activation_function": ["x", "wta", "wta", "relu", "x"],
                     "dropProb": [0.3, 0.5, 0.0]})
    model = build(cfg, torch.device("cpu")).model
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    assert sum(isinstance(m, TriangleWTA) for m in model.modules()) == 2
    assert sum(isinstance(m, Dropout) for m in model.modules()) == 2  # before each fc layer


def test_drive_is_the_output_before_its_activation_and_moves_no_weight():
    """Figure 6's gradient ascent: sigmoid(drive) is the output, and the gradient reaches the input only."""
    cfg = from_dict({**MNIST_CNN, "activation_function": ["x", "relu", "relu", "sigmoid"]})
    learner = build(cfg, torch.device("cpu"))
    model = learner.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    drive_of = extract.output_drive(learner)  # the extraction's own freezing, not the test's
    x = torch.rand(3, 1, 28, 28, requires_grad=True)
    drive = drive_of(x)
    assert torch.allclose(torch.sigmoid(drive), model(x))
    drive.sum().backward()
    assert x.grad.abs().sum() > 0 and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_pruned_weights_stay_pruned_through_adam_steps_and_save_load():
    torch.manual_seed(0)
    cfg = from_dict(MNIST_CNN)
    learner = build(cfg, torch.device("cpu"))
    convs = learner.model.convs
    for conv in convs:
        assert conv.prune_mask.mean().item() == pytest.approx(0.7, abs=0.01)
    x = torch.rand(8, 1, 28, 28)
    for _ in range(5):
        y, mask = learner.output(x)
        learner.learn(torch.rand_like(y))
    for conv in convs:
        effective = conv.weight * conv.prune_mask
        assert torch.equal(effective[conv.prune_mask == 0], torch.zeros(int((conv.prune_mask == 0).sum())))
        assert (effective[conv.prune_mask == 1] != 0).all()
    torch.manual_seed(1)  # another mask at initialisation: loading must bring the saved one back
    other = build(cfg, torch.device("cpu")).model
    assert not torch.equal(other.convs[0].prune_mask, convs[0].prune_mask)
    other.load_state_dict(learner.model.state_dict())
    assert torch.equal(other.convs[0].prune_mask, convs[0].prune_mask)
    learner.model.eval(), other.eval()
    assert torch.allclose(other(x), learner.model(x))


def test_pruned_convolution_equals_a_plain_one_with_zeroed_weights():
    torch.manual_seed(2)
    conv = PrunedConv2d(2, 3, 3, padding=1, prune=0.5)
    plain = torch.nn.Conv2d(2, 3, 3, padding=1)
    with torch.no_grad():
        plain.weight.copy_(conv.weight * conv.prune_mask)
        plain.bias.copy_(conv.bias)
    x = torch.rand(2, 2, 5, 5)
    assert torch.allclose(conv(x), plain(x), atol=1e-6)
    assert (conv.prune_mask == 0).sum().item() == round(0.5 * conv.weight.numel())


def test_triangle_wta_on_a_hand_computed_example():
    """Channel means over positions subtracted and rectified, then position means over channels."""
    x = torch.tensor([[[[1., 3.]], [[4., 0.]]]])  # (1, 2 channels, 1, 2 positions)
    # channel 0: mean 2 -> [-1, 1] -> [0, 1]; channel 1: mean 2 -> [2, -2] -> [2, 0]
    # position 0: [0, 2] mean 1 -> [-1, 1] -> [0, 1]; position 1: [1, 0] mean .5 -> [.5, -.5] -> [.5, 0]
    expected = torch.tensor([[[[0., 0.5]], [[1., 0.]]]])
    assert torch.equal(TriangleWTA()(x), expected)


def test_random_hflip_mirrors_about_half_of_the_images_and_nothing_else():
    torch.manual_seed(0)
    x = torch.rand(400, 3, 4, 5)
    out = random_hflip(x)
    mirrored = torch.tensor([torch.equal(o, i.flip(-1)) for o, i in zip(out, x)])
    same = torch.tensor([torch.equal(o, i) for o, i in zip(out, x)])
    assert (mirrored ^ same).all()
    assert 0.4 < mirrored.float().mean().item() < 0.6


@pytest.mark.parametrize("change,message", [
    ({"lr": [1e-3, 1e-3]}, "'lr': 2 rates given but the CNN has 2 convolutions and 1 fully connected"),
    ({"kernel_sizes": [5]}, "'kernel_sizes': 1 values for 2 convolutions"),
    ({"activation_function": ["x", "relu", "x"]}, "a CNN needs 4 names"),
    ({"dropProb": [0.2]}, "a CNN needs 2 values"),
    ({"action": "unsupervised_ep", "activation_function": "hardsigm"}, "the rule ep trains MLPs only"),
])
def test_cnn_config_errors(change, message):
    with pytest.raises(UserError, match=message):
        from_dict({**MNIST_CNN, **change})


@pytest.mark.parametrize("change,message", [
    ({"C_list": [3, 32, 128]}, "'C_list': 3 input channels, but mnist images have 1"),
    ({"kernel_sizes": [29, 3], "paddings": [0, 1]}, "shrinks to nothing"),
])
def test_cnn_shapes_are_checked_against_the_dataset_before_training(change, message, capsys):
    args = [x for k, v in {**MNIST_CNN, **change}.items() for x in ("--set", f"{k}={v!s}".replace("'", '"')
                                                                     .replace("True", "true"))]
    assert cli.main(RULE, [*args, "--dry-run"]) == 2
    assert message in capsys.readouterr().err


def test_bp_learner_trains_a_cnn_with_per_layer_rates():
    cfg = from_dict(MNIST_CNN)
    learner = build(cfg, torch.device("cpu"))
    assert isinstance(learner.model, CNN) and isinstance(learner, BPLearner)
    assert [g["lr"] for g in learner.optimizer.param_groups] == [1e-3, 1e-3, 1e-3]
    learner.set_lr_factor(0.5)
    assert [g["lr"] for g in learner.optimizer.param_groups] == [5e-4, 5e-4, 5e-4]


def test_cli_trains_a_small_unsupervised_cnn_on_mnist(dataset, tmp_path):
    """The real command line: the MNIST CNN preset made small (16 and 32 channels, 500 outputs), 2 epochs.

    Watched (seeds 1, 2, 3, 3,000 training and 1,000 test images): direct association 58.8 / 63.2 / 60.7 %;
    the same network untrained 15.2 %.
    """
    if dataset == "digits":
        pytest.skip("MNIST could not be provisioned (conftest's dataset fixture fell back to digits)")
    out = tmp_path / "run"
    overrides = [f"data_dir={DATA_DIR}", "device=-1", "train_size=3000", "test_size=1000", "C_list=[1,16,32]",
                 "fcLayers=[500]", "lr=[1e-4,1e-4,1e-3]", "epochs=2", "class_epoch=5", "test_batchSize=500"]
    proc = subprocess.run([sys.executable, "-m", "bp.main", "--json_path", "configFile/unsupervised_bp/cnn/mnist",
                           *[x for o in overrides for x in ("--set", o)], "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    acc = json.loads((out / "summary.json").read_text())["accuracy_percent"]
    assert acc["direct_association_mean"] > 45, acc
    state = torch.load(out / "model_state_dict.pt", weights_only=True)
    assert any(k.endswith("prune_mask") for k in state)  # the pruning is saved with the model
