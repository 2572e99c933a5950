"""Semi-supervised training: a few labels plus the self-defined target (paper section 3.4, Table 10).

Phase 1: `pre_epochs` supervised epochs on the labeled subset only (batch
`pre_batchSize`, rates `pre_lr` decayed exponentially). Phase 2: `epochs`
rounds of one unsupervised epoch over the unlabeled rest (kWTA target, k =
`nudge`; homeostasis with rate `gamma`, none at gamma 0) then one supervised
epoch over the labeled subset, each half with its own optimizer and linear
learning-rate schedule on the rates `lr`. The test error (supervised read-out)
is recorded after phase 1 and after each half of every phase-2 epoch.

It composes what the other actions use: the same learners (three siblings
sharing one network, each with its own optimizer), the same Target and the
same `loop.train_epoch`. Paper Figure 9's variants are configs: supervised only
(`epochs: 0`), + WTA (`gamma: 0`), + WTA + homeostasis (`gamma > 0`).
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from funcs import association, loop, results, rules
from funcs import config as config_mod
from funcs.errors import UserError
from funcs.rules import Schedules
from funcs.target import Target

PRETRAINED = "pretrained.pt"  # the phase-1 network, written into the run folder


def phase2_factors(schedules: Schedules, epoch: int, epochs: int) -> tuple[float, float]:
    """(unsupervised, supervised) learning-rate factors in phase-2 epoch `epoch` (0-based)."""
    return (loop.linear(*schedules.unsupervised, epoch, epochs),
            loop.linear(*schedules.supervised, epoch, max(epochs - schedules.supervised_flat, 1)))


def split_labeled(labels: torch.Tensor, n_labeled: int, n_class: int, seed: int,
                  draw: str = "per_class") -> tuple[torch.Tensor, torch.Tensor]:
    """(labeled, unlabeled) training indices, both sorted, disjoint, the same for the same seed.

    draw 'per_class': n_labeled / n_class random examples of each class (the paper's "equal numbers per class").
    draw 'stratified': the original code's draw, scikit-learn's stratified train_test_split with random_state
    `seed`, whose class counts follow the class frequencies (MNIST, 600 labels: 54 fives, 67 ones).
    """
    labels = labels.cpu()
    if draw == "stratified":
        return _split_stratified(labels, n_labeled, seed)
    per_class = n_labeled // n_class
    generator = torch.Generator().manual_seed(seed)
    picked = []
    for c in range(n_class):
        members = (labels == c).nonzero(as_tuple=True)[0]
        if members.numel() < per_class:
            raise UserError(f"config key 'train_label_number': {n_labeled} asks for {per_class} examples of class "
                            f"{c}, which has only {members.numel()}")
        picked.append(members[torch.randperm(members.numel(), generator=generator)[:per_class]])
    labeled = torch.cat(picked).sort().values
    keep = torch.ones(labels.shape[0], dtype=torch.bool)
    keep[labeled] = False
    return labeled, keep.nonzero(as_tuple=True)[0]


def _split_stratified(labels: torch.Tensor, n_labeled: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise UserError("config key 'label_draw': 'stratified' needs scikit-learn "
                        "(pip install -r requirements-datasets.txt)") from None
    # The original's very expression (fractions, not counts), so that a seed draws the subset the original draws.
    fraction = n_labeled / labels.shape[0]
    try:
        labeled, unlabeled = train_test_split(torch.arange(labels.shape[0]).numpy(), train_size=fraction,
                                              test_size=1 - fraction, random_state=seed, stratify=labels.numpy())
    except ValueError as err:  # too few labels for the classes, or a class with a single example
        raise UserError(f"config key 'train_label_number': {n_labeled} cannot be drawn stratified: {err}") from None
    return torch.from_numpy(labeled).sort().values, torch.from_numpy(unlabeled).sort().values


# What a phase-1 network must share with the config that reuses it: the network and its data (and the keys
# that fix what the rule's network computes, Rule.network_keys).
PRETRAINED_KEYS = ("action", "dataset", "fcLayers", "activation_function", "train_size", "train_label_number",
                   "label_draw")


def save_pretrained(folder: Path, cfg, learner, seed: int, labeled_idx: torch.Tensor, error: float) -> None:
    """The phase-1 network, written whole or not at all: a `_wta` run waiting for it may start the moment it is
    there (funcs.reproduce)."""
    saved = {"model": learner.state_dict()["model"], "config": cfg.to_json(), "semi_seed": seed,
             "labeled_subset": association.describe_subset(labeled_idx), "error": error}
    results.atomic_write(folder / PRETRAINED, lambda tmp: torch.save(saved, tmp))


def load_pretrained(cfg) -> dict:
    """The phase-1 network of another run (`pretrained_path`), checked against this config."""
    path = Path(cfg.pretrained_path)
    if path.is_dir():
        path = path / PRETRAINED
    try:
        saved = torch.load(path, weights_only=True, map_location="cpu")
        saved_cfg = saved["config"]
        saved["model"], saved["semi_seed"], saved["labeled_subset"], saved["error"]  # all there
    except Exception as err:  # missing, unreadable or foreign file: torch raises many kinds
        raise UserError(f"config key 'pretrained_path': {path} is not a phase-1 network written by a "
                        f"semi-supervised run ({err.__class__.__name__})")
    keys = PRETRAINED_KEYS + rules.get(cfg.rule).network_keys + (("seed",) if cfg.train_size is not None else ())
    # (seed draws the train subset)
    for key in keys:  # a key absent from the file was added to the code after it was written (as load_trained)
        if key in saved_cfg and saved_cfg[key] != cfg.to_json()[key]:
            raise UserError(f"config key 'pretrained_path': {path} was trained with {key} "
                            f"{saved_cfg.get(key)!r}, this config has {cfg.to_json()[key]!r}")
    if cfg.semi_seed >= 0 and cfg.semi_seed != saved["semi_seed"]:
        raise UserError(f"config key 'pretrained_path': {path} was trained on the labeled subset of semi_seed "
                        f"{saved['semi_seed']}, this config asks for {cfg.semi_seed}")
    return saved


def check(cfg, data, pretrained: dict | None = None) -> None:
    """What can be refused before a run folder exists, once the data is there: too few examples per
    class, a phase-1 network (`load_pretrained`'s result) that was trained on another labeled subset."""
    split_labeled(data.train.y, cfg.train_label_number, cfg.n_class, seed=0, draw=cfg.label_draw)
    if pretrained is not None:
        labeled, _ = split_labeled(data.train.y, cfg.train_label_number, cfg.n_class, pretrained["semi_seed"],
                                   cfg.label_draw)
        if association.describe_subset(labeled) != pretrained["labeled_subset"]:
            raise UserError(f"config key 'pretrained_path': {cfg.pretrained_path} was trained on another "
                            f"labeled subset than this config draws from its training set")


class Siblings:
    """The three learners of a semi-supervised run, one network: checkpointed as one model and three optimizers."""

    def __init__(self, **learners):
        self.learners = learners

    def state_dict(self) -> dict:
        states = {name: l.state_dict() for name, l in self.learners.items()}
        return {"model": next(iter(states.values()))["model"],
                "optimizers": {name: s["optimizer"] for name, s in states.items()}}

    def load_state_dict(self, state: dict) -> None:
        for name, learner in self.learners.items():
            learner.load_state_dict({"model": state["model"], "optimizer": state["optimizers"][name]})


def siblings(cfg, learner) -> Siblings:
    """Phase 1's, phase 2's unsupervised and its supervised learner (`learner` itself), each with its own rates."""
    return Siblings(pretrain=learner.sibling(cfg.pre_lr), unsupervised=learner.sibling(cfg.lr), supervised=learner)


def train(cfg, data, learner, run=None, state: dict | None = None) -> dict:
    """Phase 1 then phase 2; returns the final metrics (test error after phase 1 and at the end)."""
    schedules = rules.get(cfg.rule).semi_schedules  # the rule's, since it has semi-supervised actions
    pretrained = load_pretrained(cfg) if cfg.pretrained_path else None
    if state is not None:
        seed = state["semi_seed"]
    elif pretrained is not None:
        seed = pretrained["semi_seed"]
    else:
        seed = config_mod.labeled_subset_seed(cfg.semi_seed, cfg.seed)
    labeled_idx, unlabeled_idx = split_labeled(data.train.y, cfg.train_label_number, cfg.n_class, seed,
                                               cfg.label_draw)
    labeled, unlabeled = loop.labeled_split(data, labeled_idx), loop.labeled_split(data, unlabeled_idx)
    team = siblings(cfg, learner)
    pre, unsup, sup = (team.learners[k] for k in ("pretrain", "unsupervised", "supervised"))
    sup_target = Target.from_config(cfg, kind="supervised", device=data.train.x.device)
    unsup_target = Target.from_config(cfg, kind="unsupervised", device=data.train.x.device)
    if run is not None:
        run.facts["semi_seed"] = seed
        run.facts["labeled_subset"] = association.describe_subset(labeled_idx)
        per_class = torch.bincount(data.train.y[labeled_idx].cpu(), minlength=cfg.n_class).tolist()
        run.log(f"labeled subset: {labeled_idx.numel()} examples drawn {cfg.label_draw} with semi_seed {seed} "
                f"(set it in the config to repeat this draw), per class {per_class}; "
                f"{unlabeled_idx.numel()} unlabeled")

    start, pre_epochs = 0, cfg.pre_epochs
    metrics: dict = {}
    if pretrained is not None:
        sup.load_state_dict({"model": pretrained["model"], "optimizer": sup.state_dict()["optimizer"]})
        pre_epochs, metrics["pretrain_error"] = 0, pretrained["error"]
        if run is not None:  # the phase-1 accuracy an unfinished run's folder has nowhere else
            accuracy = results.accuracies({"pretrain_error": pretrained["error"]})["after_phase_1"]
            run.log(f"phase 1: the network of {cfg.pretrained_path}, test accuracy {accuracy:.2f} % after its "
                    f"phase 1; phase 2 starts from it")
    elif pre_epochs == 0:
        metrics["pretrain_error"] = loop.supervised_error(cfg, sup, data.test).item()
    if state is not None:
        start, metrics = loop.restore(state, team, unsup_target, data.train.x.device), state["metrics"]

    def checkpoint(epoch):
        return {"epoch": epoch, "config": cfg.to_json(), "learner": team.state_dict(),
                "target": unsup_target.state_dict(), "rng": loop.rng_states(data.train.x.device),
                "semi_seed": seed, "metrics": metrics}

    def half(epoch, rates, lrn, target, split, batch_size, factor) -> float:
        """One train_epoch at `factor` x the rates of config key `rates`; Diverged completed with where."""
        lrn.set_lr_factor(factor)
        try:
            loss = loop.train_epoch(lrn, target, split.x, split.y, batch_size, within=loop.within_epoch(run))
            loop.check_finite_weights(lrn)
        except loop.Diverged as err:
            what = "phase 1" if epoch < pre_epochs else "phase 2, " + (
                "unsupervised half" if lrn is unsup else "supervised half")
            err.what += f" ({what})"
            raise err.at_epoch(epoch + 1, rates, getattr(cfg, rates), factor, dict(metrics))
        return loss.item()

    nan = math.nan
    for epoch in range(start, pre_epochs + cfg.epochs):
        tic = time.perf_counter()
        if epoch < pre_epochs:  # phase 1: the labeled subset alone
            loss_u, error_u = nan, nan
            loss = half(epoch, "pre_lr", pre, sup_target, labeled, cfg.pre_batchSize, schedules.pre_decay ** epoch)
        else:  # phase 2: an unsupervised then a supervised epoch
            f_unsup, f_sup = phase2_factors(schedules, epoch - pre_epochs, cfg.epochs)
            loss_u = half(epoch, "lr", unsup, unsup_target, unlabeled, cfg.batchSize, f_unsup)
            error_u = loop.supervised_error(cfg, unsup, data.test).item()
            loss = half(epoch, "lr", sup, sup_target, labeled, cfg.pre_batchSize, f_sup)
        error = loop.supervised_error(cfg, sup, data.test).item()
        if epoch == pre_epochs - 1:
            metrics["pretrain_error"] = error
            if run is not None:
                save_pretrained(run.folder, cfg, sup, seed, labeled_idx, error)
        metrics.update(epoch=epoch + 1, error=error)
        row = {"epoch": epoch + 1, "phase": 1 if epoch < pre_epochs else 2, "loss_unsupervised": loss_u,
               "error_unsupervised": error_u, "loss": loss, "error": error,
               "seconds": time.perf_counter() - tic}
        if run is not None:
            run.epoch_done(row, checkpoint(epoch + 1))
    if "error" not in metrics:  # nothing to train: the network as it is
        metrics.update(epoch=0, error=loop.supervised_error(cfg, sup, data.test).item())
    return metrics
