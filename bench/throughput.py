"""Training and evaluation speed of presets, for any rule: samples per second and seconds per epoch, as JSON.

    python -m bench.throughput --presets unsupervised_bp/1layer unsupervised_ep/1layer [--samples 8000]

Times `loop.train_epoch` (the real training step: output, target, update) on a
slice of MNIST, and the evaluation outputs (inference on the association's
labeled examples and on the test set) on a slice as well. A full epoch's
seconds are extrapolated from the measured rates; the best of `repeats` is
reported, since other processes on the machine only ever slow a repeat down.
`variants` lets a rule's benchmark time its learner with a speed-up switched off.
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from funcs import cli, config, loop, rules
from funcs.target import Target


def best_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        fn()
        times.append(time.perf_counter() - tic)
    return min(times)


def measure(preset: str, samples: int, eval_samples: int, repeats: int, data_dir: str,
            variant: str = "default", tweak=None, kind: str | None = None, batch_size: int | None = None,
            device: int = -1) -> dict:
    """Time one preset; `tweak(learner)` switches a speed-up off for a variant.

    kind, batch_size: the target and mini-batch size to train with, if not the
    config's (one half of a semi-supervised epoch); device: -1 for the CPU, N for GPU N.
    """
    cfg = config.replace(config.load(f"configFile/{preset}"), data_dir=data_dir, device=device)
    _, dataset, learner = cli.prepare(rules.of(cfg), cfg)
    sync = torch.cuda.synchronize if dataset.train.x.is_cuda else (lambda: None)
    if tweak is not None:
        tweak(learner)
    if kind is None and cfg.target_kind == "semi_supervised":
        kind = "supervised"
    target = Target.from_config(cfg, kind=kind, device=dataset.train.x.device)
    batch = batch_size or cfg.batchSize
    x, y = dataset.train.x[:samples], dataset.train.y[:samples]
    warm = min(samples, 5 * batch)
    loop.train_epoch(learner, target, x[:warm], y[:warm], batch)
    sync()
    train_s = best_seconds(lambda: (loop.train_epoch(learner, target, x, y, batch), sync()), repeats)
    x_eval = dataset.test.x[:eval_samples]
    eval_s = best_seconds(lambda: (loop.outputs(learner, x_eval, cfg.test_batchSize), sync()), max(1, repeats // 2))
    n_train, n_eval = dataset.train.y.shape[0], dataset.train.y.shape[0] + dataset.test.y.shape[0]
    rate, eval_rate = samples / train_s, x_eval.shape[0] / eval_s
    return {"preset": preset, "variant": variant, "fcLayers": list(cfg.fcLayers), "batchSize": batch,
            "samples_timed": samples, "eval_samples_timed": x_eval.shape[0],
            "samples_per_second": round(rate, 1), "train_seconds_per_epoch": round(n_train / rate, 2),
            "eval_seconds_per_epoch": round(n_eval / eval_rate, 2),
            "seconds_per_epoch": round(n_train / rate + n_eval / eval_rate, 2)}


def parse(description: str, presets: list[str], argv=None, variants: bool = False):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--presets", nargs="+", default=presets)
    if variants:
        p.add_argument("--variants", nargs="+", default=None, help="time only these variants (default: all)")
    p.add_argument("--samples", type=int, default=8000, help="training samples timed per repeat")
    p.add_argument("--eval-samples", type=int, default=10000, help="test samples whose inference is timed")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--data_dir", default="data")
    p.add_argument("--device", type=int, default=-1, help="-1: the CPU; N: GPU N")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    return args


def report(results: list[dict]) -> None:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    print(json.dumps({"machine": {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
                                  "threads": torch.get_num_threads(), "gpu": gpu}, "results": results}, indent=2))


def main(argv=None) -> None:
    args = parse(__doc__.splitlines()[0], ["unsupervised_bp/1layer", "unsupervised_ep/1layer"], argv)
    report([measure(preset, args.samples, args.eval_samples, args.repeats, args.data_dir, device=args.device)
            for preset in args.presets])


if __name__ == "__main__":
    main()
