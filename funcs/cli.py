"""The command line both entry points share: `python -m bp.main` and `python -m ep.main` differ only in their rule.

config -> data -> learner -> run folder -> loop.train -> summary.json, each
step one call. Everything that can fail on user input fails before a run
folder exists; a user mistake is one line on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from funcs import config as config_mod
from funcs import data as data_mod
from funcs import loop, results
from funcs.errors import UserError


@dataclass(frozen=True)
class Rule:
    """What a learning rule plugs into the shared CLI: its name, the actions it trains, its learner factory."""
    name: str
    actions: tuple[str, ...]
    build: Callable  # (cfg, device) -> Learner
    default_config: str


def parse_args(rule: Rule, argv):
    p = argparse.ArgumentParser(prog=f"python -m {rule.name}.main",
                                description=f"Train a network with {rule.name.upper()} and the self-defined target.")
    p.add_argument("--json_path", default=rule.default_config,
                   help="folder holding config.json, or a .json file (default: %(default)s)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key; VALUE is JSON (e.g. --set epochs=2 --set fcLayers=[784,100])")
    p.add_argument("--out", help="run folder (default: DATA-0/<date>/<action>-<n>/)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last checkpoint")
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


def check_supported(rule: Rule, cfg) -> None:
    if cfg.action not in rule.actions:
        other = "ep" if rule.name == "bp" else "bp"
        where = f"python -m {other}.main" if cfg.rule != rule.name else "a later version (semi-supervised issue #4)"
        raise UserError(f"config key 'action': '{cfg.action}' is not trained by python -m {rule.name}.main "
                        f"(it trains {', '.join(rule.actions)}); use {where}")


def prepare(rule: Rule, cfg):
    """Data on the device and a fresh learner: everything that may fail on user input, before any folder."""
    check_supported(rule, cfg)
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    learner = rule.build(cfg, device)
    dataset = shrink(data_mod.load_dataset(cfg.dataset, cfg.data_dir, device=device), cfg)
    if cfg.n_class != dataset.n_class:
        raise UserError(f"config key 'n_class': {cfg.n_class}, but {cfg.dataset} has {dataset.n_class} classes")
    n_in = dataset.shape[0] * dataset.shape[1] * dataset.shape[2]
    if not cfg.cnn and cfg.fcLayers[0] != n_in:
        raise UserError(f"config key 'fcLayers': input size {cfg.fcLayers[0]}, but {cfg.dataset} images have "
                        f"{n_in} pixels")
    # The learner was built right after seeding, so its initial weights depend on the seed alone.
    return device, dataset, learner


def shrink(dataset, cfg):
    """Apply `train_size` (seeded, class-balanced) and `test_size` (the first ones) for quick runs."""
    for key, split in (("train_size", dataset.train), ("test_size", dataset.test)):
        size = getattr(cfg, key)
        if size is not None and size > split.y.shape[0]:
            raise UserError(f"config key '{key}': {size}, but {cfg.dataset} has only {split.y.shape[0]}")
    train, test = dataset.train, dataset.test
    if cfg.train_size is not None:
        train = data_mod.subset(train, cfg.train_size, torch.Generator().manual_seed(cfg.seed))
    if cfg.test_size is not None:
        test = data_mod.subset(test, cfg.test_size)
    return dataclasses.replace(dataset, train=train, test=test)


def train(rule: Rule, cfg, run: results.Run | None = None, resume: bool = False, prepared=None) -> dict:
    """Train one config and return its final metrics: the call the search makes for every trial.

    run: where rows and checkpoints go (None keeps everything in memory);
    resume: continue from the run's last checkpoint; prepared: `prepare`'s result if already made.
    """
    device, dataset, learner = prepared or prepare(rule, cfg)
    state = run.load_checkpoint() if resume and run is not None else None
    if run is None:
        return loop.train(cfg, dataset, learner)
    run.log(f"{rule.name}: {cfg.action} on {cfg.dataset}, {list(cfg.fcLayers)}, seed {cfg.seed}, "
            f"device {device}, folder {run.folder}" + (f", resuming after epoch {state['epoch']}" if state else ""))
    run.start_progress(cfg.epochs, state["epoch"] if state else 0)
    try:
        return loop.train(cfg, dataset, learner, run=run, state=state)
    finally:
        run.stop_progress()


def run_one(rule: Rule, cfg, folder: Path | None, argv, resume: bool = False) -> dict:
    """Train one config into one run folder; returns its summary."""
    prepared = prepare(rule, cfg)  # fails on user input before any folder exists
    run = results.Run.open(folder) if resume else results.Run.create(cfg, folder)
    metrics = train(rule, cfg, run, resume=resume, prepared=prepared)
    summary = run.write_summary(cfg, metrics, str(prepared[0]), argv)
    run.log("final test accuracy (%): " + ", ".join(f"{k} {v}" for k, v in summary["accuracy_percent"].items()))
    return summary


def run_seeds(rule: Rule, cfg, n: int, argv) -> None:
    """N runs with seeds seed..seed+N-1 under one folder, then their mean and standard deviation."""
    root = Path(cfg.out_dir or results.default_folder(cfg.action))
    summaries = []
    for seed in range(cfg.seed, cfg.seed + n):
        one = config_mod.replace(cfg, seed=seed, out_dir=str(root / f"S-{seed}"))
        summaries.append(run_one(rule, one, None, argv))
    stats = results.seeds_summary(summaries)
    results.write_json(root / "seeds_summary.json", stats)
    print("over seeds " + ", ".join(map(str, stats["seeds"])) + ": " +
          ", ".join(f"{k} {stats['mean'][k]} ({stats['std'][k]})" for k in stats["mean"]))


def main(rule: Rule, argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(rule, argv)
    command = [f"python -m {rule.name}.main", *argv]
    try:
        if args.resume:
            if args.set or args.out or args.seeds != 1:
                raise UserError("--resume continues a run with its saved config; it takes no --set, --out or --seeds")
            cfg = config_mod.load(Path(args.resume) / "config.json")
            run_one(rule, cfg, Path(args.resume), command, resume=True)
            return 0
        cfg = config_mod.load(args.json_path, args.set)
        if args.out:
            cfg = config_mod.replace(cfg, out_dir=args.out)
        if args.seeds < 1:
            raise UserError(f"--seeds must be at least 1, got {args.seeds}")
        if args.dry_run:
            check_supported(rule, cfg)
            print(json.dumps(cfg.to_json(), indent=2))
            return 0
        if args.seeds > 1:
            run_seeds(rule, cfg, args.seeds, command)
        else:
            run_one(rule, cfg, None, command)
        return 0
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; continue with --resume RUN_DIR", file=sys.stderr)
        return 130
