"""Reading classes out of an unsupervised network: direct association and the linear classifier.

Neither touches the network's weights; both use a labeled share of the training
set (`class_label_percentage`) and are scored on the test set (paper section 2.3).
"""
from __future__ import annotations

import hashlib
import math

import torch
from torch import nn

from funcs.activations import ACTIVATIONS

UNASSIGNED = -1
# Label smoothing of the classifier's targets when `class_smooth` is on (original code: 0.2).
CLASSIFIER_SMOOTHING = 0.2


def class_mean_responses(outputs: torch.Tensor, labels: torch.Tensor, n_class: int) -> torch.Tensor:
    """Mean response of every output neuron to each class: (n_class, n_out)."""
    sums = torch.zeros(n_class, outputs.shape[1], device=outputs.device, dtype=outputs.dtype)
    sums.index_add_(0, labels, outputs)
    counts = torch.bincount(labels, minlength=n_class).to(outputs.dtype).unsqueeze(1)
    return sums / counts.clamp(min=1)


def direct_association(outputs: torch.Tensor, labels: torch.Tensor, n_class: int) -> torch.Tensor:
    """The class of each output neuron: the class it responds to most on average.

    Neurons that never responded (highest mean response 0) get UNASSIGNED, as
    in the original code. Returns (n_out,) int64.
    """
    means = class_mean_responses(outputs, labels, n_class)
    best, owner = means.max(dim=0)
    return torch.where(best > 0, owner, torch.full_like(owner, UNASSIGNED))


def predict_mean(outputs: torch.Tensor, owner: torch.Tensor, n_class: int) -> torch.Tensor:
    """Predict the class whose assigned neurons respond most on average; a class without neurons never wins."""
    onehot = (owner.unsqueeze(1) == torch.arange(n_class, device=owner.device)).to(outputs.dtype)  # (n_out, C)
    counts = onehot.sum(dim=0)
    score = (outputs @ onehot) / counts.clamp(min=1)
    score = torch.where(counts > 0, score, torch.full_like(score, -torch.inf))
    return score.argmax(dim=1)


def predict_max(outputs: torch.Tensor, owner: torch.Tensor) -> torch.Tensor:
    """Predict the class of the single most active assigned neuron (UNASSIGNED if no neuron is assigned)."""
    masked = torch.where(owner >= 0, outputs, torch.full_like(outputs, -torch.inf))
    return owner[masked.argmax(dim=1)]


def association_errors(train_out, train_labels, test_out, test_labels, n_class: int) -> dict[str, torch.Tensor]:
    """Test error of direct association (mean and max predictions), neurons assigned on the training outputs."""
    owner = direct_association(train_out, train_labels, n_class)
    return {
        "error_mean": (predict_mean(test_out, owner, n_class) != test_labels).float().mean(),
        "error_max": (predict_max(test_out, owner) != test_labels).float().mean(),
    }


# --- the linear classifier -------------------------------------------------------------

def classifier_lr_factor(schedule: str, epoch: int, epochs: int) -> float:
    """Learning-rate factor of the classifier at `epoch` (0-based).

    'exponential': x0.9 per epoch; 'linear': 1 down to 0.5 over the epochs;
    'step': halved at 20, 35, 50, 60, 70, 80 and 90% of the epochs; 'constant':
    1. Which one a run takes: funcs.loop.classifier_schedule (the paper's
    appendix and original code use the first two after an MLP, the third
    after a CNN; SoftHebb's published code the last two).
    """
    if schedule == "exponential":
        return 0.9 ** epoch
    if schedule == "linear":
        return 1 - 0.5 * min(epoch, epochs) / max(epochs, 1)
    if schedule == "step":
        steps = [int(epochs * r) for r in (0.2, 0.35, 0.5, 0.6, 0.7, 0.8, 0.9)]
        return 0.5 ** sum(epoch >= s for s in steps if s > 0)
    return 1.0


def train_linear_classifier(train_x, train_y, test_x, test_y, *, n_class: int, lr: float, epochs: int,
                            batch_size: int, dropout: float, activation: str, optimizer: str,
                            schedule: str, smooth_labels: bool, generator: torch.Generator | None = None,
                            on_epoch=None) -> list[dict]:
    """Train Dropout -> Linear(n_out, n_class) -> activation with cross-entropy on frozen features.

    The features (the frozen network's outputs) are computed once by the caller:
    the network does not change, so re-running it every classifier epoch (as
    the original code did) gives the same numbers for more time. Returns one row
    per epoch: its learning rate, train error, test error, test loss.
    """
    n_out = train_x.shape[1]
    model = nn.Sequential(nn.Dropout(dropout), nn.Linear(n_out, n_class), ACTIVATIONS[activation]())
    model.to(train_x.device)
    opt_cls = torch.optim.Adam if optimizer == "Adam" else torch.optim.SGD
    opt = opt_cls(model.parameters(), lr=lr)
    criterion = nn.CrossEntropyLoss(label_smoothing=CLASSIFIER_SMOOTHING if smooth_labels else 0.0)
    rows = []
    n = train_x.shape[0]
    for epoch in range(epochs):
        epoch_lr = lr * classifier_lr_factor(schedule, epoch, epochs)
        for group in opt.param_groups:
            group["lr"] = epoch_lr
        model.train()
        wrong = torch.zeros((), device=train_x.device)
        perm = torch.randperm(n, generator=generator).to(train_x.device)
        for start in range(0, n, batch_size):
            idx = perm[start:start + batch_size]
            out = model(train_x[idx])
            loss = criterion(out, train_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            wrong += (out.argmax(1) != train_y[idx]).sum()
        model.eval()
        with torch.no_grad():
            test_out = torch.cat([model(test_x[i:i + batch_size]) for i in range(0, test_x.shape[0], batch_size)])
            test_loss = nn.functional.cross_entropy(test_out, test_y)
            test_error = (test_out.argmax(1) != test_y).float().mean()
        row = {"epoch": epoch + 1, "lr": epoch_lr, "train_error": (wrong / n).item(),
               "test_error": test_error.item(), "test_loss": test_loss.item()}
        rows.append(row)
        if on_epoch is not None:
            on_epoch(row)
    return rows


def balanced_subset(labels: torch.Tensor, share: float, n_class: int, generator: torch.Generator) -> torch.Tensor:
    """Indices of a seeded, class-balanced share of a labeled set (each class keeps `share` of its examples).

    share == 1 keeps everything in the original order. Per class, round(share *
    count) examples, at least one, are drawn at random.
    """
    if share >= 1:
        return torch.arange(labels.shape[0])
    labels = labels.cpu()
    picked = []
    for c in range(n_class):
        members = (labels == c).nonzero(as_tuple=True)[0]
        take = max(1, math.floor(share * members.numel() + 0.5))
        picked.append(members[torch.randperm(members.numel(), generator=generator)[:take]])
    return torch.cat(picked).sort().values


def describe_subset(indices: torch.Tensor) -> dict:
    """Size and SHA-256 of a labeled subset's indices, so a run records exactly which labels it used."""
    raw = indices.cpu().to(torch.int64).numpy().tobytes()
    return {"size": int(indices.numel()), "sha256": hashlib.sha256(raw).hexdigest()}
