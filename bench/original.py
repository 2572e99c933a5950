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
from pathlib import Path

from bench import foreign

# The child's body after foreign.PRELUDE (cwd = DIR): only the original's packages import as bp/ep/funcs.
CHILD = r'''
import torch

if spec["threads"]:
    torch.set_num_threads(spec["threads"])
data = torch.load(spec["data"])
batch = spec["batchSize"]
batches = list(zip(data["x"].split(batch), data["y"].split(batch)))
cfg_dir = os.path.join(checkout, "configFile", spec["preset"])
notes = []

if spec["action"] == "unsupervised_bp":
    train_test, actions, network = import_foreign(["bp.train_test", "bp.actions", "bp.network"])
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
    funcs_data, train_test, actions, network = import_foreign(
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
report(seconds=min(times), all_seconds=times, threads=torch.get_num_threads(), torch=torch.__version__,
       notes=notes, imported_from=os.path.dirname(os.path.dirname(os.path.abspath(train_test.__file__))))
'''


def fail(msg: str) -> None:
    foreign.fail("bench.original", msg)


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
    if root == foreign.REPO:
        fail(f"--checkout {checkout} is this repository, not the original")
    return root


def measure(root: Path, preset: str, samples: int, repeats: int, threads: int | None, data_dir: str,
            label: str) -> dict:
    cfg_file = root / "configFile" / preset / "config.json"
    if not cfg_file.exists():
        fail(f"--checkout {root}: no configFile/{preset}/config.json")
    jparams = json.loads(cfg_file.read_text())
    if jparams.get("action") not in ("unsupervised_bp", "unsupervised_ep"):
        fail(f"preset {preset}: action {jparams.get('action')!r}; only unsupervised_bp and unsupervised_ep are timed")
    x, y, n_train = foreign.workload(preset, data_dir, samples, jparams)
    batch = jparams["batchSize"]
    child = foreign.run_child("bench.original", root, ("bp", "ep", "funcs"), CHILD,
                              {"preset": preset, "action": jparams["action"], "batchSize": batch,
                               "threads": threads, "repeats": repeats}, {"x": x, "y": y},
                              f"the original code on preset {preset}")
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
    label, full = foreign.commit_of(root)
    results = [measure(root, preset, args.samples, args.repeats, args.threads, args.data_dir, label)
               for preset in args.presets]
    foreign.print_report(results, root, full)

if __name__ == "__main__":
    main()
