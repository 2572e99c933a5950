"""The original code's own runs, read from its result files: what our runs compare with, epoch by epoch.

The paper's Tables 3, 4 and 5 are the means and spreads of runs the original
repository keeps: its unsupervised MLPs per epoch and by share of labels
(MLP_CURVES, also Figures 4 and 5), its CNNs' final read-outs with the config
one run per dataset recorded (CNN_READOUTS), and its semi-supervised runs
(CURVES, below).

The paper's Table 5 is the last phase-2 epoch's test accuracy, mean and
standard deviation over 10 to 30 seeds, of runs whose per-epoch curves the
original repository (`neurophysics-cnrsthales/unsupervised-target`) keeps under
`simuResults/semi_{bp,ep}/[without_homeo/]<N>labels/S-<seed>/`:
`pre_supervised.csv` (phase 1: Test_Error per epoch) and
`semi_supervised.csv` (phase 2: Supervised_Test_Error per epoch). A run of ours
that stopped after e phase-2 epochs is compared with those runs at epoch e, not
with their end: phase 2 gains most of its points late (BP, 600 labels: 90.5 % after
10 epochs, 91.2 % after 57, 94.9 % after 400).

    python -m funcs.original_curves --checkout DIR     # DIR: a checkout of the original; rewrites CURVES
    python -m funcs.original_curves --plot OUT.png [RUN_DIR ...]   # ours over their mean and std (default: Table 5's)
    python -m funcs.original_curves --plot OUT.png --gains RUN_DIR ...   # gains over each run's own phase 1
    python -m funcs.original_curves --cnn DIR          # rewrites CNN_READOUTS: the CNN runs behind Table 4
    python -m funcs.original_curves --mlp DIR          # rewrites MLP_CURVES: Table 3's and Figures 4-5's MLP runs

CURVES holds, per rule, number of labels and variant, the seeds' count and the
mean and standard deviation (population, as the paper's) of the test accuracy
(%) after phase 1 and after each phase-2 epoch, and each seed's accuracy after
phase 1 and at the end (`ends`, for `end_given_phase_1`). Nothing of the original's
code is used; only its result files are read.
"""
from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np

from funcs import plots
from funcs.config import read_json
from funcs.errors import OneLineParser, UserError, one_line_errors
from funcs.figures_registry import (PAPER_RULES, REPO, SEMI, SEMI_LABELS, SEMI_VARIANTS, TABLE5_LABELS,
                                    semi_key)
from funcs.records import find, read_run
from funcs.results import STATS_DECIMALS, half_up

CURVES = REPO / "docs" / "original_semi_curves.json"
SOURCE = "neurophysics-cnrsthales/unsupervised-target"
# Our variant names (funcs.figures_registry.SEMI_VARIANTS) and the original's folder for each.
VARIANT_DIRS = {"wta_homeostasis": "", "wta": "without_homeo/"}
PHASE_FILES = ("pre_supervised.csv", "semi_supervised.csv")  # each seed's folder: phase 1, phase 2
# The original's unsupervised CNN runs, whose final read-outs the paper's Table 4 averages (docs/experiments.md).
CNN_READOUTS = REPO / "docs" / "original_cnn_readouts.json"
CNN_FOLDER = "unsupervised_cnn"
CNN_READOUT_FILE = "classification_layer.csv"  # a run's final linear read-out, per epoch (CNNs and MLPs)
# The original's unsupervised MLP runs (Table 3, Figures 4 and 5), trained and untrained: their direct association
# per epoch with all labels, and each seed's read-outs with a share of the labels.
MLP_CURVES = REPO / "docs" / "original_mlp_curves.json"
MLP_FOLDERS = {**{key: (f"unsupervised_{key}", True) for key in ("bp_1layer", "ep_1layer", "bp_2layer", "ep_2layer")},
               "untrained_1layer": ("untrain_1layer", False), "untrained_2layer": ("untrain_2layer", False)}
SHARE_FOLDERS = {1: "1percent", 5: "5percent", 50: "50percent", 100: "full_labels"}  # % of the labels


def _errors(path: Path, column: str) -> list[float]:
    try:
        with path.open(newline="") as f:
            errors = [float(row[column]) for row in csv.DictReader(f)]
    except (OSError, KeyError, ValueError) as e:
        raise UserError(f"{path}: no readable column {column!r} ({e})") from None
    if not errors:
        raise UserError(f"{path}: no epochs (a header only)")
    return errors


def _stats(runs: list[list[float]]) -> tuple[list[float], list[float]]:
    """Per epoch over seeds: mean and population std of the accuracy (%), over the epochs all seeds ran."""
    n = min(map(len, runs))
    acc = _accuracy(np.array([r[:n] for r in runs]))
    return np.round(acc.mean(0), STATS_DECIMALS).tolist(), np.round(acc.std(0), STATS_DECIMALS).tolist()


def _ends(phase1: list[list[float]], phase2: list[list[float]], epochs: int) -> list[list[float]]:
    """Each seed's [accuracy after phase 1, accuracy after `epochs` phase-2 epochs] (%)."""
    return [[float(_accuracy(p1[-1])), float(_accuracy(p2[epochs - 1]))] for p1, p2 in zip(phase1, phase2)]


def _accuracy(errors):
    """Test accuracy (%) from the original's error rates, which its CSVs keep as float32: rounded to 3 decimals,
    which keeps every digit of a count out of 10,000 test images and drops the float32 noise (about 1e-6 %; seen:
    a mean of 94.755 read as 94.754999, then shown as 94.75)."""
    return np.round(100.0 * (1.0 - np.asarray(errors, dtype=np.float64)), 3)


def end_given_phase_1(curve: dict, after_phase_1: float) -> tuple[float, float] | None:
    """Their end as their seeds' phase-1 accuracy predicts it for a run that reached `after_phase_1`.

    A run's end depends on its phase-1 network (over the original's seeds of one configuration: a correlation
    of up to 0.84), so a run of ours with a better or worse phase 1 than theirs is set beside the least-squares
    line of their (after phase 1, end) pairs at its own phase-1 accuracy. Returns that line's value and the
    standard deviation of a new run about it (the residuals' std, n - 2 degrees of freedom, widened for the
    line's own uncertainty away from their mean); None with fewer than 4 seeds or no per-seed ends.
    """
    pairs = np.asarray(curve.get("ends", []), dtype=float)
    if len(pairs) < 4 or np.ptp(pairs[:, 0]) == 0:
        return None
    x, y = pairs[:, 0], pairs[:, 1]
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (intercept + slope * x)
    s = math.sqrt(float(residual @ residual) / (len(x) - 2))
    spread = s * math.sqrt(1 + 1 / len(x) + (after_phase_1 - x.mean()) ** 2 / float(((x - x.mean()) ** 2).sum()))
    return float(intercept + slope * after_phase_1), spread


def read_checkout(checkout: Path) -> dict:
    """Every semi-supervised configuration the checkout has run, as CURVES holds it."""
    results = Path(checkout) / "simuResults"
    if not results.is_dir():
        raise UserError(f"{checkout}: no simuResults/ (give a checkout of {SOURCE})")
    curves = {}
    for rule in PAPER_RULES:
        for labels in SEMI_LABELS:
            for variant, sub in VARIANT_DIRS.items():
                folder = results / f"semi_{rule}" / f"{sub}{labels}labels"
                seeds = sorted(s for s in folder.glob("S-*") if all((s / f).is_file() for f in PHASE_FILES))
                if not seeds:
                    continue
                phase1 = [_errors(s / "pre_supervised.csv", "Test_Error") for s in seeds]
                phase2 = [_errors(s / "semi_supervised.csv", "Supervised_Test_Error") for s in seeds]
                p1_mean, p1_std = _stats([[r[-1]] for r in phase1])
                mean, std = _stats(phase2)
                curves[semi_key(rule, labels, variant)] = {
                    "seeds": len(seeds), "phase1_epochs": min(map(len, phase1)),
                    "after_phase_1": [p1_mean[0], p1_std[0]], "mean": mean, "std": std,
                    "ends": _ends(phase1, phase2, len(mean))}
    if not curves:
        raise UserError(f"{results}: no semi_{{bp,ep}}/<N>labels/S-<seed>/ run folders")
    return curves


def _run_number(folder: Path) -> int:
    """The n of the original's run folder `bp-<n>` (its PathCreator counts them), for ordering."""
    tail = folder.name.rpartition("-")[2]
    return int(tail) if tail.isdigit() else 0


def read_cnn_checkout(checkout: Path) -> dict:
    """The original's unsupervised CNN runs, per dataset (`simuResults/unsupervised_cnn/<dataset>/bp-<n>/`): the
    runs' names, each run's test accuracy (%) after its final linear read-out (the last row of
    `classification_layer.csv`, which the read-out after training overwrites), the read-out's epochs, and the
    config the runs recorded (`config.json`: in one run per dataset, named by `config_of`)."""
    base = Path(checkout) / "simuResults" / CNN_FOLDER
    datasets = {}
    for folder in sorted(base.iterdir()) if base.is_dir() else []:
        runs = sorted((r for r in folder.glob("bp-*") if (r / CNN_READOUT_FILE).is_file()), key=_run_number)
        if not runs:
            continue
        errors = [_errors(r / CNN_READOUT_FILE, "Final_Test_Error") for r in runs]
        recorded = [r for r in runs if (r / "config.json").is_file()]
        datasets[folder.name] = {
            "runs": [r.name for r in runs], "readout_epochs": min(map(len, errors)),
            "final": [float(_accuracy(e[-1])) for e in errors],
            "config_of": [r.name for r in recorded],
            "config": read_json(recorded[0] / "config.json", "run config") if recorded else None}
    if not datasets:
        raise UserError(f"{base}: no <dataset>/bp-<n>/{CNN_READOUT_FILE} (give a checkout of {SOURCE})")
    return datasets


def read_mlp_checkout(checkout: Path) -> dict:
    """The original's unsupervised MLP runs, per network of MLP_FOLDERS: for a trained one, the seeds' count and
    the mean and population std of the direct association's test accuracy (%) after each epoch with all labels
    (`full_labels/S-<seed>/results.csv`'s One2one_av_Error, our `error_mean`, over the epochs every seed ran); for
    each share of the labels (SHARE_FOLDERS), the seeds' count and [mean, population std] of the direct
    association at the last epoch and of the linear read-out after its last epoch (`classification_layer.csv`)."""
    base = Path(checkout) / "simuResults"
    networks = {}
    for key, (folder, trained) in MLP_FOLDERS.items():
        entry = {}
        curves = sorted((base / folder / SHARE_FOLDERS[100]).glob("S-*/results.csv"))
        if trained and curves:
            mean, std = _stats([_errors(f, "One2one_av_Error") for f in curves])
            entry.update(seeds=len(curves), mean=mean, std=std)
        shares = {}
        for share, sub in SHARE_FOLDERS.items():
            seeds = sorted(s for s in (base / folder / sub).glob("S-*") if (s / CNN_READOUT_FILE).is_file())
            if seeds:
                direct = _stats([[_errors(s / "results.csv", "One2one_av_Error")[-1]] for s in seeds])
                linear = _stats([[_errors(s / CNN_READOUT_FILE, "Final_Test_Error")[-1]] for s in seeds])
                shares[str(share)] = {"seeds": len(seeds), "direct": [direct[0][0], direct[1][0]],
                                      "linear": [linear[0][0], linear[1][0]]}
        if shares:
            entry["shares"] = shares
        if entry:
            networks[key] = entry
    if not networks:
        raise UserError(f"{base}: no unsupervised_<rule>_<n>layer/full_labels/S-<seed>/results.csv "
                        f"(give a checkout of {SOURCE})")
    return networks


def _load_record(path: Path, body: str) -> dict:
    """The entries of a record `--checkout`, `--cnn` or `--mlp` wrote ({} where the file is absent)."""
    if not path.is_file():
        return {}
    entries = read_json(path, "record of the original's runs").get(body)
    if not isinstance(entries, dict):
        raise UserError(f"{path}: no {body!r} object (rewrite it with python -m funcs.original_curves)")
    return entries


def load_cnn(path: Path | None = None) -> dict:
    """CNN_READOUTS' datasets ({} where the file is absent)."""
    return _load_record(CNN_READOUTS if path is None else path, "datasets")


def load_mlp(path: Path | None = None) -> dict:
    """MLP_CURVES' networks ({} where the file is absent)."""
    return _load_record(MLP_CURVES if path is None else path, "curves")


def _commit(checkout: Path) -> str | None:
    done = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


def load(path: Path = CURVES) -> dict:
    """CURVES' configurations ({} where the file is absent)."""
    return json.loads(path.read_text())["curves"] if path.is_file() else {}


def at_epoch(curve: dict, epoch: int) -> tuple[float, float] | None:
    """The original's mean and std after `epoch` phase-2 epochs (1-based); None beyond its runs."""
    return (curve["mean"][epoch - 1], curve["std"][epoch - 1]) if 1 <= epoch <= len(curve["mean"]) else None


def _dumps(doc: dict, body: str = "curves") -> str:
    """JSON with one line per entry of doc[body] (a configuration, a dataset: a diff then shows which changed)."""
    lines = [f" {json.dumps(k)}: {json.dumps(v)}" for k, v in doc.items() if k != body]
    entries = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in doc[body].items()]
    return "{\n" + ",\n".join(lines) + f',\n "{body}": {{\n' + ",\n".join(entries) + "\n }\n}\n"


def key_of(cfg: dict) -> str | None:
    """A semi-supervised run's CURVES key from its config ('bp/600/wta_homeostasis'); None for other runs."""
    action = str(cfg.get("action", ""))
    if not action.startswith("semi_supervised_"):
        return None
    variant = "wta" if cfg.get("gamma") == 0 else "wta_homeostasis"
    return semi_key(action.removeprefix("semi_supervised_"), cfg.get("train_label_number"), variant)


def plot(runs: list[Path], out: Path, curves: dict | None = None) -> Path:
    """One panel per run: its test accuracy per phase-2 epoch over the original's mean, shaded by one std.
    A folder that is no semi-supervised run with a phase-2 epoch raises UserError."""
    return _draw([(run.name, *_semi_run(run)) for run in runs], out, curves)


def _draw(runs: list[tuple[str, str, list[float]]], out: Path, curves: dict | None) -> Path:
    """plot's figure from each run's (name, CURVES key, phase-2 accuracies)."""
    plt = plots.pyplot()
    curves = load() if curves is None else curves
    columns = min(len(runs), 4)
    rows = -(-len(runs) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5 * columns, 4 * rows), squeeze=False)
    for ax in axes.flat[len(runs):]:
        ax.axis("off")
    for ax, (name, key, accuracy) in zip(axes.flat, runs):
        if key in curves:
            mean, std = np.array(curves[key]["mean"]), np.array(curves[key]["std"])
            epochs = np.arange(1, len(mean) + 1)
            ax.plot(epochs, mean, color="gray", label=f"original code, {curves[key]['seeds']} seeds")
            ax.fill_between(epochs, mean - std, mean + std, color="gray", alpha=0.3)
        ax.plot(np.arange(1, len(accuracy) + 1), accuracy, label=f"ours ({name})")
        rule, labels, variant = key.split("/")
        ax.set(title=f"{rule.upper()}, {labels} labels, {SEMI_VARIANTS[variant]}", xlabel="phase-2 epoch",
               ylabel="test accuracy (%)")
        ax.legend(fontsize=8)
    return plots.save(fig, out)


def plot_gains(runs: list[Path], out: Path, curves: dict | None = None) -> Path:
    """One panel: each run's gain over its own phase-1 accuracy per phase-2 epoch, beside the original's mean gain
    (their mean curve less their mean phase 1) and, at their last epoch, the range of their seeds' final gains.
    Runs from different phase 1s compare directly here, where `plot` sets them on different heights."""
    plt = plots.pyplot()
    curves = load() if curves is None else curves
    drawn = [(run.name, *_semi_run(run), phase_1_accuracy(run)) for run in runs]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key in dict.fromkeys(key for _, key, _, _ in drawn):
        if key in curves:
            c = curves[key]
            ax.plot(np.arange(1, len(c["mean"]) + 1), np.array(c["mean"]) - c["after_phase_1"][0], color="black",
                    lw=2, label=f"original code, mean of {c['seeds']} seeds ({key})")
            final = [end - phase_1 for phase_1, end in c.get("ends", [])]
            if final:
                ax.vlines(len(c["mean"]), min(final), max(final), color="black", lw=4, alpha=0.4,
                          label=f"their seeds' final gains ({key})")
    for name, _, accuracy, phase_1 in drawn:
        ax.plot(np.arange(1, len(accuracy) + 1), np.array(accuracy) - phase_1, lw=1, label=name)
    ax.set(xlabel="phase-2 epoch", ylabel="test accuracy gain over phase 1 (points)")
    ax.legend(fontsize=7)
    return plots.save(fig, out)


def phase_1_accuracy(run: Path) -> float:
    """Test accuracy (%) after phase 1 as the run folder says it (summary.json, else its last phase-1 row);
    UserError when it says none (a phase 2 from a `pretrained_path` that has not finished)."""
    record = read_run(run)
    accuracy = record.value("after_phase_1") if record is not None else None
    if accuracy is None:
        raise UserError(f"{run}: no accuracy after phase 1 (no phase-1 row, no summary.json)")
    return accuracy


ORIGIN = "origin.json"  # what bench.original_semi records in each folder of a run by the original's own code


def code_runs(results: Path) -> list[Path]:
    """The folders under a results root that hold a semi-supervised run by the original's own code
    (`bench.original_semi`, from one of our runs' phase-1 network or seed)."""
    return sorted(path.parent for path in Path(results).glob(f"*/{ORIGIN}"))


def read_code_run(folder: Path, results: Path) -> dict:
    """A run by the original's code (`code_runs`): its CURVES key (`key`), the run of ours it started from
    (`source`: its name and seed, 'semi_bp_100_seeds/S-5'; `ours`: that folder under `results`, None where it is
    not there), whether the original's code trained phase 1 too (`whole`), its test accuracy (%) after phase 1
    (`after_phase_1`: its own with `whole`, else our run's; None where neither is known) and after each phase-2
    epoch it has run (`accuracy`), and the phase-2 epochs its config plans (`epochs`)."""
    try:
        origin = json.loads((folder / ORIGIN).read_text())
        # no "phase_1": a record from before --whole, when phase 2 from our run's network was the only mode
        cfg, source, whole = origin["config"], Path(origin["from"]), origin.get("phase_1") == "original"
        epochs, key = int(cfg["epochs"]), key_of(cfg)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise UserError(f"{folder / ORIGIN}: not a record of bench.original_semi ({e})") from None
    if key is None:
        raise UserError(f"{folder / ORIGIN}: its config is not a semi-supervised run's")
    name = f"{source.parent.name}/{source.name}"  # the run of ours by its path under the root it ran in
    ours = Path(results) / name if (Path(results) / name / "config.json").is_file() else None
    if whole:
        after_phase_1 = float(_accuracy(_errors(folder / PHASE_FILES[0], "Test_Error")[-1]))
    else:
        after_phase_1 = phase_1_accuracy(ours) if ours is not None else None
    phase_2 = folder / PHASE_FILES[1]  # absent until its first phase-2 epoch ends
    accuracy = _accuracy(_errors(phase_2, "Supervised_Test_Error")).tolist() if phase_2.is_file() else []
    return {"key": key, "source": name, "ours": ours, "whole": whole, "after_phase_1": after_phase_1,
            "accuracy": accuracy, "epochs": epochs}


def table5_runs(results: Path) -> list[Path]:
    """The folders of Table 5's runs (+ WTA + homeostasis) found under a results root, BP then EP."""
    found = [find(Path(results), SEMI[semi_key(rule, labels, "wta_homeostasis")]) for rule in PAPER_RULES
             for labels in TABLE5_LABELS]
    return [rec.folder for rec in found if rec is not None and rec.phase_rows and rec.phase_rows[1]]


def phase_2_accuracy(run: Path) -> list[float]:
    """Our run's test accuracy (%) after each phase-2 epoch (results.csv's `error`, after the supervised half)."""
    with (run / "results.csv").open(newline="") as f:
        return [100 * (1 - float(row["error"])) for row in csv.DictReader(f) if row["phase"] == "2"]


def _semi_run(run: Path) -> tuple[str, list[float]]:
    """A semi-supervised run's CURVES key and its accuracy per phase-2 epoch; UserError for any other folder."""
    try:
        key = key_of(json.loads((run / "config.json").read_text()))
        if key is None:
            raise UserError(f"{run}: not a semi-supervised run")
        accuracy = phase_2_accuracy(run)
    except (OSError, ValueError, KeyError) as e:
        raise UserError(f"{run}: no readable config.json and results.csv ({e})") from None
    if not accuracy:
        raise UserError(f"{run}: no phase-2 epoch yet")
    return key, accuracy


def _semi_line(key: str, c: dict) -> str:
    return (f"{key}: {c['seeds']} seeds, phase 2: {len(c['mean'])} epochs, "
            f"last {half_up(c['mean'][-1], 2)} ± {half_up(c['std'][-1], 2)}")


def _cnn_line(name: str, d: dict) -> str:
    final = np.array(d["final"])
    return f"{name}: {len(final)} runs, {half_up(final.mean(), 2)} ± {half_up(final.std(), 2)} (population std)"


def _mlp_line(key: str, c: dict) -> str:
    shares = ", ".join(f"{share} %: {half_up(v['direct'][0], 2)} / {half_up(v['linear'][0], 2)}"
                       for share, v in c.get("shares", {}).items())
    epochs = (f"{c['seeds']} seeds, {len(c['mean'])} epochs, last {half_up(c['mean'][-1], 2)} ± "
              f"{half_up(c['std'][-1], 2)}; " if "mean" in c else "")
    return f"{key}: {epochs}direct / linear: {shares}"


# The records the original's result files are read into, by option: (reader, default file, the key holding one
# entry per configuration, dataset or network, what the record holds, a summary line of an entry).
RECORDS = {
    "checkout": (read_checkout, CURVES, "curves",
                 "test accuracy (%) of the original code's semi-supervised runs: seeds, phase-1 epochs, [mean, std] "
                 "after phase 1, mean and std (over seeds) after each phase-2 epoch, and each seed's [after phase 1, "
                 "end]", _semi_line),
    "cnn": (read_cnn_checkout, CNN_READOUTS, "datasets",
            "the original code's unsupervised CNN runs (simuResults/unsupervised_cnn/<dataset>/bp-<n>/): each run's "
            "test accuracy (%) after its final linear read-out, that read-out's epochs, and the config.json the runs "
            "named in config_of recorded", _cnn_line),
    "mlp": (read_mlp_checkout, MLP_CURVES, "curves",
            "the original code's unsupervised MLP runs, trained (simuResults/unsupervised_<rule>_<n>layer/) and "
            "untrained (untrain_<n>layer/): seeds, and mean and population std over them of the test accuracy (%) "
            "of the direct association after each epoch with all labels (full_labels/), and for each share of the "
            "labels (1percent/, 5percent/, 50percent/, full_labels/) of the direct association at the last epoch "
            "and of the linear read-out after its last epoch", _mlp_line),
}


def _record_command(kind: str, checkout: Path, out: Path) -> int:
    """Read a checkout's result files into the record of `kind` (RECORDS), written to `out`."""
    read, _, body, what, line = RECORDS[kind]
    if not out.parent.is_dir():
        raise UserError(f"--out {out}: no folder {out.parent}")
    entries = read(checkout)
    out.write_text(_dumps({"source": SOURCE, "commit": _commit(checkout), "what": what, body: entries}, body))
    for key, entry in entries.items():
        print(line(key, entry))
    print(out)
    return 0


@one_line_errors
def main(argv=None) -> int:
    p = OneLineParser(prog="python -m funcs.original_curves", description=__doc__.split("\n")[0])
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--checkout", help=f"a checkout of {SOURCE}: rewrite the semi-supervised curves from its "
                                         f"result files (default --out: {CURVES.relative_to(REPO)})")
    what.add_argument("--cnn", metavar="CHECKOUT",
                      help="a checkout: rewrite the CNN runs' final read-outs (default --out: "
                           f"{CNN_READOUTS.relative_to(REPO)})")
    what.add_argument("--mlp", metavar="CHECKOUT",
                      help="a checkout: rewrite the MLP runs per epoch and by share of labels (default --out: "
                           f"{MLP_CURVES.relative_to(REPO)})")
    what.add_argument("--plot", metavar="OUT.png", help="draw the semi-supervised RUN_DIRs over the original's curves")
    p.add_argument("--gains", action="store_true",
                   help="with --plot: all RUN_DIRs in one panel, as gains over their own phase 1")
    p.add_argument("runs", nargs="*", metavar="RUN_DIR",
                   help="with --plot: semi-supervised run folders (default: Table 5's runs under --results)")
    p.add_argument("--results", default="simuResults", help="with --plot and no RUN_DIR: the results root")
    p.add_argument("--out", help="with --checkout, --cnn or --mlp: where to write (default: its file in docs/)")
    args = p.parse_args(argv)
    if args.gains and not (args.plot and args.runs):
        p.error("--gains draws the RUN_DIRs given after --plot OUT.png")
    if args.plot:
        runs = [Path(r) for r in args.runs] or table5_runs(Path(args.results))
        return _plot_command(Path(args.plot), runs, plot_gains if args.gains else plot)
    kind = next(k for k in RECORDS if getattr(args, k))
    return _record_command(kind, Path(getattr(args, kind)), Path(args.out or RECORDS[kind][1]))


def _plot_command(out: Path, runs: list[Path], draw=plot) -> int:
    if not runs:
        raise UserError("--plot: no RUN_DIR given and no Table 5 run under --results")
    print(draw(runs, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
