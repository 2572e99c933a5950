"""Phase 2 of a semi-supervised EP run, trained by the original code from our phase-1 network.

    python docs/diagnostics/original_ep_phase2.py ORIGINAL RUN_DIR OUT [--epochs N] [--device cuda:0]

ORIGINAL: a checkout of neurophysics-cnrsthales/unsupervised-target; RUN_DIR: one of our semi-supervised EP
runs (config.json, pretrained.pt). Their train_unsupervised_ep, train_supervised_ep and test_supervised_ep
(unchanged) run phase 2 in the order and with the learning-rate schedules of their
ep/actions.semi_supervised_ep, whose loop is re-typed below without its phase 1; the data and the labeled
subset are ours (their loaders need torchvision). OUT gets results.csv (per epoch: both test errors as their
semi_supervised.csv, the share of hidden units silent on 2,000 test images, the weights' norms) and a
checkpoint after every epoch: the same command continues an interrupted run.

Why: our EP 100-label run collapses after phase-2 epoch ~80 (simuResults/README.md, "Table 5 at full
length"); this says whether the original code, from the same network, does too. On this CPU an epoch takes
about 10 minutes (their dynamics recompute the input's drive at every step), so it is a job for a GPU.
"""
import argparse
import csv
import os
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

from original_ep import Setup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("original")
    parser.add_argument("run")
    parser.add_argument("out")
    parser.add_argument("--epochs", type=int, default=None, help="stop after this phase-2 epoch (default: all)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data_dir", default="data")
    parser.add_argument("--subset", type=int, default=None,
                        help="only the first N unlabeled and test images (a quick check of the script)")
    args = parser.parse_args()
    torch.manual_seed(1)
    setup = Setup(args.original, args.run, args.data_dir, args.device)
    cfg, net, jp, tt, data = setup.cfg, setup.theirs, setup.jparams, setup.train_test, setup.data
    train_x, test_x = data.train.x.flatten(1).float(), data.test.x.flatten(1).float()[:args.subset]
    unlabeled = setup.unlabeled[:args.subset]
    one_hot = torch.nn.functional.one_hot(data.train.y[setup.labeled], cfg.n_class)
    supervised = DataLoader(TensorDataset(train_x[setup.labeled], one_hot), batch_size=cfg.pre_batchSize, shuffle=True)
    unsupervised = DataLoader(TensorDataset(train_x[unlabeled], data.train.y[unlabeled]), batch_size=cfg.batchSize,
                              shuffle=True)
    test = DataLoader(TensorDataset(test_x, data.test.y[:args.subset]), batch_size=cfg.test_batchSize, shuffle=False)
    # as their semi_supervised_ep: one optimizer and one linear schedule per half
    _, u_opt = setup.actions.define_optimizer(net, jp["lr"], cfg.optimizer)
    _, s_opt = setup.actions.define_optimizer(net, jp["lr"], cfg.optimizer)
    u_sched = torch.optim.lr_scheduler.LinearLR(u_opt, start_factor=0.001, end_factor=0.1, total_iters=cfg.epochs)
    s_sched = torch.optim.lr_scheduler.LinearLR(s_opt, start_factor=0.2, end_factor=0.03, total_iters=cfg.epochs)
    parts = {"u_opt": u_opt, "s_opt": s_opt, "u_sched": u_sched, "s_sched": s_sched}

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint, start = out / "checkpoint.pt", 0
    if checkpoint.exists():
        saved = torch.load(checkpoint, weights_only=False, map_location="cpu")
        with torch.no_grad():
            for mine, w in zip(list(net.W) + list(net.bias), saved["W"] + saved["bias"]):
                mine.copy_(w)
        for name, part in parts.items():
            part.load_state_dict(saved[name])
        torch.set_rng_state(saved["rng"])
        start = saved["epoch"]
        print(f"resuming after phase-2 epoch {start}", flush=True)

    def silent_share() -> float:
        s = net.forward([t.to(net.device) for t in net.init_state(test_x[:2000])])
        return (s[1].amax(0) <= 0).float().mean().item()

    print(f"phase-2 epoch {start}: test error {tt.test_supervised_ep(net, cfg.n_class, test).item():.4f}", flush=True)
    for epoch in range(start, min(args.epochs or cfg.epochs, cfg.epochs)):
        began = time.time()
        tt.train_unsupervised_ep(net, jp, unsupervised, u_opt, epoch)
        after_unsupervised = tt.test_supervised_ep(net, cfg.n_class, test).item()
        u_sched.step()
        tt.train_supervised_ep(net, jp, supervised, s_opt, epoch)
        after_supervised = tt.test_supervised_ep(net, cfg.n_class, test).item()
        s_sched.step()
        row = {"epoch": epoch + 1, "Unsupervised_Test_Error": after_unsupervised,
               "Supervised_Test_Error": after_supervised, "silent_hidden_share": silent_share(),
               "readout_weight_norm": net.W[0].norm().item(), "input_weight_norm": net.W[-1].norm().item(),
               "seconds": time.time() - began}
        results = out / "results.csv"
        new = not results.exists()
        with open(results, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)
        state = {"W": [w.detach().cpu() for w in net.W], "bias": [b.detach().cpu() for b in net.bias],
                 "rng": torch.get_rng_state(), "epoch": epoch + 1,
                 **{name: part.state_dict() for name, part in parts.items()}}
        torch.save(state, str(checkpoint) + ".tmp")
        os.replace(str(checkpoint) + ".tmp", checkpoint)
        print(" ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)


if __name__ == "__main__":
    main()
