"""Training speed of Gammell et al.'s EP code (jgammell/equilibrium_propagation) on bench.throughput's workload.

    python -m bench.gammell --checkout DIR
        [--presets small_world/mnist_5layer_layered small_world/mnist_5layer_small_world]
        [--samples 200] [--threads N] [--repeats 2] [--data_dir data]

DIR is a checkout of Gammell, Buckley, Nam and McCaughan's code (2021); nothing
of it is copied here. Their `framework.eqp.Network` keeps the whole network,
input neurons included, in one dense masked (N, N) weight matrix and steps all
N states at once with a (batch, N) x (N, N) product; ep/small_world.py keeps
the chain's per-layer blocks plus masked skip blocks. For each of our presets,
their Network is built with the preset's settings (fcLayers, dt as epsilon,
beta, T free and Kmax weakly clamped iterations, batchSize, lr, seed; topology
`layered` as their 'MLFF', `small_world` as their 'SW_no_intra' with rewire_p
as 'bypass p' and skip_magnitude as 'bypass mag'), on the CPU, and trained on
the images bench.foreign.workload gives (bench.throughput.measure's first
`samples` training images from our loader, flattened, in one fixed shuffled
order, one-hot labels), cut into full mini-batches. Timed: one call of their
`Network.train_epoch` over those batches (their epoch: per batch a free phase,
a weakly clamped one with beta of random sign, the weight and bias update, and
their per-layer rate and mean |dW| bookkeeping), after a warm-up on the first
5 batches; best of `repeats`, extrapolated to our loader's full training set.

Their package is named framework, which we do not have, but like bench.original
it runs in a child process (bench.foreign) whose sys.path starts with DIR and holds no entry for
this repository; the parent writes the images to a temporary .pt file. Their
dataset classes (framework/datasets.py) download MNIST through torchvision in
their constructor: the child replaces that constructor by one that takes our
batches, and empty modules stand in for torchvision and sklearn if missing.
Its numbers compare with bench.throughput's only when both ran on the same
quiet machine with the same threads.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from bench import foreign

# our topology -> their 'network type' (framework/eqp.py, Network.initialize_weight_matrices)
NETWORK_TYPE = {"layered": "MLFF", "small_world": "SW_no_intra"}
# our dataset -> their class in framework/datasets.py (784 inputs, 10 classes)
DATASET_CLASS = {"mnist": "MNIST", "fashionMnist": "FashionMNIST"}

# The child's body after foreign.PRELUDE (cwd = DIR): the package framework is theirs.
CHILD = r'''
import torch

if spec["threads"]:
    torch.set_num_threads(spec["threads"])
data = torch.load(spec["data"])
batch = spec["configuration"]["batch size"]
x_batches, y_batches = list(data["x"].split(batch)), list(data["y"].split(batch))
eqp, datasets = import_foreign(["framework.eqp", "framework.datasets"])
dataset_class = getattr(datasets, spec["dataset_class"])


def our_batches(self, batch_size, device):
    """In place of their constructor (torchvision's MNIST, shuffled batches): the parent's batches, no test set."""
    self.name, self.n_in, self.n_out = spec["dataset_class"], x_batches[0].shape[1], y_batches[0].shape[1]
    self.batch_size, self.classification = batch_size, True
    self.x_train = [x.to(device) for x in x_batches]
    self.y_train = [y.to(device) for y in y_batches]
    self.x_test, self.y_test = [], []
    datasets.Dataset.__init__(self)


dataset_class.__init__ = our_batches
with contextlib.redirect_stdout(sys.stderr):  # its construction report
    net = eqp.Network(spec["topology"], spec["hyperparameters"], spec["configuration"], dataset_class)


def train(n_batches):
    """Their epoch (Network.train_epoch) over the first n_batches of the list, from its first."""
    net.dataset.n_trainb, net.dataset.train_idx = n_batches, 0
    net.train_epoch()


train(min(spec["warm_batches"], len(x_batches)))
times = []
for _ in range(spec["repeats"]):
    tic = time.perf_counter()
    train(len(x_batches))
    times.append(time.perf_counter() - tic)
report(seconds=min(times), all_seconds=times, threads=torch.get_num_threads(), torch=torch.__version__,
       neurons=int(net.num_neurons), rewired_share=float(net.p_actual),
       imported_from=os.path.dirname(os.path.dirname(os.path.abspath(eqp.__file__))))
'''


def fail(msg: str) -> None:
    foreign.fail("bench.gammell", msg)


def check_checkout(checkout: str | None) -> Path:
    if not checkout:
        fail("--checkout DIR is required: a checkout of jgammell/equilibrium_propagation")
    root = Path(checkout).resolve()
    if not root.is_dir():
        fail(f"--checkout {checkout}: no such directory")
    missing = [p for p in ("framework/eqp.py", "framework/datasets.py") if not (root / p).is_file()]
    if missing:
        fail(f"--checkout {checkout}: not a checkout of jgammell/equilibrium_propagation (no {missing[0]})")
    return root


def their_settings(preset: str, cfg) -> tuple[dict, dict, dict]:
    """(topology, hyperparameters, configuration) of their Network (readme.txt, 'How to use') for our preset."""
    if cfg.topology not in NETWORK_TYPE:
        fail(f"preset {preset}: topology {cfg.topology!r}; only {', '.join(NETWORK_TYPE)} have a counterpart "
             "in their code")
    if cfg.dataset not in DATASET_CLASS:
        fail(f"preset {preset}: dataset {cfg.dataset!r}: only {', '.join(DATASET_CLASS)} are timed")
    if cfg.target_kind != "supervised" or cfg.fcLayers[-1] != cfg.n_class or any(cfg.dropProb):
        fail(f"preset {preset}: target {cfg.target_kind}, {cfg.fcLayers[-1]} output neurons, dropout "
             f"{list(cfg.dropProb)}; their code trains towards one-hot labels only (supervised, one output neuron "
             "per class, no dropout)")
    # their dynamics: rho = clamp(s, 0, 1), states clamped to [0, 1], beta's sign flipped at random, one-sided
    if (cfg.activation_function, cfg.clamped, cfg.beta_sign, cfg.error_estimate) != \
            ("hardsigm", True, "random", "one-sided"):
        fail(f"preset {preset}: their code has hardsigm, clamped states, beta of random sign and one-sided "
             f"estimates only, not {cfg.activation_function}, clamped {cfg.clamped}, {cfg.beta_sign}, "
             f"{cfg.error_estimate}")
    small_world = cfg.topology == "small_world"
    lrs = [float(r) for r in cfg.lr]
    topology = {"layer sizes": [int(n) for n in cfg.fcLayers], "network type": NETWORK_TYPE[cfg.topology],
                "bypass p": float(cfg.rewire_p) if small_world else None,
                "bypass mag": float(cfg.skip_magnitude) if small_world else None}
    # one global rate where the preset's are all equal (their trials' setting), else their per-layer rates
    hyper = {"learning rate": lrs[0] if len(set(lrs)) == 1 else lrs, "epsilon": float(cfg.dt),
             "beta": float(cfg.beta), "free iterations": int(cfg.T), "weakly clamped iterations": int(cfg.Kmax)}
    configuration = {"batch size": int(cfg.batchSize), "device": "cpu", "seed": int(cfg.seed)}
    return topology, hyper, configuration


def measure(root: Path, preset: str, samples: int, repeats: int, threads: int | None, data_dir: str,
            label: str) -> dict:
    from funcs import config
    from funcs.errors import UserError

    try:
        cfg = config.load(foreign.REPO / "configFile" / preset)
    except UserError as err:
        fail(f"preset {preset}: {err}")
    topology, hyper, configuration = their_settings(preset, cfg)
    batch = configuration["batch size"]
    x, y, n_train = foreign.workload(preset, data_dir, samples, {"dataset": cfg.dataset, "cnn": False})
    n = x.shape[0] // batch * batch  # their state is (batch size, N): full batches only
    if n == 0:
        fail(f"--samples {samples}: fewer than one mini-batch of {batch}")
    child = foreign.run_child("bench.gammell", root, ("framework",), CHILD,
                              {"threads": threads, "repeats": repeats, "dataset_class": DATASET_CLASS[cfg.dataset],
                               "topology": topology, "hyperparameters": hyper, "configuration": configuration},
                              {"x": x[:n].clone(), "y": y[:n].clone()}, f"their code on preset {preset}")
    rate = n / child["seconds"]
    return {"preset": preset, "variant": f"Gammell dense @ {label}", "fcLayers": topology["layer sizes"],
            "batchSize": batch, "network_type": topology["network type"], "T": hyper["free iterations"],
            "Kmax": hyper["weakly clamped iterations"], "neurons": child["neurons"],
            "rewired_share": round(child["rewired_share"], 4), "samples_timed": n,
            "samples_per_second": round(rate, 2), "train_seconds_per_epoch": round(n_train / rate, 2),
            "repeat_seconds": [round(s, 3) for s in child["all_seconds"]],
            "loader": "list of pre-made batches (no DataLoader, on either side)",
            "threads": child["threads"], "torch": child["torch"], "stubbed_imports": child["stubbed"]}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkout", default=None, help="a checkout of jgammell/equilibrium_propagation")
    p.add_argument("--presets", nargs="+",
                   default=["small_world/mnist_5layer_layered", "small_world/mnist_5layer_small_world"])
    p.add_argument("--samples", type=int, default=200, help="training samples timed per repeat (full batches)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--data_dir", default="data")
    args = p.parse_args(argv)
    root = check_checkout(args.checkout)
    label, full = foreign.commit_of(root, code=("framework",))
    results = [measure(root, preset, args.samples, args.repeats, args.threads, args.data_dir, label)
               for preset in args.presets]
    foreign.print_report(results, root, full)

if __name__ == "__main__":
    main()
