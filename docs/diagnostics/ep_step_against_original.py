"""Our semi-supervised EP training steps against the original code's, from the same network and randomness.

    python docs/diagnostics/ep_step_against_original.py ORIGINAL RUN_DIR [--data_dir data] [--batches 1]

ORIGINAL: a checkout of neurophysics-cnrsthales/unsupervised-target (its ep/ and funcs/ are imported
unchanged; torchvision and pandas, which they import but these functions do not use, are stubbed).
RUN_DIR: a semi-supervised EP run (config.json, pretrained.pt). Both codes start from its phase-1 network
and take the same mini-batches with the same dropout masks and nudging signs, through the original's
train_unsupervised_ep (unlabeled batches, self-defined target, homeostasis) and train_supervised_ep
(labeled batches) and through our learner and target, with readout_state "free" and "nudged". Printed
for each layer: ||ours - theirs|| / ||theirs|| of the last batch's gradient and of the weights' change over
the batches (one Adam step per batch, each half with a fresh optimizer, as in phase 2). With one batch (the
default) both codes start from the same weights, so any difference is in how a step is computed.
The result is in simuResults/README.md (section "Table 5 at full length").
"""
import argparse
import types

import torch

from original_ep import REPO, Setup  # noqa: F401  (REPO: puts ours on the path)
from ep import learner as ep_learner  # noqa: E402
from funcs import config  # noqa: E402
from funcs.target import Target  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("original")
    parser.add_argument("run")
    parser.add_argument("--data_dir", default="data")
    parser.add_argument("--batches", type=int, default=1)
    args = parser.parse_args()
    setup = Setup(args.original, args.run, args.data_dir)
    cfg, data, theirs, jparams, train_test = setup.cfg, setup.data, setup.theirs, setup.jparams, setup.train_test
    pre, labeled, unlabeled = setup.pretrained, setup.labeled, setup.unlabeled
    n = len(cfg.fcLayers) - 1
    learners = {}
    for state in ("free", "nudged"):
        learners[state] = ep_learner.build(config.load(args.run, [f"data_dir={args.data_dir}", "device=-1",
                                                                   f'readout_state="{state}"']), "cpu")
        learners[state].net.load_state_dict(pre["model"])

    gen = torch.Generator().manual_seed(0)
    for kind, pool, size in (("unsupervised", unlabeled, cfg.batchSize), ("supervised", labeled, cfg.pre_batchSize)):
        idx = [pool[torch.randperm(len(pool), generator=gen)[:size]] for _ in range(args.batches)]
        xs = [data.train.x[i].flatten(1).float() for i in idx]
        masks = [[(torch.rand(x.shape[0], m, generator=gen) >= p).float() for m, p in zip(cfg.fcLayers, cfg.drop_probs)]
                 for x in xs]
        signs = [1.0 if torch.rand((), generator=gen) < 0.5 else -1.0 for _ in xs]
        start = [w.detach().clone() for w in theirs.W]

        # theirs: their loop over these batches with a fresh optimizer (each half has its own, in both codes),
        # their dropout and sign draws replaced by ours
        _, optimizer = setup.actions.define_optimizer(theirs, jparams["lr"], cfg.optimizer)
        queue_masks, queue_signs = [m[::-1] for m in masks], list(signs)
        train_test.drop_all_layers = lambda s, p: queue_masks.pop(0)
        proxy = types.ModuleType("torch")
        proxy.__getattr__ = lambda name: getattr(torch, name)
        proxy.randn = lambda *a, **k: torch.tensor([queue_signs.pop(0)])
        train_test.torch = proxy
        if kind == "unsupervised":
            train_test.train_unsupervised_ep(theirs, jparams, [(x, None) for x in xs], optimizer, 0)
        else:
            loader = [(x, torch.nn.functional.one_hot(data.train.y[i], cfg.n_class)) for x, i in zip(xs, idx)]
            train_test.train_supervised_ep(theirs, jparams, loader, optimizer, 0)

        print(f"{kind}, {args.batches} batches of {size}:")
        for state, learner in learners.items():  # ours: the same batches through our learner and target
            mine = learner.sibling(learner.lrs)  # a fresh optimizer
            target = Target.from_config(cfg, kind=kind)
            queue_masks, queue_signs = [m[:-1] + [None] for m in masks], list(signs)  # no read-out dropout
            mine._masks = lambda batch, device: queue_masks.pop(0)
            mine._beta = lambda: queue_signs.pop(0) * cfg.beta
            for x, i in zip(xs, idx):
                out, mask = mine.output(x)
                mine.learn(target(out, data.train.y[i], mask))
            for j in range(n):
                layer, tw = learner.net.layers[n - 1 - j], theirs.W[j]
                grad = (layer.weight.grad - tw.grad.t()).norm() / tw.grad.norm()
                theirs_step = tw.detach() - start[j]
                step = (layer.weight.detach() - start[j].t() - theirs_step.t()).norm() / theirs_step.norm()
                print(f"  readout_state {state}, {'read-out' if j == 0 else f'layer {n - j}'}: last batch's gradient "
                      f"differs by {grad:.1e} of its size; the weights' change over the steps by {step:.1e}")
            with torch.no_grad():  # both start the next half from the original's weights
                for j in range(n):
                    learner.net.layers[n - 1 - j].weight.copy_(theirs.W[j].t())
                    learner.net.layers[n - 1 - j].bias.copy_(theirs.bias[j])


if __name__ == "__main__":
    main()
