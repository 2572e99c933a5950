"""The epoch loop every learning rule shares.

A learner supplies two things per mini-batch, with the target built in between:

    y, mask = learner.output(x)    # a forward pass, or a relaxation (mask: output dropout)
    d = target(y, labels, mask)    # funcs.target: kWTA on y - H, or labels; H updated
    learner.learn(d)               # a loss and a step, or a nudged relaxation and an update

and `infer(x)` for evaluation, `set_lr_factor(f)` for the schedule, and
`state_dict`/`load_state_dict` for checkpoints. Supervised and unsupervised
training differ only in the Target. A regression dataset (its `task`) is trained
towards its values with the same loop; it is scored by `regression_cost`, not by
an error rate, and has no classes to associate.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Protocol

import torch

from funcs import association, rules
from funcs.data import REGRESSION
from funcs.errors import UserError
from funcs.target import Target, class_of_neuron


class Learner(Protocol):
    def output(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]: ...
    def learn(self, d: torch.Tensor) -> torch.Tensor: ...
    def infer(self, x: torch.Tensor) -> torch.Tensor: ...
    def set_lr_factor(self, factor: float) -> None: ...
    def sibling(self, lrs) -> "Learner": ...  # same network, own optimizer (semi-supervised phases)
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...
    # Optional: `epoch_metrics() -> dict[str, float]`, the rule's own numbers of the epoch just trained (row
    # norms, per-layer update sizes), written as extra columns of results.csv.
    # Optional: `examples(idx, n)`, told before each training `output` which examples of the n-example split the
    # mini-batch holds (their indices), for a rule that keeps state per example (persistent relaxation states).


def rule_metrics(learner) -> dict[str, float]:
    """The learner's own per-epoch numbers, if it reports any (see Learner)."""
    report = getattr(learner, "epoch_metrics", None)
    return report() if report is not None else {}


# The original code's schedules where a config leaves lr_end_factor null: its loops decay over the run to 5e-4
# (the paper's; its unsupervised EP loop's 1e-3 differs by at most 5e-4), except its unsupervised CNN loop, by
# torch's LinearLR(1 -> 0.01, total_iters=100) whatever `epochs` is: 0.802 after 20 epochs, 0.01 from epoch 100 on.
RUN_END_FACTOR = 5e-4
CNN_DECAY = (0.01, 100)  # (end factor, epochs to reach it)


def linear(start: float, end: float, epoch: int, span: int) -> float:
    """torch's LinearLR factor after `epoch` of `span` steps (span >= 1; constant at `end` past it)."""
    return start + (end - start) * min(epoch, span) / span


def lr_factor(cfg, epoch: int) -> float:
    """Learning-rate factor at `epoch` (0-based): linear(1, end, epoch, over).

    Linear from 1 at the first epoch towards `end`, reached `over` epochs after the first: torch's
    LinearLR(end_factor=end, total_iters=over) stepped once per epoch, as the original code. `end` is
    lr_end_factor and `over` the run's epochs, or with lr_end_factor null the original code's (CNN_DECAY for an
    unsupervised CNN, else RUN_END_FACTOR).
    """
    if cfg.lr_schedule == "constant" or cfg.epochs == 0:
        return 1.0
    if cfg.lr_end_factor is not None:
        end, over = cfg.lr_end_factor, cfg.epochs
    else:
        end, over = CNN_DECAY if cfg.cnn and cfg.target_kind == "unsupervised" else (RUN_END_FACTOR, cfg.epochs)
    return linear(1.0, end, epoch, over)


def outputs(learner: Learner, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Evaluation outputs of a whole split, in batches."""
    return torch.cat([learner.infer(x[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)])


def random_hflip(x: torch.Tensor) -> torch.Tensor:
    """Each image of the batch (n, C, H, W) flipped left-right with probability 1/2, on the batch's device."""
    flip = torch.rand(x.shape[0], device=x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


class Diverged(Exception):
    """Training produced a non-finite loss (or non-finite weights): where, so that the run stops there.

    The message is one line: what was not finite, the epoch (set by the epoch loop) and the batch (1-based, of
    the epoch's), and the learning rate of that epoch as the likely cause. `last` holds the last good epoch's
    metrics (the run's checkpoint is that epoch's: a diverged epoch writes none).
    """

    def __init__(self, message: str, batch: int | None = None, batches: int | None = None):
        super().__init__(message)
        self.what, self.batch, self.batches = message, batch, batches
        self.epoch: int | None = None
        self.key, self.rates, self.last = "lr", (), {}

    def at_epoch(self, epoch: int, key: str, rates, factor: float, last: dict) -> "Diverged":
        """Complete the message with the epoch (1-based) and the rates in use: config key `key`'s `rates` times
        the schedule's `factor`."""
        self.epoch, self.key, self.rates, self.last = epoch, key, tuple(rates), last
        where = f"epoch {epoch}" + (f", batch {self.batch} of {self.batches}" if self.batch is not None else "")
        in_use = f"{key} [{', '.join(f'{r:g}' for r in rates)}]" + ("" if factor == 1 else
                                                                     f" x {factor:.3g} from the schedule")
        self.args = (f"diverged: {self.what} at {where}; the learning rate is the likely cause ({in_use} in this "
                     f"epoch)",)
        return self


# How often, at most, the epoch loop reads its running loss buffer while an epoch goes on (one device sync):
# a diverged epoch stops within this much time instead of running to its end on NaNs.
CHECK_SECONDS = 30.0


def _first_bad(losses: torch.Tensor) -> int | None:
    """Index of the first non-finite entry of a 1-d loss buffer, or None (one sync)."""
    bad = torch.where(~torch.isfinite(losses))[0]
    return int(bad[0]) if bad.numel() else None


def train_epoch(learner: Learner, target: Target, x: torch.Tensor, y: torch.Tensor, batch_size: int,
                augment=None, within=None) -> torch.Tensor:
    """One pass over (x, y) in a random order; returns the mean loss (a tensor: no sync per batch).

    augment: applied to each mini-batch's images (random_hflip with `hflip`).
    Each batch's loss goes into a buffer on the device; the buffer is read at the epoch's end, and at most every
    CHECK_SECONDS during it: at the first non-finite loss the epoch stops with Diverged naming the batch.
    within(done, total): told at those checks how many of the epoch's mini-batches are done (the progress line).
    """
    n = x.shape[0]
    n_batches = -(-n // batch_size)
    perm = torch.randperm(n).to(x.device)
    target.new_epoch()
    losses = torch.zeros(n_batches, device=x.device)
    tell_examples = getattr(learner, "examples", None)
    checked = time.monotonic()
    for b, start in enumerate(range(0, n, batch_size)):
        idx = perm[start:start + batch_size]
        if tell_examples is not None:
            tell_examples(idx, n)
        out, mask = learner.output(x[idx] if augment is None else augment(x[idx]))
        losses[b] = learner.learn(target(out, y[idx], mask))
        if time.monotonic() - checked > CHECK_SECONDS or b == n_batches - 1:
            checked = time.monotonic()
            bad = _first_bad(losses[:b + 1])  # the sync this check costs, once per CHECK_SECONDS or epoch
            if bad is not None:
                raise Diverged(f"loss {losses[bad].item()}", batch=bad + 1, batches=n_batches)
            if within is not None and b < n_batches - 1:
                within(b + 1, n_batches)
    return losses.mean()


def check_finite_weights(learner: Learner) -> None:
    """Diverged when a weight is not finite (a last step that overflowed after a finite loss); one sync."""
    tensors = [t for t in _tensors(learner.state_dict().get("model", {})) if t.is_floating_point()]
    if tensors and not torch.stack([torch.isfinite(t).all() for t in tensors]).all():
        raise Diverged("the network's weights are not finite after its last step")


def _tensors(state):
    if isinstance(state, torch.Tensor):
        yield state
    elif isinstance(state, dict):
        for value in state.values():
            yield from _tensors(value)


def supervised_error(cfg, learner: Learner, split) -> torch.Tensor:
    """Error of the supervised read-out on a split: the class owning the most active output neuron."""
    out = outputs(learner, split.x, cfg.test_batchSize)
    return (class_of_neuron(out, cfg.n_class) != split.y).float().mean()


def regression_cost(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean over examples of the cost C = 1/2 ||y - out||^2 (out, y: (n, n_out)): an energy-based rule's cost at
    the free state, and what Gammell et al. 2021 report as a regression's test error (their Table 1, diabetes)."""
    return 0.5 * ((out - y) ** 2).sum(1).mean()


# The test metric of a regression in results.csv and summary.json: regression_cost on the test set.
REGRESSION_METRIC = "test_cost"


class Evaluator:
    """Test errors after an epoch: direct association (unsupervised) or the class-owner read-out (supervised);
    a regression's cost (`REGRESSION_METRIC`)."""

    def __init__(self, cfg, data, labeled):
        self.cfg, self.data, self.labeled = cfg, data, labeled  # labeled: the association's Split (None: regression)

    def __call__(self, learner: Learner) -> dict[str, torch.Tensor]:
        cfg, test = self.cfg, self.data.test
        if self.data.task == REGRESSION:
            return {REGRESSION_METRIC: regression_cost(outputs(learner, test.x, cfg.test_batchSize), test.y)}
        if cfg.target_kind == "supervised":
            return {"error": supervised_error(cfg, learner, test)}
        test_out = outputs(learner, test.x, cfg.test_batchSize)
        train_out = outputs(learner, self.labeled.x, cfg.test_batchSize)
        return association.association_errors(train_out, self.labeled.y, test_out, test.y, cfg.n_class)


def association_indices(cfg, data) -> torch.Tensor:
    """The labeled share used by both association methods: class-balanced, drawn from the run's seed."""
    generator = torch.Generator().manual_seed(cfg.seed)
    return association.balanced_subset(data.train.y, cfg.class_label_percentage, cfg.n_class, generator)


def labeled_split(data, idx: torch.Tensor):
    """The training examples at `idx`, gathered once per run (the split itself when idx takes them all)."""
    if idx.numel() == data.train.y.shape[0]:
        return data.train  # all labels: no 60,000-image copy
    idx = idx.to(data.train.x.device)
    return dataclasses.replace(data.train, x=data.train.x[idx], y=data.train.y[idx])


def rng_states(device: torch.device) -> dict:
    """The random states a resumed run needs: the CPU's (shuffling) and the device's (dropout masks)."""
    states = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def set_rng_states(states: dict, device: torch.device) -> None:
    torch.set_rng_state(states["cpu"])
    if "cuda" in states and device.type == "cuda":
        torch.cuda.set_rng_state(states["cuda"], device)


def load_model(learner: Learner, weights, what: str) -> None:
    """Another run's network weights into a learner built from this config; one UserError line naming `what`
    (the config key and file) when they do not fit it (another shape, another rule's layout)."""
    try:
        learner.load_state_dict({**learner.state_dict(), "model": weights})
    except (RuntimeError, KeyError, ValueError, TypeError) as err:
        raise UserError(f"{what}: its weights do not fit this config's network ({err.__class__.__name__})") from None


def restore(state: dict, learner, target: Target, device: torch.device) -> int:
    """Load a checkpoint's learner, target and random states; the number of epochs it had done.

    The optimizers' configured rates (`base_lr`) are the config's, not the checkpoint's: a run resumed with
    another `lr` (after diverging) goes on with it; with the same config nothing changes.
    """
    try:
        learner.load_state_dict(_with_configured_rates(state["learner"], learner.state_dict()))
        target.load_state_dict(state["target"])
        set_rng_states(state["rng"], device)
    except (RuntimeError, KeyError, ValueError, TypeError) as err:
        raise UserError(f"the checkpoint does not fit this config's network ({err.__class__.__name__}); "
                        f"restore the run's config.json or start a new run")
    return state["epoch"]


def _with_configured_rates(saved, fresh):
    """`saved` (a learner's state) with each optimizer group's `base_lr` taken from `fresh` (built from the
    config); the optimizers' moments and everything else stay the checkpoint's."""
    if not isinstance(saved, dict) or not isinstance(fresh, dict):
        return saved
    if "param_groups" in saved and "param_groups" in fresh and len(saved["param_groups"]) == len(fresh["param_groups"]):
        groups = [{**s, **{k: f[k] for k in ("base_lr",) if k in f}}
                  for s, f in zip(saved["param_groups"], fresh["param_groups"])]
        return {**saved, "param_groups": groups}
    return {k: _with_configured_rates(v, fresh.get(k)) for k, v in saved.items()}


def train(cfg, data, learner: Learner, run=None, state: dict | None = None) -> dict:
    """Train for cfg.epochs, evaluating after each epoch; then the linear classifier (unsupervised).

    run: a results.Run (writes rows, checkpoints, logs) or None for in-memory
    use (the search). state: a checkpoint to continue from. Returns the final
    metrics as plain floats.
    """
    device = data.train.x.device
    target = Target.from_config(cfg, device=device)
    classes = data.task != REGRESSION  # a regression has no classes to associate (nor a linear classifier)
    assoc_idx = association_indices(cfg, data) if classes else None
    labeled = labeled_split(data, assoc_idx) if classes else None
    evaluate = Evaluator(cfg, data, labeled)
    if run is not None and classes:
        run.facts["association_labels"] = association.describe_subset(assoc_idx)
    start = restore(state, learner, target, device) if state is not None else 0
    metrics: dict = dict(state.get("metrics", {})) if state is not None else {}  # its last row (older: none)
    for epoch in range(start, cfg.epochs):
        tic = time.perf_counter()
        learner.set_lr_factor(lr_factor(cfg, epoch))
        try:
            loss = train_epoch(learner, target, data.train.x, data.train.y, cfg.batchSize,
                               augment=random_hflip if cfg.hflip else None, within=within_epoch(run))
            check_finite_weights(learner)
        except Diverged as err:
            raise err.at_epoch(epoch + 1, "lr", cfg.lr, lr_factor(cfg, epoch), metrics)
        train_seconds = time.perf_counter() - tic
        errors = evaluate(learner)
        row = {"epoch": epoch + 1, "loss": loss.item(), **{k: v.item() for k, v in errors.items()},
               **rule_metrics(learner), "train_seconds": train_seconds, "seconds": time.perf_counter() - tic}
        metrics = row
        if run is not None:
            run.epoch_done(row, {"epoch": epoch + 1, "config": cfg.to_json(), "learner": learner.state_dict(),
                                 "target": target.state_dict(), "rng": rng_states(device), "metrics": row})
    if not metrics:
        # An untrained network (epochs 0, the paper's baseline), or a resumed run whose checkpoint (older code)
        # holds no row.
        metrics = {"epoch": cfg.epochs, **{k: v.item() for k, v in evaluate(learner).items()}}
    if cfg.target_kind != "supervised" and cfg.class_epoch > 0:
        metrics["classifier_error"] = linear_classifier(cfg, data, learner, labeled, run, last=dict(metrics))
    return metrics


def within_epoch(run):
    """The run's report inside an epoch (results.Run.within_epoch), or None."""
    return run.within_epoch if run is not None else None


def classifier_schedule(cfg) -> str:
    """'auto' picks halvings after a CNN, else the rule's own (Rule.classifier_schedule)."""
    if cfg.class_schedule != "auto":
        return cfg.class_schedule
    return "step" if cfg.cnn else rules.get(cfg.rule).classifier_schedule


def _after_network(cfg, last: dict | None, what: str, cause: str, key: str | None = None) -> Diverged:
    """Diverged after the network's epochs (all checkpointed): `key`, if any, is what a resumed run may lower."""
    err = Diverged(what)
    err.args = (f"diverged: {what}, once the network's training had ended; {cause}",)
    err.epoch, err.last = cfg.epochs + 1, last or {"epoch": cfg.epochs}
    err.key, err.rates = key, (tuple(getattr(cfg, key)) if key else ())
    return err


def linear_classifier(cfg, data, learner: Learner, labeled, run=None, last: dict | None = None) -> float:
    """Train the linear read-out on the frozen network's outputs for the labeled share; its final test error.

    Diverged when those outputs or the classifier's test loss are not finite (a run would otherwise end
    "finished" at chance), after the network's epochs: `last`, their final metrics, is the last good state.
    """
    tic = time.perf_counter()
    train_feat = outputs(learner, labeled.x, cfg.test_batchSize)
    test_feat = outputs(learner, data.test.x, cfg.test_batchSize)
    if not (torch.isfinite(train_feat).all() and torch.isfinite(test_feat).all()):
        raise _after_network(cfg, last, "the network's outputs (the linear classifier's inputs) are not finite",
                             "a setting that scales them is the likely cause, not a learning rate")
    if run is not None:
        run.start_classifier(cfg.class_epoch, labeled.y.shape[0], data.test.y.shape[0], time.perf_counter() - tic)
    schedule = classifier_schedule(cfg)
    rows = association.train_linear_classifier(
        train_feat, labeled.y, test_feat, data.test.y, n_class=cfg.n_class, lr=cfg.class_lr[0],
        epochs=cfg.class_epoch, batch_size=cfg.test_batchSize, dropout=cfg.class_dropProb,
        activation=cfg.class_activation, optimizer=cfg.class_optimizer, schedule=schedule,
        smooth_labels=cfg.class_smooth, generator=torch.Generator().manual_seed(cfg.seed),
        on_epoch=run.classifier_epoch_done if run is not None else None)
    bad = next((r for r in rows if not math.isfinite(r["test_loss"])), None)
    if bad is not None:  # the network is fine: a resumed run may lower class_lr and only redo the classifier
        raise _after_network(cfg, last, f"the linear classifier's test loss is {bad['test_loss']} at its epoch "
                             f"{bad['epoch']}", f"the learning rate is the likely cause (class_lr {bad['lr']:g} in "
                             f"that epoch)", key="class_lr")
    return rows[-1]["test_error"]
