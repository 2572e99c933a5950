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
import sys
import types
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from ep import learner as ep_learner  # noqa: E402
from funcs import config, data as data_mod  # noqa: E402
from funcs.semi import split_labeled  # noqa: E402
from funcs.target import Target  # noqa: E402


def hardsigm(x):  # the original's ep/main.py's, as a named function for TorchScript
    return x.clamp(min=0).clamp(max=1)


def hardsigm_prime(x):
    return (x >= 0) & (x <= 1)


def import_original(root: str):
    """The original's ep.network, ep.train_test and ep.actions, imported under their own package names."""
    class Unused(types.ModuleType):
        def __getattr__(self, name):
            if name.startswith("__"):
                raise AttributeError(name)
            return Unused(name) if name.islower() else type(name, (), {})
    ours = {name: mod for name, mod in sys.modules.items() if name.split(".")[0] in ("ep", "funcs")}
    for name in ours:
        del sys.modules[name]
    stubs = ("pandas", "torchvision", "torchvision.transforms")
    for name in stubs:
        sys.modules[name] = Unused(name)
    saved_path = sys.path[:]  # their funcs/ is a namespace package: ours, a regular one, would win anywhere on the path
    sys.path[:] = [root] + [p for p in sys.path if Path(p or ".").resolve() != REPO]
    try:
        import ep.actions
        import ep.network
        import ep.train_test
        mods = ep.network, ep.train_test, ep.actions
    finally:
        sys.path[:] = saved_path
        for name in [n for n in sys.modules if n.split(".")[0] in ("ep", "funcs") or n in stubs]:
            del sys.modules[name]
        sys.modules.update(ours)
    return mods


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("original")
    parser.add_argument("run")
    parser.add_argument("--data_dir", default="data")
    parser.add_argument("--batches", type=int, default=1)
    args = parser.parse_args()
    network, train_test, actions = import_original(args.original)
    cfg = config.load(args.run, [f"data_dir={args.data_dir}", "device=-1"])
    assert cfg.activation_function == "hardsigm" and cfg.loss == "Cross-entropy", "written for the semi_ep presets"
    pre = torch.load(Path(args.run) / "pretrained.pt", weights_only=True)
    data = data_mod.load_dataset(cfg.dataset, args.data_dir)
    labeled, unlabeled = split_labeled(data.train.y, cfg.train_label_number, cfg.n_class, pre["semi_seed"])

    jparams = dict(fcLayers=cfg.fcLayers[::-1], lr=list(cfg.lr[::-1]), dropProb=list(cfg.drop_probs[::-1]),
                   T=cfg.T, Kmax=cfg.Kmax, dt=cfg.dt, beta=cfg.beta, clamped=bool(cfg.clamped),
                   batchSize=cfg.batchSize, error_estimate=cfg.error_estimate, gamma=cfg.gamma, eta=cfg.eta,
                   loss=cfg.loss, nudge=cfg.nudge, smooth=cfg.smooth, dropout=True, device=-1, n_class=cfg.n_class)
    theirs = torch.jit.script(network.MlpEP(jparams, hardsigm, hardsigm_prime))
    n = len(cfg.fcLayers) - 1  # ours: layers[0] input -> hidden, layers[-1] read-out; theirs: W[0] read-out
    with torch.no_grad():
        for i in range(n):
            theirs.W[i].copy_(pre["model"][f"layers.{n - 1 - i}.weight"].t())
            theirs.bias[i].copy_(pre["model"][f"layers.{n - 1 - i}.bias"])
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
        _, optimizer = actions.define_optimizer(theirs, jparams["lr"], cfg.optimizer)
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
            queue_masks, queue_signs = [[m[0], m[1], None] for m in masks], list(signs)
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
