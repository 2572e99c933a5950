"""Training throughput of the BP presets: samples per second and seconds per epoch, printed as JSON.

    python -m bench.bp_throughput [--presets unsupervised_bp/1layer ...] [--samples 8000] [--repeats 3]

Times `loop.train_epoch` (the real training step: forward, target, loss, backward,
update) on a slice of MNIST, and the per-epoch evaluation (direct association on
the training set and the test set) separately. A full epoch's seconds are
extrapolated from the measured rate; the best of `repeats` is reported, since
other processes on the machine only ever slow a repeat down.
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from bp.main import RULE
from funcs import cli, config, loop
from funcs.target import Target


def measure(preset: str, samples: int, repeats: int, data_dir: str) -> dict:
    cfg = config.replace(config.load(f"configFile/{preset}"), data_dir=data_dir, device=-1)
    _, dataset, learner = cli.prepare(RULE, cfg)
    target = Target.from_config(cfg)
    x, y = dataset.train.x[:samples], dataset.train.y[:samples]
    loop.train_epoch(learner, target, x[:50 * cfg.batchSize], y[:50 * cfg.batchSize], cfg.batchSize)  # warm-up
    train_s = []
    for _ in range(repeats):
        tic = time.perf_counter()
        loop.train_epoch(learner, target, x, y, cfg.batchSize)
        train_s.append(time.perf_counter() - tic)
    evaluate = loop.Evaluator(cfg, dataset, loop.labeled_split(dataset, loop.association_indices(cfg, dataset)))
    eval_s = []
    for _ in range(max(1, repeats // 2)):
        tic = time.perf_counter()
        evaluate(learner)
        eval_s.append(time.perf_counter() - tic)
    rate = samples / min(train_s)
    n_train = dataset.train.y.shape[0]
    return {"preset": preset, "fcLayers": list(cfg.fcLayers), "batchSize": cfg.batchSize,
            "samples_timed": samples, "samples_per_second": round(rate, 1),
            "train_seconds_per_epoch": round(n_train / rate, 2),
            "eval_seconds_per_epoch": round(min(eval_s), 2),
            "seconds_per_epoch": round(n_train / rate + min(eval_s), 2)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=["unsupervised_bp/1layer", "unsupervised_bp/2layer"])
    p.add_argument("--samples", type=int, default=8000, help="training samples timed per repeat")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--data_dir", default="data")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = {"machine": {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
                       "threads": torch.get_num_threads()},
           "results": [measure(preset, args.samples, args.repeats, args.data_dir) for preset in args.presets]}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
