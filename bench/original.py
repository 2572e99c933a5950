"""Training speed of the ORIGINAL code (neurophysics-cnrsthales/unsupervised-target) on bench.throughput's workload.

    python -m bench.original --checkout DIR [--presets unsupervised_bp/1layer unsupervised_ep/1layer]
                             [--samples 8000] [--threads N] [--repeats 3] [--data_dir data]

DIR is a checkout of the original repository; nothing of it is copied here. For
each preset, its config is the original's DIR/configFile/<preset>/config.json,
and the images are the ones bench.throughput.measure trains on: the first
`samples` training images from our loader (funcs.data, after our preset's
train_size, if it has one), flattened as the original's ReshapeTransform does,
in one fixed shuffled order, cut into mini-batches of the config's batchSize.
Timed: one call of the original's unsupervised training function over that
list of pre-made batches (its DataLoader's overhead is left out of both sides),
with the original's network and optimizer on the CPU, after a warm-up on the
first 5 batches; best of `repeats`. Seconds per epoch are extrapolated to our
loader's full training set (60,000 MNIST images), as bench.throughput does.

The original's packages are named bp, ep and funcs like ours, so it runs in a
child process whose sys.path starts with DIR and holds no entry for this
repository; the parent writes the images to a temporary .pt file. Its numbers
compare with bench.throughput's only when both ran on the same quiet machine
with the same threads.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MARK = "@@bench.original@@ "
WARM_BATCHES = 5

# Run as `python -c CHILD SPEC_JSON` with cwd=DIR: only the original's packages can be imported as bp/ep/funcs.
CHILD = r'''
import importlib.abc, importlib.machinery, json, os, sys, time, types

spec = json.loads(sys.argv[1])
checkout = spec["checkout"]
# DIR first, and no entry for our repository ('' is the cwd, DIR itself): bp, ep, funcs are the original's.
sys.path = [checkout] + [p for p in sys.path[1:]
                         if p and os.path.realpath(p) not in (spec["repo"], os.path.realpath(checkout))]


class _Meta(type):
    """Any attribute of a stubbed class is another class: `torchvision.datasets.CIFAR10` can be subclassed."""
    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Meta(name, (), {})


class _StubModule(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        value = _Meta(name, (), {})
        setattr(self, name, value)
        return value


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Empty modules for packages this environment lacks and the timed code never calls.

    The original imports them at module level: funcs/data.py imports torchvision (its
    datasets and transforms, used only to build its DataLoaders, which the timing replaces
    with a list of batches), funcs/tools.py pandas (its result tables).
    """
    def __init__(self):
        self.roots = set()

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.roots:
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, module_spec):
        return _StubModule(module_spec.name)

    def exec_module(self, module):
        pass


stubs = _StubFinder()
sys.meta_path.insert(0, stubs)


def import_original(names):
    """Import the original's modules, stubbing each missing third-party package (torchvision here) and retrying."""
    while True:
        try:
            return [__import__(n, fromlist=["_"]) for n in names]
        except ModuleNotFoundError as err:
            root = (err.name or "").split(".")[0]
            if not root or root in stubs.roots or root in ("bp", "ep", "funcs"):
                raise
            stubs.roots.add(root)
            for mod in [m for m in sys.modules if m.split(".")[0] in ("bp", "ep", "funcs")]:
                del sys.modules[mod]


import torch

if spec["threads"]:
    torch.set_num_threads(spec["threads"])
data = torch.load(spec["data"])
batch = spec["batchSize"]
batches = list(zip(data["x"].split(batch), data["y"].split(batch)))
cfg_dir = os.path.join(checkout, "configFile", spec["preset"])
notes = []

if spec["action"] == "unsupervised_bp":
    train_test, actions, network = import_original(["bp.train_test", "bp.actions", "bp.network"])
    with open(os.path.join(cfg_dir, "config.json")) as f:
        jparams = json.load(f)
    jparams["device"] = -1
    torch.manual_seed(0)
    # as bp/main.py builds it
    if jparams["cnn"]:
        net = network.CNN(jparams)
        net.prune_network(amount=jparams["cnn_prune"])
    else:
        net = network.MLP(jparams)
    _, optimizer = actions.define_optimizer(net, jparams["lr"], jparams["optimizer"])

    def train(bs):
        train_test.train_unsupervised(net, jparams, bs, 0, optimizer)
else:
    funcs_data, train_test, actions, network = import_original(
        ["funcs.data", "ep.train_test", "ep.actions", "ep.network"])
    # ep/main.py reads its config and defines rho, rhop at module level, but also builds its DataLoaders there:
    # give it no data, and the config folder as its --json_path. Its __main__ block (below, by hand) does not run.
    funcs_data.get_dataset = lambda jparams, validation=False: (None,) * 7
    sys.argv = ["ep/main.py", "--json_path", cfg_dir]
    main = __import__("ep.main", fromlist=["_"])
    jparams = main.jparams
    jparams["device"] = -1
    for key in ("fcLayers", "lr", "pre_lr", "dropProb"):  # ep/main.py: output first, input last
        jparams[key].reverse()
    torch.manual_seed(0)
    net = torch.jit.script(network.MlpEP(jparams, main.rho, main.rhop))
    if not all(bool(torch.isfinite(b).all()) for b in net.bias):
        notes.append("MlpEP's biases (torch.empty, never initialized) held non-finite values at the start")
    _, optimizer = actions.define_optimizer(net, jparams["lr"], jparams["optimizer"])

    def train(bs):
        train_test.train_unsupervised_ep(net, jparams, bs, optimizer, 0)

train(batches[:spec["warm_batches"]])
times = []
for _ in range(spec["repeats"]):
    tic = time.perf_counter()
    train(batches)
    times.append(time.perf_counter() - tic)
print("@@bench.original@@ " + json.dumps({
    "seconds": min(times), "all_seconds": times, "threads": torch.get_num_threads(), "torch": torch.__version__,
    "stubbed": sorted(stubs.roots), "notes": notes,
    "imported_from": os.path.dirname(os.path.dirname(os.path.abspath(train_test.__file__)))}))
'''


def fail(msg: str) -> None:
    print(f"bench.original: error: {msg}", file=sys.stderr)
    sys.exit(2)


def check_checkout(checkout: str | None) -> Path:
    if not checkout:
        fail("--checkout DIR is required: a checkout of neurophysics-cnrsthales/unsupervised-target")
    root = Path(checkout).resolve()
    if not root.is_dir():
        fail(f"--checkout {checkout}: no such directory")
    missing = [p for p in ("bp/train_test.py", "ep/train_test.py", "funcs/tools.py", "configFile")
               if not (root / p).exists()]
    if missing:
        fail(f"--checkout {checkout}: not a checkout of neurophysics-cnrsthales/unsupervised-target "
             f"(no {missing[0]})")
    if root == REPO:
        fail(f"--checkout {checkout} is this repository, not the original")
    return root


def commit_of(root: Path) -> tuple[str, str | None]:
    """(label, full hash): the checkout's commit, '+modified' if tracked files of its code were edited."""
    def git(*args):
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
    top = git("rev-parse", "--show-toplevel")
    if top.returncode != 0 or Path(top.stdout.strip()).resolve() != root:
        return "unknown commit (not a git checkout)", None
    full = git("rev-parse", "HEAD").stdout.strip()
    edited = git("diff", "--quiet", "--diff-filter=M", "HEAD", "--", "bp", "ep", "funcs").returncode != 0
    return full[:7] + ("+modified" if edited else ""), full


def workload(preset: str, data_dir: str, samples: int, jparams: dict):
    """bench.throughput.measure's images (our loader, our preset's train_size), shuffled once; full train size."""
    import torch
    from funcs import cli, config
    from funcs import data as data_mod

    if (REPO / "configFile" / preset / "config.json").exists():
        cfg = config.replace(config.load(REPO / "configFile" / preset), data_dir=data_dir, device=-1)
        dataset = cli.shrink(data_mod.load_dataset(cfg.dataset, data_dir), cfg)
    else:
        dataset = data_mod.load_dataset(jparams["dataset"], data_dir)
    if dataset.name != jparams["dataset"]:
        fail(f"preset {preset}: our config's dataset {dataset.name}, the original's {jparams['dataset']}")
    x, y = dataset.train.x[:samples], dataset.train.y[:samples]
    if not jparams.get("cnn"):
        x = x.reshape(x.shape[0], -1)
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(0))
    y = torch.nn.functional.one_hot(y[perm], dataset.n_class).float()  # the original's ReshapeTransformTarget
    return x[perm].contiguous(), y, dataset.train.y.shape[0]


def measure(root: Path, preset: str, samples: int, repeats: int, threads: int | None, data_dir: str,
            label: str) -> dict:
    import torch

    cfg_file = root / "configFile" / preset / "config.json"
    if not cfg_file.exists():
        fail(f"--checkout {root}: no configFile/{preset}/config.json")
    jparams = json.loads(cfg_file.read_text())
    if jparams.get("action") not in ("unsupervised_bp", "unsupervised_ep"):
        fail(f"preset {preset}: action {jparams.get('action')!r}; only unsupervised_bp and unsupervised_ep are timed")
    x, y, n_train = workload(preset, data_dir, samples, jparams)
    batch = jparams["batchSize"]
    with tempfile.TemporaryDirectory(prefix="bench-original-") as tmp:
        data_file = os.path.join(tmp, "data.pt")
        torch.save({"x": x, "y": y}, data_file)
        spec = {"checkout": str(root), "repo": str(REPO), "preset": preset, "action": jparams["action"],
                "data": data_file, "batchSize": batch, "threads": threads, "repeats": repeats,
                "warm_batches": WARM_BATCHES}
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # leave the checkout as it is
        proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec)], cwd=root, env=env,
                              capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-6000:])
        print(f"bench.original: error: the original code failed on preset {preset} (exit {proc.returncode})",
              file=sys.stderr)
        sys.exit(1)
    child = json.loads(lines[-1][len(MARK):])
    if Path(child["imported_from"]).resolve() != root:
        fail(f"the child imported the original's code from {child['imported_from']}, not {root}")
    rate = x.shape[0] / child["seconds"]
    result = {"preset": preset, "variant": f"original code @ {label}", "fcLayers": jparams["fcLayers"],
              "batchSize": batch, "samples_timed": x.shape[0], "samples_per_second": round(rate, 1),
              "train_seconds_per_epoch": round(n_train / rate, 2),
              "repeat_seconds": [round(s, 3) for s in child["all_seconds"]],
              "loader": "list of pre-made batches (no DataLoader, on either side)",
              "threads": child["threads"], "torch": child["torch"],
              "stubbed_imports": child["stubbed"]}
    if child["notes"]:
        result["notes"] = child["notes"]
    return result


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkout", default=None, help="a checkout of neurophysics-cnrsthales/unsupervised-target")
    p.add_argument("--presets", nargs="+", default=["unsupervised_bp/1layer", "unsupervised_ep/1layer"])
    p.add_argument("--samples", type=int, default=8000, help="training samples timed per repeat")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--data_dir", default="data")
    args = p.parse_args(argv)
    root = check_checkout(args.checkout)
    label, full = commit_of(root)
    results = [measure(root, preset, args.samples, args.repeats, args.threads, args.data_dir, label)
               for preset in args.presets]
    import torch
    print(json.dumps({"machine": {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
                                  "threads": results[0]["threads"] if results else None, "gpu": None},
                      "checkout": {"path": str(root), "commit": full}, "results": results}, indent=2))


if __name__ == "__main__":
    main()
