"""Running ANOTHER codebase's training step from its checkout, isolated from this repository (bench.original,
bench.gammell): a child process whose sys.path starts with the checkout and holds nothing of ours (the original
names its packages bp, ep, funcs like ours), empty modules for the packages it imports but the timed code never
calls, and the images of bench.throughput's workload passed as a temporary .pt file. Nothing of the foreign
code is copied here: each script brings only the body that drives it.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MARK = "@@bench.foreign@@ "
WARM_BATCHES = 5

# The first part of every child (`python -c PRELUDE + body SPEC_JSON`, cwd = the checkout): isolation, stubs,
# `import_foreign(names)` and `report(**values)`. spec["own"]: the foreign code's top-level packages.
PRELUDE = f"MARK = {MARK!r}\n" + r'''
import contextlib, importlib.abc, importlib.machinery, json, os, sys, time, types

spec = json.loads(sys.argv[1])
checkout = spec["checkout"]
# DIR first, and no entry for our repository ('' is the cwd, DIR itself): the foreign packages are DIR's.
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

    The foreign code imports them at module level for what the timing replaces (datasets,
    DataLoaders, result tables): the original's torchvision and pandas, Gammell's torchvision.
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


def import_foreign(names):
    """Import the foreign code's modules, stubbing each missing third-party package and retrying."""
    while True:
        try:
            return [__import__(n, fromlist=["_"]) for n in names]
        except ModuleNotFoundError as err:
            root = (err.name or "").split(".")[0]
            if not root or root in stubs.roots or root in spec["own"]:
                raise
            stubs.roots.add(root)
            for mod in [m for m in sys.modules if m.split(".")[0] in spec["own"]]:
                del sys.modules[mod]



def report(**values):
    """The child's one result line for the parent."""
    print(MARK + json.dumps({**values, "stubbed": sorted(stubs.roots)}))

'''


def fail(tool: str, msg: str) -> None:
    """One error line of a bench script, exit 2."""
    print(f"{tool}: error: {msg}", file=sys.stderr)
    sys.exit(2)


def run_child(tool: str, root: Path, own: tuple[str, ...], body: str, spec: dict, data: dict, what: str) -> dict:
    """Run PRELUDE + body in a child on `root`'s code, with the tensors `data` in spec["data"]; its report."""
    import torch

    with tempfile.TemporaryDirectory(prefix=f"{tool}-") as tmp:
        data_file = os.path.join(tmp, "data.pt")
        torch.save(data, data_file)
        spec = {**spec, "checkout": str(root), "repo": str(REPO), "own": list(own), "data": data_file,
                "warm_batches": WARM_BATCHES}
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # leave the checkout as it is
        proc = subprocess.run([sys.executable, "-c", PRELUDE + body, json.dumps(spec)], cwd=root, env=env,
                              capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-6000:])
        print(f"{tool}: error: {what} failed (exit {proc.returncode})", file=sys.stderr)
        sys.exit(1)
    child = json.loads(lines[-1][len(MARK):])
    if Path(child["imported_from"]).resolve() != root:
        fail(tool, f"the child imported the foreign code from {child['imported_from']}, not {root}")
    return child


def print_report(results: list[dict], root: Path, commit: str | None) -> None:
    """The JSON of bench.throughput's shape, with the checkout it timed."""
    import platform

    import torch
    print(json.dumps({"machine": {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
                                  "threads": results[0]["threads"] if results else None, "gpu": None},
                      "checkout": {"path": str(root), "commit": commit}, "results": results}, indent=2))


def commit_of(root: Path, code=("bp", "ep", "funcs")) -> tuple[str, str | None]:
    """(label, full hash): the checkout's commit, '+modified' if tracked files of its `code` folders were edited."""
    def git(*args):
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
    top = git("rev-parse", "--show-toplevel")
    if top.returncode != 0 or Path(top.stdout.strip()).resolve() != root:
        return "unknown commit (not a git checkout)", None
    full = git("rev-parse", "HEAD").stdout.strip()
    edited = git("diff", "--quiet", "--diff-filter=M", "HEAD", "--", *code).returncode != 0
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
        fail("bench", f"preset {preset}: our config's dataset {dataset.name}, the timed code's {jparams['dataset']}")
    x, y = dataset.train.x[:samples], dataset.train.y[:samples]
    if not jparams.get("cnn"):
        x = x.reshape(x.shape[0], -1)
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(0))
    y = torch.nn.functional.one_hot(y[perm], dataset.n_class).float()  # one-hot, as both foreign codes' loaders give
    return x[perm].contiguous(), y, dataset.train.y.shape[0]


