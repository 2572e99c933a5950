"""The command line every learning rule shares: `python -m <rule>.main` differ only in their rule (funcs.rules).

config -> data -> learner -> run folder -> loop.train -> summary.json, each
step one call. Everything that can fail on user input fails before a run
folder exists; a user mistake is one line on stderr and exit code 2.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
from pathlib import Path

import torch

from funcs import config as config_mod
from funcs import data as data_mod
from funcs import loop, plots, results, rules, semi
from funcs.errors import OneLineParser, UserError, one_line_errors, stop_signals_interrupt
from funcs.rules import READ_OUT, Rule
from funcs.target import check_task

# The CPU computes with subnormal floats (below 1.2e-38) as zero, in every run. Adam's moment estimates for inputs
# that are almost never active (MNIST's border pixels) decay into that range, where an x86 CPU takes a slow path for
# each operation on them: a semi-supervised BP run's phase-2 epoch grew from 13 to 22 s over its 400 epochs, and
# flushing halves its unsupervised half (bench/denormals.py). An update they make is far below a float32 weight's
# resolution. Set at import, before torch's thread pool starts: each of its threads keeps the mode it started with.
torch.set_flush_denormal(True)


def parse_args(rule: Rule, argv):
    actions = ", ".join(f"{a} ({kind} target)" for a, kind in rule.actions.items())
    p = OneLineParser(prog=rule.command, description=f"Train a network with {rule.title}. Actions (config key "
                                                     f"action): {actions}, or {READ_OUT}.")
    p.add_argument("--json_path", help=f"folder holding config.json, or a .json file (default: {rule.default_config})")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key; VALUE is JSON (e.g. --set epochs=2 --set fcLayers=[784,100])")
    p.add_argument("--out", help="run folder (default: DATA-0/<date>/<action>-<n>/)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last checkpoint")
    p.add_argument("--trained_path", metavar="RUN_DIR",
                   help="action train_class_layer: read out this run's trained network (association and linear "
                        "classifier, no training); its config.json is the default config")
    p.add_argument("--seeds", type=int, default=1, metavar="N",
                   help="run N seeds (seed, seed+1, ...) in RUN/S-<seed>/ and write their mean and std")
    p.add_argument("--dry-run", action="store_true", help="validate, print the resolved config and exit")
    return p.parse_args(argv)


def resolve_device(index: int) -> torch.device:
    """-1: the CPU; N: GPU N, falling back to the CPU with a one-line warning when there is none."""
    if index < 0:
        return torch.device("cpu")
    if torch.cuda.is_available() and index < torch.cuda.device_count():
        return torch.device(f"cuda:{index}")
    print(f"warning: GPU {index} is not available; running on the CPU", file=sys.stderr)
    return torch.device("cpu")


def check(rule: Rule, cfg) -> None:
    """Checks of a valid Config against this entry point and the dataset's spec; no file is read."""
    if cfg.rule != rule.name:
        what = f"'{cfg.action}'" + (f" of a {cfg.rule} network" if cfg.action == config_mod.READ_OUT else "")
        raise UserError(f"config key 'action': {what} is run by {rules.get(cfg.rule).command}, "
                        f"not {rule.command}")
    spec = data_mod.spec(cfg.dataset)
    check_task(cfg, spec)  # a regression dataset refuses what needs classes
    if cfg.n_class != spec.n_class:
        raise UserError(f"config key 'n_class': {cfg.n_class}, but {cfg.dataset} has {spec.n_class} classes")
    n_in = spec.shape[0] * spec.shape[1] * spec.shape[2]
    if not cfg.cnn and cfg.fcLayers[0] != n_in:
        raise UserError(f"config key 'fcLayers': input size {cfg.fcLayers[0]}, but {cfg.dataset} images have "
                        f"{n_in} pixels")
    rule.check_input(cfg, spec.shape)


def prepare(rule: Rule, cfg):
    """Data on the device and a fresh learner: everything that may fail on user input, before any folder."""
    check(rule, cfg)
    pretrained = semi.load_pretrained(cfg) if cfg.pretrained_path else None  # refused before the data is read
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    learner = rule.build(cfg, device)  # right after seeding: the initial weights depend on the seed alone
    if cfg.trained_path:
        load_trained(cfg, learner)
    if pretrained is not None:  # refused here, before any folder, rather than when phase 2 starts
        loop.load_model(learner, pretrained["model"], f"config key 'pretrained_path': {cfg.pretrained_path}")
    try:
        dataset = shrink(data_mod.load_dataset(cfg.dataset, cfg.data_dir, device=device), cfg)
    except ModuleNotFoundError as err:  # a dataset reader's optional package (requirements-datasets.txt)
        if (err.name or "").split(".")[0] != "scipy":  # SVHN's .mat files; anything else is not a user's doing
            raise
        raise UserError(f"config key 'dataset': {cfg.dataset} needs scipy, which is not installed: "
                        f"pip install -r requirements-datasets.txt")
    if cfg.target_kind == "semi_supervised":
        semi.check(cfg, dataset, pretrained)
    return device, dataset, learner


# The keys that make a network compute what it computed when it was trained.
NETWORK_KEYS = ("dataset", "cnn", "fcLayers", "activation_function")
NETWORK_KEYS_CNN = ("C_list", "kernel_sizes", "paddings", "pool_type", "pool_size", "pool_stride", "pool_padding")


def load_trained(cfg, learner) -> None:
    """Load the weights of the run folder `trained_path` into a learner built from this config."""
    folder = Path(cfg.trained_path)
    trained_cfg, weights = results.read_trained(folder)
    keys = NETWORK_KEYS + NETWORK_KEYS_CNN * cfg.cnn + rules.get(cfg.rule).network_keys
    for key in keys:
        if key in trained_cfg and trained_cfg[key] != cfg.to_json()[key]:  # absent: written by older code
            raise UserError(f"config key 'trained_path': {folder} was trained with {key} "
                            f"{trained_cfg[key]!r}, this config has {cfg.to_json()[key]!r}")
    loop.load_model(learner, weights, f"config key 'trained_path': {folder}")


def shrink(dataset, cfg):
    """Apply `validation_size`, `train_size` (seeded, class-balanced) and `test_size` (the first ones).

    With validation_size, a seeded class-balanced hold-out of the training set
    takes the test set's place (the search's scoring; test_size then plays no
    part) and train_size is drawn from the rest.
    """
    train, test = dataset.train, dataset.test
    if cfg.validation_size is not None:
        if cfg.validation_size >= train.y.shape[0]:
            raise UserError(f"config key 'validation_size': {cfg.validation_size}, but {cfg.dataset} has only "
                            f"{train.y.shape[0]} training examples")
        train, test, _ = data_mod.hold_out(train, cfg.validation_size, torch.Generator().manual_seed(cfg.seed))
    for key, split in (("train_size", train), ("test_size", dataset.test)):
        size = getattr(cfg, key)
        if size is not None and size > split.y.shape[0]:
            left = " left beside validation_size" if key == "train_size" and cfg.validation_size else ""
            raise UserError(f"config key '{key}': {size}, but {cfg.dataset} has only {split.y.shape[0]}{left}")
    if cfg.train_size is not None:
        train = data_mod.subset(train, cfg.train_size, torch.Generator().manual_seed(cfg.seed))
    if cfg.test_size is not None and cfg.validation_size is None:
        test = data_mod.subset(test, cfg.test_size)
    return dataclasses.replace(dataset, train=train, test=test)


def train_config(rule: Rule, cfg, run: results.Run | None = None, resume: bool = False, prepared=None) -> dict:
    """Train one config and return its final metrics: the call the search makes for every trial.

    run: where rows and checkpoints go (None keeps everything in memory);
    resume: continue from the run's last checkpoint; prepared: `prepare`'s result if already made.
    """
    device, dataset, learner = prepared or prepare(rule, cfg)
    train = semi.train if cfg.target_kind == "semi_supervised" else loop.train
    if run is None:
        return train(cfg, dataset, learner)
    state = run.load_checkpoint(cfg) if resume else None
    shape = (f"conv {list(cfg.C_list or ())} + " if cfg.cnn else "") + str(list(cfg.fcLayers))
    run.log(f"{rule.name}: {cfg.action} on {cfg.dataset}, {shape}, seed {cfg.seed}, "
            f"device {device}, folder {run.folder}" + (f", resuming after epoch {state['epoch']}" if state else "") +
            (f", network read from {cfg.trained_path}" if cfg.trained_path else ""))
    if cfg.trained_path:
        run.facts["trained_network"] = results.describe_trained(Path(cfg.trained_path))
    if cfg.validation_size is not None:
        run.facts["evaluated_on"] = (f"validation: {cfg.validation_size} training examples held out with seed "
                                     f"{cfg.seed}; every error and accuracy is on them, not on the test set")
        run.log(run.facts["evaluated_on"])
    run.start_progress(total_epochs(cfg), state["epoch"] if state else 0)
    try:
        return train(cfg, dataset, learner, run=run, state=state)
    finally:
        run.stop_progress()


def total_epochs(cfg) -> int:
    """Epochs a run counts: semi-supervised runs number phase 1's and phase 2's epochs in one sequence."""
    if cfg.target_kind == "semi_supervised" and not cfg.pretrained_path:
        return cfg.pre_epochs + cfg.epochs
    return cfg.epochs


DIVERGED_EXIT = 3  # exit code of a run stopped at a non-finite loss (2: a user mistake; 130: Ctrl-C)

# The keys `--resume RUN --set` may change in a diverged run: the learning rates and their schedule, which
# neither change the network's shape nor what its checkpoint holds.
RESUMABLE_KEYS = ("lr", "pre_lr", "lr_schedule", "lr_end_factor", "class_lr")


class RunDiverged(Exception):
    """A run stopped at a non-finite loss: the one line to print (where, why, how to continue)."""


class UserInterrupt(Exception):
    """Ctrl-C during training: the folder to resume from."""

    def __init__(self, folder: Path):
        super().__init__(str(folder))
        self.folder = folder


def run_one(rule: Rule, cfg, folder: Path | None, argv, resume: bool = False, changes: dict | None = None) -> dict:
    """Train one config into one run folder; returns its summary.

    changes: {key: (before, now)} of a diverged run resumed with `--set` (written into config.json and run.log).
    """
    if not resume:
        results.check_new_folder(results.run_folder(cfg, folder))
    prepared = prepare(rule, cfg)  # fails on user input before any folder exists
    run = results.Run.open(folder) if resume else results.Run.create(cfg, folder)
    if changes:
        record_changes(run, cfg, changes)
    try:
        metrics = train_config(rule, cfg, run, resume=resume, prepared=prepared)
    except KeyboardInterrupt:
        raise UserInterrupt(run.folder)
    except loop.Diverged as err:
        raise diverged(rule, cfg, run, err, str(prepared[0]), argv)
    summary = run.write_summary(cfg, metrics, str(prepared[0]), argv)
    if can_plot(run.log):
        plots.plot_run(run.folder, f"{cfg.action}, {list(cfg.fcLayers)}, seed {cfg.seed}")
    split = "validation" if cfg.validation_size is not None else "test"
    run.log(results.final_line(summary, split))
    return summary


def can_plot(say) -> bool:
    """Whether curves.png can be drawn: matplotlib is optional (requirements-figures.txt); without it, one line."""
    if importlib.util.find_spec("matplotlib") is not None:
        return True
    say("curves.png not drawn: matplotlib is not installed (pip install -r requirements-figures.txt, then "
        "python -m funcs.plots RUN_DIR draws it from results.csv)")
    return False


def record_changes(run: results.Run, cfg, changes: dict) -> None:
    """A run resumed with other settings (rates after a divergence, another machine's data_dir or device):
    config.json takes them, run.log says what changed, and so do resumes.json (at once) and summary.json's
    `resumed_with` (at the end), with config.json's earlier values."""
    run.may_differ = tuple(changes)
    run.add_resume({"after_epoch": run.checkpoint_epoch(),
                    "changed": {k: {"was": was, "now": now} for k, (was, now) in changes.items()}})
    results.write_json(run.folder / "config.json", cfg.to_json())
    run.log("resumed with " + ", ".join(f"{k} {json.dumps(now)} (was {json.dumps(was)})"
                                        for k, (was, now) in changes.items()) + "; config.json holds the new values")


def diverged(rule: Rule, cfg, run: results.Run, err: loop.Diverged, device: str, argv) -> RunDiverged:
    """summary.json of a diverged run (status 'diverged', where, the last good epoch) and the line to print."""
    good = err.epoch - 1
    lower = json.dumps([float(f"{r / 10:.3g}") for r in err.rates])
    run.write_summary(cfg, err.last, device, argv, diverged={
        "epoch": err.epoch, "batch": err.batch, "batches": err.batches, "last_good_epoch": good,
        "reason": str(err), "resume_key": err.key})
    start = "with the network as trained (only the linear classifier is redone)" if err.epoch > cfg.epochs else \
        f"from epoch {good} (its checkpoint is kept)" if good else "from the initial weights (no epoch finished)"
    if err.key is None:  # nothing a resumed run may change would help
        line = f"{err}."
    else:
        line = (f"{err}. Lower it and continue {start}: {rule.command} --resume {run.folder} --set {err.key}=[...] "
                f"(a tenth: {lower})")
    run.log(line, echo=False)  # printed once, on stderr, by main
    return RunDiverged(line)


def run_seeds(rule: Rule, cfg, n: int, argv) -> None:
    """N runs with seeds seed..seed+N-1 under one folder, then their mean and standard deviation."""
    root = Path(cfg.out_dir or results.default_folder(cfg.action))
    results.check_new_folder(root)
    summaries = []
    for seed in range(cfg.seed, cfg.seed + n):
        one = config_mod.replace(cfg, seed=seed, out_dir=str(root / f"S-{seed}"))
        summaries.append(run_one(rule, one, None, argv))
    stats = results.seeds_summary(summaries)
    results.write_json(root / "seeds_summary.json", stats)
    if can_plot(print):
        plots.plot_seeds(root, [root / f"S-{seed}" for seed in stats["seeds"]])
    print("over seeds " + ", ".join(map(str, stats["seeds"])) + ": " +
          ", ".join(f"{k} {stats['mean'][k]} ({stats['std'][k]})" for k in stats["mean"]))


def resume(rule: Rule, args, command) -> None:
    """Continue the run in args.resume with its saved config; any run may move to another machine (--set of
    config.MACHINE_KEYS), a diverged run may also change its rates (RESUMABLE_KEYS); nothing else may change."""
    if args.out is not None or args.seeds != 1 or args.dry_run or args.json_path or args.trained_path:
        raise UserError("--resume continues a run with its saved config; it takes no --json_path, --out, "
                        "--trained_path, --seeds or --dry-run")
    folder = Path(args.resume)
    results.Run.open(folder)  # says so when the folder is not a run
    summary = config_mod.read_json(folder / "summary.json", "run summary") if (folder / "summary.json").exists() \
        else None
    was_diverged = summary is not None and summary.get("status") == "diverged"
    if was_diverged and not (isinstance(summary.get("diverged") or {}, dict)
                             and isinstance(summary.get("resumed_with", []), list)):  # record_changes reads both
        raise UserError(f"--resume {folder}: {folder / 'summary.json'} is damaged: its 'diverged' is not an object "
                        f"or its 'resumed_with' not a list")
    if summary is not None and not was_diverged:
        raise UserError(f"--resume {folder}: this run has finished (summary.json is there); nothing to continue")
    saved = config_mod.load(folder / "config.json", default_rule=rule.name)
    cfg = config_mod.load(folder / "config.json", args.set, default_rule=rule.name)
    before, now = saved.to_json(), cfg.to_json()
    changes = {k: (before.get(k), now.get(k)) for k in now if before.get(k) != now.get(k)}
    machine = ", ".join(config_mod.MACHINE_KEYS)
    refused = sorted(k for k in changes if k not in (*RESUMABLE_KEYS, *config_mod.MACHINE_KEYS))
    if refused:
        raise UserError(f"--resume {folder} --set: {', '.join(refused)} cannot change in a resumed run (only "
                        f"{machine}, and after a divergence {', '.join(RESUMABLE_KEYS)}, which leave the network "
                        f"and its checkpoint as they are)")
    rates = sorted(k for k in changes if k in RESUMABLE_KEYS)
    if rates and not was_diverged:
        raise UserError(f"--resume {folder}: --set {', '.join(rates)} changes a run only after it diverged; this "
                        f"one did not, so it continues with its saved config (only {machine} may change, to "
                        f"continue it on another machine)")
    run_one(rule, cfg, folder, command, resume=True, changes=changes)


def load_config(rule: Rule, args):
    """The config of --json_path (or the default) with --set applied; with --trained_path, a read-out of that run."""
    if not args.trained_path:
        return config_mod.load(args.json_path or rule.default_config, args.set, default_rule=rule.name)
    overrides = [f"action={json.dumps(config_mod.READ_OUT)}", f"trained_path={json.dumps(args.trained_path)}"]
    if not args.json_path:  # the trained run's own config: its network, seed and association settings
        overrides += ["out_dir=null", "pretrained_path=null"]  # its folder; a phase-2 run's phase-1 network
    return config_mod.load(args.json_path or results.trained_config_file(Path(args.trained_path)),
                           overrides + args.set, default_rule=rule.name)


@one_line_errors
def main(rule: Rule, argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    stop_signals_interrupt()
    try:
        args = parse_args(rule, argv)
    except SystemExit as done:  # --help, or a malformed command line (one line printed already)
        return done.code
    command = [rule.command, *argv]
    try:
        if args.resume:
            resume(rule, args, command)
            return 0
        cfg = load_config(rule, args)
        if args.out is not None:
            if not args.out.strip():
                raise UserError("--out: an empty path; give the run folder")
            cfg = config_mod.replace(cfg, out_dir=args.out)
        if args.seeds < 1:
            raise UserError(f"--seeds must be at least 1, got {args.seeds}")
        if cfg.seed + args.seeds - 1 > config_mod.SEED_MAX:
            raise UserError(f"--seeds {args.seeds}: its last seed, {cfg.seed + args.seeds - 1}, is above the "
                            f"largest, {config_mod.SEED_MAX}")
        check(rule, cfg)
        if args.dry_run:
            print(json.dumps(cfg.to_json(), indent=2))
        elif args.seeds > 1:
            run_seeds(rule, cfg, args.seeds, command)
        else:
            run_one(rule, cfg, None, command)
        return 0
    except RunDiverged as stop:
        print(stop, file=sys.stderr)
        return DIVERGED_EXIT
    except UserInterrupt as stop:
        print(f"interrupted; continue with: {rule.command} --resume {stop.folder}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
