"""Training speed from a run's own checkpoint with subnormal floats kept and flushed to zero, as JSON.

    python -m bench.denormals RUN_FOLDER [--samples 8000] [--repeats 2] [--threads 2] [--data_dir data]

Adam's moment estimates for inputs that are almost never active (MNIST's border pixels) decay into the
subnormal range (below 1.2e-38), where an x86 CPU takes a slow path for each operation on them, so a long
run slows down epoch after epoch; importing funcs.cli flushes them to zero. This restores RUN_FOLDER's
checkpoint.pt (a semi-supervised run: its phase-2 unsupervised half; any other: its training) and trains
`samples` examples from it with the same random states, in two processes: one that keeps subnormals (as
torch does by default) and one that flushes them. Each process sets its mode before torch's thread pool
starts, since each thread keeps the mode it started with. Reported: the subnormal values in the optimizers'
state, the seconds of each (best of `repeats`, each from the checkpoint again) and the largest difference
between the weights the two trainings end with.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from funcs import cli, config, loop, rules, semi
from funcs.target import Target


def subnormals(state) -> tuple[int, int]:
    """(subnormal, all) float values in a nested state dict; counted right only while subnormals are kept."""
    counts = [0, 0]
    for t in loop._tensors(state):
        if t.is_floating_point():
            a = t.abs()
            counts[0] += int(((a > 0) & (a < torch.finfo(t.dtype).tiny)).sum())
            counts[1] += t.numel()
    return counts[0], counts[1]


def restored(folder: Path, data_dir: str):
    """A fresh learner and target at the checkpoint's state, and the examples its next epoch trains on."""
    cfg = config.replace(config.load(folder), data_dir=data_dir, device=-1)
    _, data, learner = cli.prepare(rules.of(cfg), cfg)
    state = torch.load(folder / "checkpoint.pt", map_location="cpu", weights_only=False)
    if cfg.target_kind == "semi_supervised":
        _, unlabeled = semi.split_labeled(data.train.y, cfg.train_label_number, cfg.n_class, state["semi_seed"],
                                          cfg.label_draw)
        team = semi.siblings(cfg, learner)
        trained = team.learners["unsupervised"]  # phase 2's unsupervised half
        target = Target.from_config(cfg, kind="unsupervised", device=data.train.x.device)
        loop.restore(state, team, target, data.train.x.device)
        x, y = data.train.x[unlabeled], data.train.y[unlabeled]
    else:
        trained, target = learner, Target.from_config(cfg, device=data.train.x.device)
        loop.restore(state, learner, target, data.train.x.device)
        x, y = data.train.x, data.train.y
    return cfg, trained, target, x, y, state["epoch"]


def one_mode(args) -> dict:
    """The child process: train in one mode, save the final weights to args.weights, return its numbers."""
    best, counted = float("inf"), None
    for _ in range(args.repeats):
        cfg, learner, target, x, y, epoch = restored(args.folder, args.data_dir)
        if counted is None:
            counted = subnormals(learner.state_dict().get("optimizer", {}))
        tic = time.perf_counter()
        loop.train_epoch(learner, target, x[:args.samples], y[:args.samples], cfg.batchSize)
        best = min(best, time.perf_counter() - tic)
    torch.save(learner.state_dict()["model"], args.weights)
    return {"seconds": best, "epoch_seconds": best * x.shape[0] / args.samples, "optimizer_values": counted[1],
            "subnormal_values": counted[0], "action": cfg.action, "fcLayers": list(cfg.fcLayers),
            "batchSize": cfg.batchSize, "after_epoch": epoch, "threads": torch.get_num_threads()}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path, help="a run folder with config.json and checkpoint.pt")
    p.add_argument("--samples", type=int, default=8000, help="training examples timed per repeat")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--data_dir", default="data")
    p.add_argument("--mode", choices=["kept", "flushed"], help=argparse.SUPPRESS)  # the child processes
    p.add_argument("--weights", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.mode:
        torch.set_flush_denormal(args.mode == "flushed")  # before any operation starts the thread pool
        if args.threads:
            torch.set_num_threads(args.threads)
        print(json.dumps(one_mode(args)))
        return
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("kept", "flushed"):
            weights = Path(tmp) / f"{mode}.pt"
            child = subprocess.run([sys.executable, "-m", "bench.denormals", *(argv or sys.argv[1:]), "--mode", mode,
                                    "--weights", str(weights)], capture_output=True, text=True, check=True)
            runs[mode] = {**json.loads(child.stdout.splitlines()[-1]), "weights": torch.load(weights)}
    kept, flushed = runs["kept"], runs["flushed"]
    diff = max((a - b).abs().max().item() for a, b in zip(loop._tensors(kept["weights"]),
                                                          loop._tensors(flushed["weights"])))
    print(json.dumps({
        "machine": {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
                    "threads": kept["threads"]},
        "run": str(args.folder), **{k: kept[k] for k in ("action", "fcLayers", "batchSize", "after_epoch")},
        "optimizer_values": kept["optimizer_values"], "subnormal_values": kept["subnormal_values"],
        "samples_timed": args.samples,
        "seconds_kept": round(kept["seconds"], 3), "seconds_flushed": round(flushed["seconds"], 3),
        "speedup": round(kept["seconds"] / flushed["seconds"], 2),
        "epoch_seconds_kept": round(kept["epoch_seconds"], 1),
        "epoch_seconds_flushed": round(flushed["epoch_seconds"], 1),
        "max_weight_difference": diff}, indent=2))


if __name__ == "__main__":
    main()
