"""The original code's EP (neurophysics-cnrsthales/unsupervised-target), imported unchanged from a checkout,
with one of our semi-supervised EP runs' phase-1 network in it: what the diagnostics comparing the two share.

Their ep/ and funcs/ import torchvision and pandas, which the functions used here do not call: both are
stubbed while importing (torchvision cannot be installed here).
"""
import sys
import types
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
from funcs import config, data as data_mod  # noqa: E402
from funcs.semi import split_labeled  # noqa: E402


def hardsigm(x):  # the original's ep/main.py's, as named functions for TorchScript
    return x.clamp(min=0).clamp(max=1)


def hardsigm_prime(x):
    return (x >= 0) & (x <= 1)


class _Unused(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Unused(name) if name.islower() else type(name, (), {})


def import_original(root: str):
    """Their ep.network, ep.train_test and ep.actions, imported under their own package names; ours restored."""
    ours = {name: mod for name, mod in sys.modules.items() if name.split(".")[0] in ("ep", "funcs")}
    for name in ours:
        del sys.modules[name]
    stubs = ("pandas", "torchvision", "torchvision.transforms")
    for name in stubs:
        sys.modules[name] = _Unused(name)
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


class Setup:
    """A semi-supervised EP run (config.json, pretrained.pt) seen by both codes: our config, data and labeled
    subset, their jparams (layer lists output first, as their ep/main.py turns them) and their network
    holding our phase-1 weights."""

    def __init__(self, original: str, run: str, data_dir: str, device: str = "cpu"):
        self.network, self.train_test, self.actions = import_original(original)
        self.cfg = cfg = config.load(run, [f"data_dir={data_dir}", "device=-1"])
        if cfg.activation_function != "hardsigm" or cfg.loss != "Cross-entropy":
            sys.exit(f"{run}: written for the semi_ep presets (hardsigm, Cross-entropy)")
        self.pretrained = torch.load(Path(run) / "pretrained.pt", weights_only=True, map_location="cpu")
        self.data = data_mod.load_dataset(cfg.dataset, data_dir)
        self.labeled, self.unlabeled = split_labeled(self.data.train.y, cfg.train_label_number, cfg.n_class,
                                                     self.pretrained["semi_seed"])
        gpu = device.startswith("cuda")
        self.jparams = dict(fcLayers=cfg.fcLayers[::-1], lr=list(cfg.lr[::-1]), dropProb=list(cfg.drop_probs[::-1]),
                            T=cfg.T, Kmax=cfg.Kmax, dt=cfg.dt, beta=cfg.beta, clamped=bool(cfg.clamped),
                            batchSize=cfg.batchSize, error_estimate=cfg.error_estimate, gamma=cfg.gamma,
                            eta=cfg.eta, loss=cfg.loss, nudge=cfg.nudge, smooth=cfg.smooth, dropout=True,
                            device=int(device.split(":")[1]) if gpu else -1, n_class=cfg.n_class,
                            optimizer=cfg.optimizer, epochs=cfg.epochs)
        self.theirs = torch.jit.script(self.network.MlpEP(self.jparams, hardsigm, hardsigm_prime))
        self.load_ours(self.pretrained["model"])

    def load_ours(self, state: dict) -> None:
        """Our state dict into their network (ours: layers[0] input -> hidden ... read-out last; theirs: W[0]
        the read-out, W[-1] from the input, each transposed)."""
        n = len(self.cfg.fcLayers) - 1
        with torch.no_grad():
            for i in range(n):
                self.theirs.W[i].copy_(state[f"layers.{n - 1 - i}.weight"].t())
                self.theirs.bias[i].copy_(state[f"layers.{n - 1 - i}.bias"])
