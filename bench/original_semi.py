"""A semi-supervised BP run's phase 2 (or, with --whole, both phases) trained by the ORIGINAL code.

    python -m bench.original_semi --checkout DIR --from RUN_DIR --out OUT_DIR [--whole] [--epochs E] [--threads N]
                                  [--data_dir data]

Our BP runs with 100 or 600 labels gain fewer points in phase 2 than the
original's result folders (docs/experiments.md, "Where a shortened run
stands"). This separates the code from everything else: it takes RUN_DIR's
network after phase 1 (`pretrained.pt`), its labeled subset (drawn again by
funcs.semi.split_labeled with the run's semi_seed) and its config, and hands
them to the original's own `bp.actions.semi_supervised_bp` with `pre_epochs` 0:
their loop, their two Adam optimizers and linear schedules, their target,
loss and network (`bp.network.MLP`, our weights loaded into it). The config's
values are RUN_DIR's, so the two runs differ in their code and their random
streams only. The data are our MNIST tensors in torch DataLoaders shaped as
theirs (`funcs/data.py` of the original: shuffled labeled batches of
pre_batchSize with one-hot targets, shuffled unlabeled batches of batchSize,
the test set in order).

With `--whole` their code trains phase 1 as well: a fresh `bp.network.MLP`
(seeded with the run's seed), the run's `pre_epochs` on the same labeled
subset, then phase 2. Against the default mode this changes only where the
phase-1 network comes from.

OUT_DIR gets `semi_supervised.csv` (per phase-2 epoch: test error after the
unsupervised half and after the supervised half, written after each epoch, so
a run stopped early keeps its curve) and `origin.json` (the checkout's commit,
RUN_DIR, the config); with `--whole` also `pre_supervised.csv` (per phase-1
epoch: train and test error). Their loop has no resume: a stopped run starts again.
The only thing replaced in their code is its result tables (pandas, which the
requirements do not install): the same two columns, written by this script.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench import foreign

# The child's body after foreign.PRELUDE (cwd = DIR): their semi_supervised_bp on our tensors.
CHILD = r'''
import csv
import torch

if spec["threads"]:
    torch.set_num_threads(spec["threads"])
data = torch.load(spec["data"])
out = spec["out"]
actions, network = import_foreign(["bp.actions", "bp.network"])
jparams = dict(spec["jparams"], device=-1)
torch.manual_seed(spec["seed"])
net = network.MLP(jparams)
if not spec["whole"]:
    jparams["pre_epochs"] = 0
    net.load_state_dict(data["model"])


def no_table(*args, **kwargs):
    return None


def write_rows(base_path, frame, first, second, filename="results.csv", loss=None):
    """Their update_dataframe's two error columns, without pandas: the whole lists, rewritten each epoch."""
    header = {"pre_supervised.csv": ["Train_Error", "Test_Error"],
              "semi_supervised.csv": ["Unsupervised_Test_Error", "Supervised_Test_Error"]}[filename]
    with open(os.path.join(base_path, filename), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", *header])
        w.writerows([i + 1, a, b] for i, (a, b) in enumerate(zip(first, second)))


actions.init_dataframe, actions.update_dataframe = no_table, write_rows
loader = torch.utils.data.DataLoader
labeled = torch.utils.data.TensorDataset(data["labeled_x"], data["labeled_onehot"])
unlabeled = torch.utils.data.TensorDataset(data["unlabeled_x"], data["unlabeled_y"])
test = torch.utils.data.TensorDataset(data["test_x"], data["test_y"])
actions.semi_supervised_bp(net, jparams, loader(labeled, batch_size=jparams["pre_batchSize"], shuffle=True),
                           loader(unlabeled, batch_size=jparams["batchSize"], shuffle=True),
                           loader(test, batch_size=jparams["test_batchSize"], shuffle=False), base_path=out)
report(imported_from=os.path.dirname(os.path.dirname(os.path.abspath(actions.__file__))),
       epochs=jparams["epochs"], threads=torch.get_num_threads())
'''


def to_original(model: dict) -> dict:
    """Our BP MLP's state dict ('net.<i>.weight', Linear layers in order) under the original MLP's names."""
    linears = sorted({k.rsplit(".", 1)[0] for k in model}, key=lambda name: int(name.split(".")[1]))
    return {f"fcnet.fc_{i}.{kind}": model[f"{name}.{kind}"] for i, name in enumerate(linears)
            for kind in ("weight", "bias")}


def inputs(run: Path, cfg: dict, data_dir: str) -> dict:
    """The child's tensors for RUN_DIR (config `cfg`): its phase-1 weights, its labeled split, the test set."""
    import torch

    from funcs import data as data_mod
    from funcs import semi

    saved = torch.load(run / semi.PRETRAINED, weights_only=True, map_location="cpu")
    mnist = data_mod.load_dataset(cfg["dataset"], data_dir)  # pixels / 255, as their ToTensor
    train_x, test_x = mnist.train.x.flatten(1), mnist.test.x.flatten(1)  # their ReshapeTransform((-1,))
    labels = mnist.train.y
    labeled, unlabeled = semi.split_labeled(labels, cfg["train_label_number"], cfg["n_class"], saved["semi_seed"],
                                            cfg.get("label_draw", "per_class"))
    onehot = torch.nn.functional.one_hot(labels[labeled], cfg["n_class"]).to(torch.float32)
    tensors = {"model": to_original(saved["model"]), "labeled_x": train_x[labeled],
               "labeled_onehot": onehot, "unlabeled_x": train_x[unlabeled], "unlabeled_y": labels[unlabeled],
               "test_x": test_x, "test_y": mnist.test.y}
    return tensors


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkout", required=True, help="a checkout of neurophysics-cnrsthales/unsupervised-target")
    p.add_argument("--from", dest="run", required=True, help="a finished semi_supervised_bp run folder of ours")
    p.add_argument("--out", required=True, help="a new folder for the original's curves")
    p.add_argument("--whole", action="store_true",
                   help="their code trains phase 1 too, from a fresh network (the run's pre_epochs and labeled subset)")
    p.add_argument("--epochs", type=int, default=None,
                   help="phase-2 epochs (default: the run's; fewer squeeze their schedules: a quick check only)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--data_dir", default="data")
    args = p.parse_args(argv)
    tool = "bench.original_semi"
    root, run, out = Path(args.checkout).resolve(), Path(args.run), Path(args.out).resolve()
    if not (root / "bp" / "actions.py").is_file():
        foreign.fail(tool, f"{root}: not a checkout of the original (no bp/actions.py)")
    if not (run / "pretrained.pt").is_file() or not (run / "config.json").is_file():
        foreign.fail(tool, f"{run}: no pretrained.pt and config.json (a semi-supervised run after its phase 1)")
    if out.exists():
        foreign.fail(tool, f"{out} exists; give a new folder")
    cfg = json.loads((run / "config.json").read_text())
    if cfg.get("action") != "semi_supervised_bp":
        foreign.fail(tool, f"{run}: action {cfg.get('action')!r}; this drives the original's semi_supervised_bp")
    tensors = inputs(run, cfg, args.data_dir)
    if args.epochs is not None:
        cfg["epochs"] = args.epochs
    out.mkdir(parents=True)
    label, commit = foreign.commit_of(root)
    (out / "origin.json").write_text(json.dumps({"checkout": label, "commit": commit, "from": str(run),
                                                 "phase_1": "original" if args.whole else "from run",
                                                 "config": cfg}, indent=2) + "\n")
    child = foreign.run_child(tool, root, ("bp", "ep", "funcs"), CHILD,
                              {"threads": args.threads, "jparams": cfg, "seed": cfg["seed"], "out": str(out),
                               "whole": args.whole},
                              tensors, "the original's semi_supervised_bp")
    print(json.dumps({"out": str(out), **child}))


if __name__ == "__main__":
    main()
