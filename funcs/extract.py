"""Small arrays that figures 6, 10 and 11 need, extracted from a trained run's model and written beside it.

The network is built from the run's own config.json by the learner factory of
the run's rule (funcs.rules, by the config's `rule`) and loaded with the run's weights
(`results.read_trained`: `model_state_dict.pt` or the half-precision copy of
simuResults/), or with a semi-supervised run's phase-1 network (`semi.PRETRAINED`).
Each file is an NPZ well under 1 MB, so it is committed where the model (5+ MB)
is not, and written to a temporary file first, so that an interrupted extraction
leaves no truncated NPZ behind:

- `max_activation.npz` (Figure 6): for the two most responsive output neurons
  of each class, the input in [0, 1] that maximises the neuron's drive, found
  by projected gradient ascent (Erhan et al. 2009, paper section 3.2);
- `first_layer_weights.npz` (Figure 11): the first layer's weights of 20
  neurons drawn at random (seeded);
- `umap.npz` / `umap_pretrained.npz` (Figure 10): the 2-D UMAP embedding
  (umap-learn, as the paper) of the network's outputs on the test set.

    python -m funcs.figures extract max_activation simuResults/unsupervised_bp_1layer --data_dir data
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from funcs import association
from funcs import cli
from funcs import config as config_mod
from funcs import rules
from funcs import data as data_mod
from funcs import results, semi
from funcs.errors import UserError
from funcs.loop import load_model, outputs

N_PER_CLASS = 2  # Figure 6: the two most responsive output neurons per class
N_WEIGHTS = 20  # Figure 11: 20 neurons
PICK_SEED = 0  # which 20 neurons Figure 11 shows
# Gradient ascent of Figure 6: Adam steps on the input, projected back onto [0, 1] after each.
ASCENT_STEPS, ASCENT_LR, ASCENT_SEED = 500, 0.05, 0


def run_folder(folder: Path) -> Path:
    """A run folder, or the first seed's folder of a `--seeds` root."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        seeds = sorted(folder.glob("S-*/config.json"))
        if not seeds:
            raise UserError(f"{folder}: no config.json there; is it a run folder?")
        folder = seeds[0].parent
    return folder


def load_config(folder: Path, data_dir: str | None = None):
    """The run's Config, with the data looked for in data_dir if given."""
    cfg = config_mod.load(folder / "config.json")
    return config_mod.replace(cfg, data_dir=data_dir) if data_dir else cfg


def load_learner(rule: rules.Rule, folder: Path, cfg, pretrained: bool = False):
    """The run's learner, built by its rule on the CPU, holding the run's trained weights in float32.

    rule: the run's learning rule (funcs.rules); pretrained: the
    phase-1 network of a semi-supervised run instead of its final one.
    """
    if pretrained:
        if not (folder / semi.PRETRAINED).is_file():
            raise UserError(f"{folder}: no {semi.PRETRAINED} (the phase-1 network of a semi-supervised run) there")
        # this run's own phase-1 network, read and checked as a run reusing it would
        state = semi.load_pretrained(config_mod.replace(cfg, pretrained_path=str(folder)))["model"]
    else:
        state = results.read_trained(folder)[1]
    learner = rule.build(cfg, torch.device("cpu"))
    load_model(learner, state, f"{folder}")
    return learner


def save_npz(path: Path, **arrays) -> Path:
    """np.savez_compressed through results.atomic_write: never a truncated file."""
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez_compressed would append .npz to a name
            np.savez_compressed(f, **arrays)
    results.atomic_write(path, write)
    return path


def most_responsive(train_out: torch.Tensor, labels: torch.Tensor, n_class: int, per_class: int = N_PER_CLASS):
    """The `per_class` output neurons with the highest mean response to each class, as in direct association.

    Among the neurons direct association gives to class c, those with the
    highest mean response to c; where fewer are given, the next by that mean.
    Returns (neurons, classes), each (n_class * per_class,).
    """
    means = association.class_mean_responses(train_out, labels, n_class)  # (n_class, n_out)
    owner = association.direct_association(train_out, labels, n_class)
    neurons, classes, taken = [], [], set()
    for c in range(n_class):
        own = (owner == c).to(means.dtype)
        order = torch.argsort(means[c] + own * (means[c].abs().max() + 1), descending=True).tolist()
        picked = [n for n in order if n not in taken][:per_class]
        taken.update(picked)
        neurons += picked
        classes += [c] * len(picked)
    return torch.tensor(neurons), torch.tensor(classes)


def say(message: str) -> None:
    """A progress line on stderr (stdout holds the extracted file's path)."""
    print(message, file=sys.stderr, flush=True)


def maximize_inputs(drive: Callable[[torch.Tensor], torch.Tensor], neurons: torch.Tensor, shape,
                    steps: int = ASCENT_STEPS, lr: float = ASCENT_LR, seed: int = ASCENT_SEED,
                    progress: results.Progress | None = None):
    """For each neuron, the input in [0, 1]^shape that maximises drive(x)[neuron]: projected gradient ascent.

    drive: a differentiable map from inputs (n, *shape) to (n, n_out); one input
    per neuron is optimised, all at once, from a seeded uniform start; after
    every Adam step the input is clipped back onto [0, 1]. Returns the inputs
    (n, *shape) and each neuron's final drive. progress: stepped once per ascent step.
    """
    x = torch.rand(len(neurons), *shape, generator=torch.Generator().manual_seed(seed)).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    rows = torch.arange(len(neurons))
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        (-drive(x)[rows, neurons].sum()).backward()
        opt.step()
        with torch.no_grad():
            x.clamp_(0, 1)
        if progress is not None:
            progress.step()
    with torch.no_grad():
        return x.detach(), drive(x)[rows, neurons]


def output_drive(learner) -> Callable[[torch.Tensor], torch.Tensor]:
    """x -> the output layer's drive, before the output activation (a hard sigmoid saturates at 1 and 0).

    Needs a learner whose `model.drive` is a forward pass differentiable in the
    input (a feed-forward network's); an output found by relaxation has none.
    The network is frozen (evaluation mode, no gradients for its weights).
    """
    model = getattr(learner, "model", None)
    if not callable(getattr(model, "drive", None)):
        raise UserError("maximum-activation images (the paper's Figure 6) need a network whose output drive is a "
                        "forward pass (`learner.model.drive`); this run's rule has none")
    model.eval().requires_grad_(False)
    return model.drive


def max_activation(rule: rules.Rule, folder: Path, data_dir: str | None = None) -> Path:
    """Figure 6's images for a trained run of a feed-forward network: `max_activation.npz` beside it."""
    folder = run_folder(folder)
    cfg = load_config(folder, data_dir)
    learner = load_learner(rule, folder, cfg)
    drive = output_drive(learner)
    data = cli.shrink(data_mod.load_dataset(cfg.dataset, cfg.data_dir), cfg)
    say(f"max_activation: outputs of {data.train.y.shape[0]} training images ({folder})")
    neurons, classes = most_responsive(outputs(learner, data.train.x, cfg.test_batchSize), data.train.y,
                                       cfg.n_class)
    before = [p.detach().clone() for p in learner.model.parameters()]
    say(f"max_activation: gradient ascent on {len(neurons)} inputs, {ASCENT_STEPS} steps")
    progress = results.Progress(ASCENT_STEPS, unit="step", desc="gradient ascent", say=say, minute_lines=True)
    try:
        images, drive = maximize_inputs(drive, neurons, data.shape, progress=progress)
    finally:
        progress.close()
    assert all(torch.equal(a, b) for a, b in zip(before, learner.model.parameters())), "weights moved"
    return save_npz(folder / "max_activation.npz", images=images.numpy().astype(np.float16),
                    neurons=neurons.numpy(), classes=classes.numpy(), drive=drive.numpy(), steps=ASCENT_STEPS,
                    lr=ASCENT_LR)


def first_layer_weights(rule: rules.Rule, folder: Path, n: int = N_WEIGHTS, seed: int = PICK_SEED) -> Path:
    """Figure 11: the first weight layer's rows of n neurons drawn at random (seeded): `first_layer_weights.npz`."""
    folder = run_folder(folder)
    cfg = load_config(folder)
    learner = load_learner(rule, folder, cfg)
    weight = next((p for p in learner.state_dict()["model"].values() if p.ndim == 2), None)
    if weight is None or cfg.cnn:
        raise UserError(f"{folder}: first-layer weights are drawn for fully connected networks only")
    neurons = torch.randperm(weight.shape[0], generator=torch.Generator().manual_seed(seed))[:n].sort().values
    return save_npz(folder / "first_layer_weights.npz", weights=weight[neurons].numpy().astype(np.float16),
                    neurons=neurons.numpy())


def umap_embedding(x: np.ndarray, seed: int = 0) -> np.ndarray:
    """The paper's 2-D UMAP (umap-learn, default settings, seeded)."""
    import umap
    return umap.UMAP(n_components=2, random_state=seed).fit_transform(x).astype(np.float32)


def umap_outputs(rule: rules.Rule, folder: Path, data_dir: str | None = None, pretrained: bool = False,
                 embed: Callable[[np.ndarray], np.ndarray] = umap_embedding) -> Path:
    """Figure 10: the test outputs of a (semi-supervised) network embedded in 2-D: `umap.npz` beside it.

    pretrained: the run's phase-1 network instead (`umap_pretrained.npz`);
    embed: the 2-D embedding (UMAP; the tests pass a cheaper one).
    """
    folder = run_folder(folder)
    cfg = load_config(folder, data_dir)
    learner = load_learner(rule, folder, cfg, pretrained)
    data = cli.shrink(data_mod.load_dataset(cfg.dataset, cfg.data_dir), cfg)
    say(f"umap: outputs of {data.test.y.shape[0]} test images ({folder})")
    out = outputs(learner, data.test.x, cfg.test_batchSize).numpy()
    say(f"umap: 2-D embedding of {out.shape[0]} x {out.shape[1]} outputs (no progress inside; minutes on a CPU)")
    tic = time.monotonic()
    embedding = embed(out)
    say(f"umap: embedded in {time.monotonic() - tic:.0f} s")
    return save_npz(folder / ("umap_pretrained.npz" if pretrained else "umap.npz"),
                    embedding=embedding.astype(np.float16), labels=data.test.y.numpy().astype(np.uint8))


def main(kind: str, folder: Path, data_dir: str | None = None, pretrained: bool = False) -> Path:
    """One extraction (kind: max_activation, weights, umap) from a run folder, by the rule its config names."""
    rule = rules.of(load_config(run_folder(folder)))
    if kind == "max_activation":
        return max_activation(rule, folder, data_dir)
    if kind == "weights":
        return first_layer_weights(rule, folder)
    return umap_outputs(rule, folder, data_dir, pretrained)
