"""The paper's figures and tables, redrawn from our own run folders: what `reproduce_figures.ipynb` calls.

One registry, `REGISTRY`, says for every figure (the paper's numbering: 2, 4,
5, 6, 9, 10, 11, 12, 13) and table (3, 4, 5) which run folders it reads
(paths relative to a results root, `simuResults/` for ours), the command that
writes each folder, and the paper's numbers to compare with. The functions
below read run folders (single runs and `--seeds` roots), draw each figure into
`<out>/<name>.png` and print the tables, paper beside ours.

Nothing here trains. A run that is missing is left out of its figure and its
command is printed (a figure with no data at all becomes a PNG that says which
commands produce it); a shortened or unfinished run is labelled from what its
own folder says ("108 of 200 epochs (unfinished), 1 seed"), a read-out from the
epochs its trained run had done when read (its summary.json). A damaged
extracted array counts as missing, in one line. The paper's numbers only ever
appear as reference markers or columns marked "paper".

    python -m funcs.figures draw --results simuResults --out figuresPlot
    python -m funcs.figures tables --results simuResults
    python -m funcs.figures commands --missing         # what to run for the missing data
    python -m funcs.figures extract max_activation simuResults/unsupervised_bp_1layer --data_dir data
    python -m funcs.figures notebook                   # reproduce_figures.ipynb, headless
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import re
import sys
import textwrap
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from funcs import plots
from funcs.results import accuracies

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "reproduce_figures.ipynb"

# Small arrays extracted from trained models (funcs/extract.py), committed beside their run.
MAX_ACTIVATION = "max_activation.npz"
FIRST_LAYER = "first_layer_weights.npz"
UMAP = "umap.npz"
UMAP_PRETRAINED = "umap_pretrained.npz"  # the phase-1 network of a semi-supervised run


# --- the registry -------------------------------------------------------------------------

@dataclass(frozen=True)
class Source:
    """One run folder a figure reads, and the command that writes it.

    path: the folder, relative to the results root; also: other folders holding
    the same run (an unfinished copy), read when `path` is not there.
    command: the paper's full run, without --out; shorten: the extra arguments
    of our CPU run where the full one does not fit ("" when it is the full run);
    full_epochs: the paper's epochs, so that a shorter run is labelled as such.
    file: a small array file the figure reads, extracted from the trained model
    by `extract` (an `python -m funcs.figures extract ...` line).
    seeds: more than 1 makes `path` a `--seeds` root: one run per seed in
    `path/S-<seed>/` and their mean and std in `seeds_summary.json`.
    """
    path: str
    command: str
    label: str
    full_epochs: int | None = None
    shorten: str = ""
    also: tuple[str, ...] = ()
    file: str | None = None
    extract: str = ""
    note: str = ""
    seeds: int = 1

    def produce(self, root="simuResults") -> str:
        """The command that writes this folder under `root` (with the CPU shortening, if any)."""
        command = self.command.replace(ROOT, str(root))
        seeds = f"--seeds {self.seeds}" if self.seeds > 1 else ""
        return " ".join(p for p in (command, self.shorten, seeds, f"--out {root}/{self.path}") if p)

    def extract_command(self, root="simuResults") -> str:
        return self.extract.replace(ROOT, str(root)).replace("{path}", self.path)


@dataclass(frozen=True)
class Paper:
    """A number of the paper (PAPER-TARGETS.md): mean and spread over the paper's runs (None: not given)."""
    mean: float
    std: float | None = None
    note: str = ""


@dataclass(frozen=True)
class Entry:
    """A figure or a table: its sources by key, the paper's numbers by key, and the function that draws it."""
    name: str
    title: str
    sources: dict[str, Source]
    paper: dict[str, Paper] = field(default_factory=dict)
    kind: str = "figure"  # or "table"
    note: str = ""


ROOT = "{root}"  # in a command: the results root its folders go to (simuResults/ for ours)


def _cmd(rule: str, preset: str, *sets: str) -> str:
    return f"python -m {rule}.main --json_path configFile/{preset}" + "".join(f" --set {s}" for s in sets)


_EXTRACT = "python -m funcs.figures extract {kind} {{root}}/{{path}} --data_dir data"  # .format(kind=...)

# The unsupervised MLPs and CNNs (Figure 2, Tables 3 and 4), as committed under simuResults/.
MLP = {
    "bp_1layer": Source("unsupervised_bp_1layer", _cmd("bp", "unsupervised_bp/1layer"), "BP 784-2000", 200),
    "ep_1layer": Source("unsupervised_ep_1layer", _cmd("ep", "unsupervised_ep/1layer"), "EP 784-2000", 100),
    "bp_2layer": Source("unsupervised_bp_2layer", _cmd("bp", "unsupervised_bp/2layer"), "BP 784-2000-2000", 200,
                        also=("unsupervised_bp_2layer_partial",)),
    "ep_2layer": Source("unsupervised_ep_2layer", _cmd("ep", "unsupervised_ep/2layer"), "EP 784-2000-2000", 100,
                        also=("unsupervised_ep_2layer_partial",),
                        note="a GPU job: 28 minutes per epoch on 2 CPU cores"),
}
CNN = {name: Source(f"unsupervised_bp_cnn_{name}", _cmd("bp", f"unsupervised_bp/cnn/{name}"), label, epochs,
                    also=(f"unsupervised_bp_cnn_{name}_partial",))
       for name, label, epochs in (("mnist", "CNN MNIST", 30), ("fashionMnist", "CNN Fashion-MNIST", 20),
                                   ("svhn", "CNN SVHN", 40), ("cifar10", "CNN CIFAR-10", 40))}
# Table 3 over seeds: each network's run repeated with seeds 1 to N in <path>/S-<seed>/ (the paper gives a mean
# and std); read in place of the single run above (seed 1) once the seeds root exists.
SEEDS = {key: dataclasses.replace(MLP[key], path=f"{MLP[key].path}_seeds", seeds=n,
                                  also=(MLP[key].path, *MLP[key].also))
         for key, n in (("bp_1layer", 5), ("ep_1layer", 5), ("bp_2layer", 3))}
# Table 3's Hebbian neighbours (issue 17), on our pipeline: the same data, association and classifier; 3 seeds each.
HEBB = {name: Source(f"unsupervised_hebb_{name}_seeds", _cmd("hebb", f"unsupervised_hebb/{name}"), label, epochs,
                     seeds=3, also=(f"unsupervised_hebb_{name}",))
        for name, label, epochs in (("softhebb", "SoftHebb 784-2000", 10), ("hard_wta", "hard WTA 784-2000", 10),
                                    ("krotov", "Krotov-Hopfield 784-2000", 200))}
SUPERVISED_CNN = {name: Source(f"supervised_bp_cnn_{name}", _cmd("bp", f"supervised_bp/cnn/{name}"),
                               f"supervised CNN {name}", also=(f"supervised_bp_cnn_{name}_partial",))
                  for name in ("mnist", "fashionMnist", "svhn")}

# Paper Table 3 (all 60,000 labels) and Tables 2 and 4 (CNN + linear classifier; the same CNN supervised).
TABLE3_PAPER = {
    "bp_1layer/direct": Paper(95.78, 0.14), "bp_1layer/linear": Paper(97.08, 0.11),
    "ep_1layer/direct": Paper(95.77, 0.08), "ep_1layer/linear": Paper(97.25, 0.07),
    "bp_2layer/direct": Paper(96.61, 0.07), "bp_2layer/linear": Paper(97.60, 0.11),
    "ep_2layer/direct": Paper(96.60, 0.15), "ep_2layer/linear": Paper(97.57, 0.10),
    # quoted by the paper from their own papers
    "softhebb/direct": Paper(96.3), "softhebb/linear": Paper(97.8), "hard_wta/direct": Paper(96.2),
    "hard_wta/linear": Paper(97.8), "krotov/linear": Paper(98.5),
}
TABLE3_OTHERS = [("STDP (Diehl and Cook)", 95.0, None)]
TABLE4_PAPER = {"mnist/linear": Paper(99.17, 0.05), "fashionMnist/linear": Paper(90.25, 0.26),
                "svhn/linear": Paper(81.53, 1.15), "cifar10/linear": Paper(71.5, 0.3),
                "mnist/supervised": Paper(99.6), "fashionMnist/supervised": Paper(93.1),
                "svhn/supervised": Paper(93.4)}

# Figures 4 and 5: `train_class_layer` on a trained (or untrained) network with a share of the labels.
# The classifier's learning rate by share of labels is the paper's Table 7.
SHARES = (1, 5, 50, 100)  # % of the training labels
CLASS_LR = {"bp": {1: 0.05, 5: 0.065, 50: 0.09, 100: 0.1}, "ep": {1: 0.0085, 5: 0.008, 50: 0.005, 100: 0.0022}}
LABEL_NETWORKS = {  # key: (rule, preset, trained run (None: untrained), legend)
    "bp_1layer_trained": ("bp", "unsupervised_bp/1layer", MLP["bp_1layer"], "unsupervised BP 1-layer"),
    "ep_1layer_trained": ("ep", "unsupervised_ep/1layer", MLP["ep_1layer"], "unsupervised EP 1-layer"),
    "bp_2layer_trained": ("bp", "unsupervised_bp/2layer", MLP["bp_2layer"], "unsupervised BP 2-layer"),
    "ep_2layer_trained": ("ep", "unsupervised_ep/2layer", MLP["ep_2layer"], "unsupervised EP 2-layer"),
    "bp_1layer_untrained": ("bp", "unsupervised_bp/1layer", None, "untrained 1-layer"),
    "bp_2layer_untrained": ("bp", "unsupervised_bp/2layer", None, "untrained 2-layer"),
}


def _label_share(key: str, share: int) -> Source:
    """A read-out (train_class_layer) of the trained run, or of an untrained network of the preset's shape."""
    rule, preset, trained, legend = LABEL_NETWORKS[key]
    sets = [f"class_label_percentage={share / 100:g}", f"class_lr=[{CLASS_LR[rule][share]}]"]
    if trained is None:
        command = _cmd(rule, preset, "action=train_class_layer", *sets)
    else:  # --trained_path makes it a train_class_layer run of that network
        command = _cmd(rule, preset, *sets) + f" --trained_path {ROOT}/{trained.path}"
    return Source(f"label_share/{key}/{share}", command, legend, trained.full_epochs if trained else None)


def _label_sources(keys) -> dict[str, Source]:
    return {f"{key}/{share}": _label_share(key, share) for key in keys for share in SHARES}


# Figure 9 and Table 5: semi-supervised 784-5000-10. The preset is "+ WTA + homeostasis"; "+ WTA" is the
# same phase 2 without homeostasis (gamma 0) from the same phase-1 network; "supervised only" is that
# phase-1 network, whose accuracy every run records (after_phase_1). semi_seed 1 fixes the labeled subset.
SEMI_LABELS = (100, 300, 600, 1000, 3000)
SEMI_EPOCHS = {"bp": (200, 400), "ep": (100, 200)}  # N1, N2 (paper Table 10)
SEMI_SHORTEN = "--set epochs=10"  # on a 2-core CPU: phase 1 in full, 10 phase-2 epochs (a phase-2 epoch: ~1 min)
SEMI_VARIANTS = {"supervised": "supervised only", "wta": "+ WTA", "wta_homeostasis": "+ WTA + homeostasis"}


def _semi(rule: str, labels: int, variant: str) -> Source:
    base = f"semi_{rule}_{labels}"
    preset = _cmd(rule, f"semi_{rule}/{labels}", "semi_seed=1")
    if variant == "wta":
        return Source(f"{base}_wta", preset + f" --set gamma=0 --set pretrained_path={ROOT}/{base}",
                      SEMI_VARIANTS[variant], SEMI_EPOCHS[rule][1], shorten=SEMI_SHORTEN,
                      also=(f"{base}_wta_partial",),
                      note=f"phase 2 only, from the phase-1 network of {base} (its pretrained.pt)")
    return Source(base, preset, SEMI_VARIANTS[variant], sum(SEMI_EPOCHS[rule]), also=(f"{base}_partial",),
                  shorten=SEMI_SHORTEN)


def _with_umap(src: Source, variant: str) -> Source:
    """Figure 10's source: the UMAP of the run's test outputs (of its phase-1 network for "supervised only")."""
    if variant == "supervised":
        return dataclasses.replace(src, file=UMAP_PRETRAINED, extract=_EXTRACT.format(kind="umap") + " --pretrained")
    return _with_file(src, UMAP, "umap")


SEMI = {f"{rule}/{labels}/{variant}": _semi(rule, labels, variant)
        for rule in ("bp", "ep") for labels in SEMI_LABELS for variant in SEMI_VARIANTS}
# The metric each variant reads from its folder.
SEMI_METRIC = {"supervised": "after_phase_1", "wta": "test", "wta_homeostasis": "test"}
TABLE5_PAPER = {"bp/100": Paper(88.43, 1.60), "bp/600": Paper(94.88, 0.35), "bp/1000": Paper(95.66, 0.27),
                "bp/3000": Paper(96.76, 0.11), "ep/100": Paper(88.41, 3.13), "ep/600": Paper(96.57, 0.22),
                "ep/1000": Paper(96.79, 0.12), "ep/3000": Paper(97.03, 0.17)}
PSEUDO_LABEL = {100: 83.85, 600: 94.97, 1000: 95.70, 3000: 97.20}  # Lee 2013, paper Table 5

# Figure 12: batch against sequential homeostasis, 784-500 and 784-1024-500. The paper gives no
# hyperparameters for it: the 2,000-output presets' with the sizes changed; sequential mode is batch size 1
# with the learning rate divided by the preset's batch size (the same step per example).
HOMEOSTASIS_NETS = {  # (rule, layers): (preset, fcLayers, the preset's lr and batch size)
    ("bp", "1layer"): ("unsupervised_bp/1layer", "[784,500]", (8,), 16),
    ("bp", "2layer"): ("unsupervised_bp/2layer", "[784,1024,500]", (2.5, 5), 16),
    ("ep", "1layer"): ("unsupervised_ep/1layer", "[784,500]", (0.03,), 16),
    ("ep", "2layer"): ("unsupervised_ep/2layer", "[784,1024,500]", (0.01, 0.015), 32),
}
FULL_EPOCHS = {"bp": 200, "ep": 100}  # the unsupervised MLPs' epochs (paper Table 6)


def _homeostasis(rule: str, layers: str, mode: str) -> Source:
    preset, sizes, lrs, batch = HOMEOSTASIS_NETS[rule, layers]
    sets = [f"fcLayers={sizes}"]
    if mode == "sequential":
        sets += ["batchSize=1", "lr=[" + ",".join(f"{lr / batch:g}" for lr in lrs) + "]"]
    return Source(f"homeostasis/{rule}_{layers}_{mode}", _cmd(rule, preset, *sets),
                  f"{'one' if layers == '1layer' else 'two'}-layer {mode} mode", FULL_EPOCHS[rule],
                  shorten="--set epochs=2 --set class_epoch=0")


HOMEOSTASIS = {f"{rule}/{layers}/{mode}": _homeostasis(rule, layers, mode)
               for rule, layers in HOMEOSTASIS_NETS for mode in ("batch", "sequential")}

# Figure 13: one unsupervised layer of 10 to 2,000 outputs, direct association with 2% of the labels
# (class_label_percentage 0.02 is used at every epoch). gamma stays the 2,000-output presets'; k scales with
# the number of outputs (paper section 6.1: more outputs, more winners), k = round(k_2000 * n / 2000) half up, at
# least 1; with as many outputs as classes the output has no dropout (paper section 2.3).
# BP's learning rate scales as n / 2000 too: its MSE loss is a mean over the outputs, so the gradient of each
# neuron's weights shrinks as 1 / n, and the preset's lr (tuned for 2,000 outputs) would take a 2000 / n times
# larger per-neuron step. Unscaled, 784-10 collapsed: after 5 epochs the max rule sent every test image to one
# class (9.8%; mean rule 24.75%). EP's nudge is per neuron, so its lr stays.
N_OUT = (10, 100, 500, 1000, 2000)
N_OUT_PRESET = {"bp": (6, "[0.3,0]", 8.0), "ep": (5, "[0.3,0]", None)}  # k, dropProb at n = 10, lr at n = 2000


def _n_out(rule: str, n: int) -> Source:
    k_2000, no_output_dropout, lr_2000 = N_OUT_PRESET[rule]
    sets = [f"fcLayers=[784,{n}]", f"nudge={max(1, math.floor(k_2000 * n / 2000 + 0.5))}",
            "class_label_percentage=0.02"] + ([f"dropProb={no_output_dropout}"] if n == 10 else [])
    if lr_2000 is not None and n != 2000:
        sets.append(f"lr=[{lr_2000 * n / 2000:g}]")
    return Source(f"n_out/{rule}_{n}", _cmd(rule, f"unsupervised_{rule}/1layer", *sets), f"{rule.upper()} 784-{n}",
                  FULL_EPOCHS[rule], shorten="--set epochs=5")


N_OUT_RUNS = {f"{rule}/{n}": _n_out(rule, n) for rule in ("bp", "ep") for n in N_OUT}
# Paper section 6.3: about 60% with 10 outputs; 93.3 (BP) and 93.4 (EP) with 500, which is 2.5 and 2.4
# points below the 2,000-output networks.
N_OUT_PAPER = {"bp/10": Paper(60, note="about"), "ep/10": Paper(60, note="about"),
               "bp/500": Paper(93.3), "ep/500": Paper(93.4), "bp/2000": Paper(95.8), "ep/2000": Paper(95.8)}


def _with_file(src: Source, file: str, kind: str) -> Source:
    """The source with an extracted array file the figure reads, and its extract command."""
    return dataclasses.replace(src, file=file, extract=_EXTRACT.format(kind=kind))


SUPERVISED_MLP = {
    "bp_1layer": Source("supervised_bp_1layer", _cmd("bp", "supervised_bp/1layer"), "supervised BP 784-2000", 100,
                        shorten="--set epochs=20"),
    "bp_2layer": Source("supervised_bp_2layer", _cmd("bp", "supervised_bp/2layer"), "supervised BP 784-2000-2000", 200,
                        shorten="--set epochs=10"),
}

REGISTRY: dict[str, Entry] = {e.name: e for e in (
    Entry("fig2_accuracies", "Figure 2: unsupervised MLPs and CNNs (test accuracy, %)",
          {**MLP, **{f"cnn_{k}": v for k, v in CNN.items() if k != "cifar10"},
           **{f"supervised_cnn_{k}": v for k, v in SUPERVISED_CNN.items()}},
          {**TABLE3_PAPER, **{f"cnn_{k}": v for k, v in TABLE4_PAPER.items()}}),
    Entry("fig4_label_share_untrained", "Figure 4: trained 1-layer against untrained networks, by share of labels",
          _label_sources(("bp_1layer_trained", "ep_1layer_trained", "bp_1layer_untrained", "bp_2layer_untrained")),
          {f"{k}/100/{m}": TABLE3_PAPER[f"{k[:9]}/{m}"] for k in ("bp_1layer_trained", "ep_1layer_trained")
           for m in ("direct", "linear")}),
    Entry("fig5_label_share_2layer", "Figure 5: trained 2-layer against 1-layer networks, by share of labels",
          _label_sources(("bp_1layer_trained", "ep_1layer_trained", "bp_2layer_trained", "ep_2layer_trained")),
          {f"{k}/100/{m}": TABLE3_PAPER[f"{k[:9]}/{m}"] for k in ("bp_1layer_trained", "ep_1layer_trained",
                                                                   "bp_2layer_trained", "ep_2layer_trained")
           for m in ("direct", "linear")}),
    Entry("fig6_max_activation", "Figure 6: maximum-activation images of the two most responsive output "
          "neurons per class, unsupervised BP",
          {"bp_1layer": _with_file(MLP["bp_1layer"], MAX_ACTIVATION, "max_activation"),
           "bp_2layer": _with_file(MLP["bp_2layer"], MAX_ACTIVATION, "max_activation")}),
    Entry("fig9_semi_supervised", "Figure 9: semi-supervised test accuracy by number of labels", SEMI,
          {f"{k}/wta_homeostasis": v for k, v in TABLE5_PAPER.items()}),
    Entry("fig10_umap", "Figure 10: UMAP of the semi-supervised network's test outputs, 100 labels (BP)",
          {v: _with_umap(SEMI[f"bp/100/{v}"], v) for v in SEMI_VARIANTS}),
    Entry("fig11_first_layer_weights", "Figure 11: first-layer weights of 20 neurons, BP",
          {"supervised_1layer": _with_file(SUPERVISED_MLP["bp_1layer"], FIRST_LAYER, "weights"),
           "unsupervised_1layer": _with_file(MLP["bp_1layer"], FIRST_LAYER, "weights"),
           "supervised_2layer": _with_file(SUPERVISED_MLP["bp_2layer"], FIRST_LAYER, "weights"),
           "unsupervised_2layer": _with_file(MLP["bp_2layer"], FIRST_LAYER, "weights")}),
    Entry("fig12_homeostasis_mode", "Figure 12: batch against sequential homeostasis (test error, %)", HOMEOSTASIS,
          note="hyperparameters not in the paper: the presets', sizes changed; sequential: batch 1, lr / batch"),
    Entry("fig13_n_out", "Figure 13: direct association with 2% of the labels against the number of outputs",
          N_OUT_RUNS, N_OUT_PAPER),
    Entry("table3", "Table 3: unsupervised MLPs on MNIST, all labels (test accuracy, %)", {**MLP, **SEEDS, **HEBB},
          TABLE3_PAPER, kind="table"),
    Entry("table4", "Table 4: unsupervised CNN + linear classifier (test accuracy, %)",
          {**CNN, **{f"supervised_{k}": v for k, v in SUPERVISED_CNN.items()}}, TABLE4_PAPER, kind="table"),
    Entry("table5", "Table 5: semi-supervised MNIST, + WTA + homeostasis (test accuracy, %)",
          {f"{rule}/{n}": SEMI[f"{rule}/{n}/wta_homeostasis"] for rule in ("bp", "ep") for n in (100, 600, 1000, 3000)},
          TABLE5_PAPER, kind="table"),
)}


# --- reading run folders ----------------------------------------------------------------------

@dataclass
class Record:
    """What a run folder (or a `--seeds` root) says: accuracies (%), their spread, seeds and epochs."""
    folder: Path
    config: dict
    accuracy: dict[str, float]  # mean over seeds for a seeds root
    std: dict[str, float]  # sample std (ddof 1) over seeds; 0 for one run
    seeds: list[int]
    epochs_run: int | None  # rows of results.csv (both phases of a semi-supervised run); min over seeds
    epochs_planned: int | None  # what its config asks for
    finished: bool  # summary.json written (every seed's, for a seeds root)
    phase_rows: tuple[int, int] | None = None  # semi-supervised: rows of phase 1 and phase 2
    trained: Record | None = None  # train_class_layer: the trained run it evaluated, when found

    def value(self, metric: str) -> float | None:
        """An accuracy (%) named as summary.json's accuracy_percent; None if the run has none (yet)."""
        return self.accuracy.get(metric)

    def describe(self, full_epochs: int | None = None, seeds: bool = True) -> str:
        """'108 of 200 epochs (unfinished), 1 seed', from the folder's own config and rows.

        full_epochs: the paper's epochs (of the trained network, for a read-out), so a shorter run says so.
        """
        parts = []
        train_size = self.config.get("train_size")
        if self.config.get("action") == "train_class_layer" and self.config.get("trained_path"):
            parts.append("read-out of a network trained " + (self.trained.describe(full_epochs, seeds=False)
                                                             if self.trained else "in a folder not found"))
            train_size = None  # said by the trained run's part
        elif self.config.get("action") == "train_class_layer":
            parts.append("untrained network")
        elif self.epochs_run is not None:
            parts.append(_epochs_text(self, full_epochs))
        if train_size:
            parts.append(f"{train_size} training images")
        if seeds:
            parts.append(f"{len(self.seeds)} seed" + ("s" if len(self.seeds) != 1 else ""))
        return ", ".join(parts)


def _epochs_text(rec: Record, full: int | None) -> str:
    run, planned = rec.epochs_run, rec.epochs_planned
    if rec.phase_rows is not None:
        cfg = rec.config
        p1, p2 = rec.phase_rows
        text = (f"phase 1: {p1} of {cfg['pre_epochs']}, " if not cfg.get("pretrained_path") else "") + \
               f"phase 2: {p2} of {cfg['epochs']} epochs"
    else:
        text = f"{run} of {planned} epochs" if planned is not None else f"{run} epochs"
    shortened = full is not None and planned is not None and planned < full
    if shortened and run == planned and rec.phase_rows is None:
        return f"{run} of {full} epochs (shortened)"
    if planned is not None and run < planned:
        text += " (unfinished" + (f"; shortened from the paper's {full})" if shortened else ")")
    elif shortened:
        text += f" (shortened from the paper's {full})"
    return text


def _read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _planned_epochs(cfg: dict) -> int | None:
    if cfg.get("action") == "train_class_layer":
        return None
    if str(cfg.get("action", "")).startswith("semi_supervised") and not cfg.get("pretrained_path"):
        return cfg["pre_epochs"] + cfg["epochs"]
    return cfg.get("epochs")


def _accuracies_from_rows(rows: list[dict]) -> dict[str, float]:
    """The accuracies of an unfinished run: its last row (and, semi-supervised, its last phase-1 row)."""
    if not rows:
        return {}
    last = {k: float(v) for k, v in rows[-1].items() if k.startswith("error") and v not in ("", "nan")}
    if "phase" in rows[0]:
        phase1 = [r for r in rows if r["phase"] == "1"]
        last = {"error": float(rows[-1]["error"])} if rows[-1]["phase"] == "2" else {}
        if phase1:
            last["pretrain_error"] = float(phase1[-1]["error"])
    return accuracies({k: v for k, v in last.items() if not math.isnan(v)})


def _read_single(folder: Path, root: Path | None = None, rows_read: int | None = None) -> Record | None:
    """One run folder: summary.json's accuracies, or, unfinished, those of its last results.csv row.

    rows_read: only the first rows of results.csv count: the epochs a read-out found done when it read
    this (trained) run, which may have gone on since.
    """
    if not (folder / "config.json").is_file():
        return None
    cfg = json.loads((folder / "config.json").read_text())
    rows = _read_csv(folder / "results.csv")[:rows_read]
    summary_path = folder / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else None
    acc = dict(summary["accuracy_percent"]) if summary else _accuracies_from_rows(rows)
    phase_rows = None
    if rows and "phase" in rows[0]:
        phase_rows = (sum(r["phase"] == "1" for r in rows), sum(r["phase"] == "2" for r in rows))
    trained = None
    if cfg.get("action") == "train_class_layer" and cfg.get("trained_path"):
        # the trained run as the read-out found it (summary.json's trained_network; older read-outs: as it is now)
        read = (summary or {}).get("trained_network") or {}
        trained = _read_single(_resolve(cfg["trained_path"], root), root, read.get("epochs_done"))
    seed = summary["seed"] if summary else cfg.get("seed")
    epochs_run = len(rows) if rows or summary is None or rows_read is not None else None  # None: a read-out
    return Record(folder, cfg, acc, {k: 0.0 for k in acc}, [seed], epochs_run, _planned_epochs(cfg),
                  summary is not None, phase_rows, trained)


def _resolve(path: str, root: Path | None) -> Path:
    """A folder a config names (trained_path): as given, or from the results root or its parent."""
    p = Path(path)
    for candidate in (p, *((root / p, root.parent / p, root / p.name) if root is not None else ())):
        if (candidate / "config.json").is_file():
            return candidate
    return p


def read_run(folder: Path, root: Path | None = None) -> Record | None:
    """Read a run folder or a `--seeds` root (S-<seed>/ folders, seeds_summary.json); None if it is not there."""
    folder = Path(folder)
    seed_dirs = sorted((d for d in folder.glob("S-*") if (d / "config.json").is_file()),
                       key=lambda d: int(d.name[2:]) if d.name[2:].isdigit() else 0) if folder.is_dir() else []
    if not seed_dirs:
        return _read_single(folder, root)
    per_seed = [r for r in (_read_single(d, root) for d in seed_dirs) if r is not None]
    stats_path = folder / "seeds_summary.json"
    if stats_path.is_file():
        stats = json.loads(stats_path.read_text())
        mean, std, seeds = dict(stats["mean"]), dict(stats["std"]), list(stats["seeds"])
    else:  # seeds still running: the finished ones
        done = [r for r in per_seed if r.finished] or per_seed
        keys = set.intersection(*(set(r.accuracy) for r in done))
        values = {k: np.array([r.accuracy[k] for r in done]) for k in keys}
        mean = {k: round(float(v.mean()), 3) for k, v in values.items()}
        std = {k: round(float(v.std(ddof=1)), 3) if len(v) > 1 else 0.0 for k, v in values.items()}
        seeds = [r.seeds[0] for r in done]
    first = per_seed[0]
    runs = [r.epochs_run for r in per_seed if r.epochs_run is not None]
    return Record(folder, first.config, mean, std, seeds, min(runs) if runs else None, first.epochs_planned,
                  stats_path.is_file() and all(r.finished for r in per_seed), first.phase_rows, first.trained)


def find(root: Path, src: Source) -> Record | None:
    """The record of a source under a results root: its folder, else the first of `also` that exists."""
    for path in (src.path, *src.also):
        rec = read_run(Path(root) / path, Path(root))
        if rec is not None:
            return rec
    return None


def find_file(rec: Record, name: str) -> Path | None:
    """An extracted array file beside a run (in a seeds root: beside it, or in its first seed's folder)."""
    for folder in (rec.folder, *(rec.folder / f"S-{s}" for s in rec.seeds)):
        if (folder / name).is_file():
            return folder / name
    return None


# --- what a drawing returns -------------------------------------------------------------------

@dataclass
class Point:
    """One plotted value and where it comes from."""
    x: float | str
    y: float
    std: float
    folder: Path
    metric: str


@dataclass
class Drawn:
    """A drawn figure: its PNG (None if nothing could be drawn), the plotted series, what is missing."""
    name: str
    path: Path | None
    series: dict[str, list[Point]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # commands that would produce the missing data
    notes: list[str] = field(default_factory=list)  # which run folders, and how shortened
    remarks: list[str] = field(default_factory=list)  # about the missing ones

    @property
    def has_data(self) -> bool:
        return any(self.series.values())

    def report(self) -> str:
        n = sum(len(v) for v in self.series.values())
        lines = [f"{self.name}: {n} values plotted from {len({p.folder for v in self.series.values() for p in v})} "
                 f"folders -> {self.path}"]
        lines += [f"  {note}" for note in self.notes]
        if self.missing:
            lines.append(f"  missing ({len(self.missing)}), produced by:")
            lines += [f"    {cmd}" for cmd in self.missing]
            lines += [f"  note: {remark}" for remark in self.remarks]
        return "\n".join(lines)


def _plt():
    import matplotlib
    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path: Path, footnotes: list[str]) -> Path:
    if footnotes:
        text = "\n".join(footnotes[:12]) + (f"\n... and {len(footnotes) - 12} more" if len(footnotes) > 12 else "")
        fig.text(0.01, 0.005, text, fontsize=6.5, va="bottom", ha="left", family="monospace")
        fig.tight_layout(rect=(0, min(0.45, 0.03 + 0.022 * min(len(footnotes) + 1, 14)), 1, 1))
    else:
        fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    _plt().close(fig)
    return path


def _placeholder(entry: Entry, out: Path, missing: list[str]) -> Path:
    """The PNG of a figure without any data: its title and the commands that produce the data."""
    plt = _plt()
    fig = plt.figure(figsize=(11, 1 + 0.15 * min(len(missing), 25)))
    lines = [entry.title, "", "No data yet. Produced by:"] + [f"  {c}" for c in missing[:24]]
    if len(missing) > 24:
        lines.append(f"  ... and {len(missing) - 24} more (python -m funcs.figures commands --missing)")
    fig.text(0.01, 0.98, "\n".join(lines), va="top", ha="left", fontsize=7, family="monospace")
    return _save(fig, out / f"{entry.name}.png", [])


# What np.load and reading the arrays raise on a truncated, damaged or foreign file.
NPZ_ERRORS = (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error)


def read_npz(path: Path, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Every array of an extracted NPZ, read at once; raises one of NPZ_ERRORS if it is damaged or lacks `names`."""
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    missing = [n for n in names if n not in arrays]
    if missing:
        raise KeyError(f"no array {missing[0]!r}")
    return arrays


class _Collector:
    """Reads an entry's sources under a root; remembers what is missing and how each run was shortened."""

    def __init__(self, entry: Entry, root: Path):
        self.entry, self.root = entry, Path(root)
        self.missing: list[str] = []
        self.notes: list[str] = []
        self.remarks: list[str] = []  # about missing runs: printed, not drawn
        self._seen: set[Path] = set()

    def _missing(self, command: str) -> None:
        if command not in self.missing:
            self.missing.append(command)

    def record(self, key: str) -> Record | None:
        src = self.entry.sources[key]
        rec = find(self.root, src)
        if rec is None:
            self._missing(src.produce(self.root))
            if src.file:
                self._missing(src.extract_command(self.root))
            if src.note and f"{src.path}: {src.note}" not in self.remarks:
                self.remarks.append(f"{src.path}: {src.note}")
            return None
        if rec.folder not in self._seen:
            self._seen.add(rec.folder)
            self.notes.append(f"{rec.folder.relative_to(self.root)}: {rec.describe(src.full_epochs)}")
        return rec

    def value(self, key: str, metric: str, x) -> Point | None:
        rec = self.record(key)
        if rec is None:
            return None
        y = rec.value(metric)
        if y is None:
            self.notes.append(f"{rec.folder.relative_to(self.root)}: no {metric} yet")
            return None
        return Point(x, y, rec.std.get(metric, 0.0), rec.folder, metric)

    def file(self, key: str, names: tuple[str, ...]) -> tuple[Record, Path, dict[str, np.ndarray]] | None:
        """The source's extracted arrays (which must hold `names`) with its record and file.

        None when the run or the file is missing, or the file is damaged (an
        interrupted extraction of older code, a foreign file): the source is then
        left out, its extract command listed as missing and, if damaged, one
        remark names the file and the error.
        """
        src = self.entry.sources[key]
        rec = self.record(key)
        if rec is None:
            return None
        path = find_file(rec, src.file)
        if path is None:
            self._missing(src.extract_command(self.root))
            return None
        try:
            return rec, path, read_npz(path, names)
        except NPZ_ERRORS as err:
            self._missing(src.extract_command(self.root))
            self.remarks.append(f"{path}: damaged ({err.__class__.__name__}: {err}); left out, rewrite it with "
                                f"{src.extract_command(self.root)}")
            return None


def _figure(entry: Entry, c: _Collector, series: dict[str, list[Point]], out: Path, plot: Callable,
            footnotes: bool = True) -> Drawn:
    """What every figure returns: `plot(plt)` draws the series into a matplotlib figure, saved as
    `<out>/<name>.png` (with the collector's notes on its folders as footnotes); without a single point,
    the placeholder PNG listing the commands that produce the data."""
    drawn = Drawn(entry.name, None, series, c.missing, c.notes, c.remarks)
    if drawn.has_data:
        drawn.path = _save(plot(_plt()), out / f"{entry.name}.png", c.notes if footnotes else [])
    else:
        drawn.path = _placeholder(entry, out, c.missing)
    return drawn


# --- the figures ----------------------------------------------------------------------------

METRICS = {"direct": "direct_association_mean", "linear": "linear_classifier"}


def draw_fig2(entry: Entry, root: Path, out: Path) -> Drawn:
    """Grouped bars: direct association and linear classifier of each network; the paper's as markers."""
    c = _Collector(entry, root)
    groups = [k for k in entry.sources if not k.startswith("supervised")]
    series: dict[str, list[Point]] = {"direct association": [], "linear classifier": [], "supervised": []}
    for key in groups:
        for method, name in (("direct", "direct association"), ("linear", "linear classifier")):
            p = c.value(key, METRICS[method], entry.sources[key].label)
            if p:
                series[name].append(p)
        sup = f"supervised_{key}"
        if sup in entry.sources:
            p = c.value(sup, "test", entry.sources[key].label)
            if p:
                series["supervised"].append(p)

    def plot(plt):
        fig, ax = plt.subplots(figsize=(11, 5))
        labels = [entry.sources[k].label for k in groups]
        xs = {label: i for i, label in enumerate(labels)}
        width = 0.27
        for j, (name, points) in enumerate(series.items()):
            if points:
                ax.bar([xs[p.x] + (j - 1) * width for p in points], [p.y for p in points], width,
                       yerr=[p.std for p in points], label=f"ours: {name}", capsize=2)
        for j, method in enumerate(("direct", "linear", "supervised")):
            refs = [(xs[entry.sources[k].label], entry.paper.get(f"{k}/{method}")) for k in groups]
            refs = [(x, p) for x, p in refs if p is not None]
            ax.plot([x + (j - 1) * width for x, _ in refs], [p.mean for _, p in refs], "k_", markersize=18,
                    markeredgewidth=2, label="paper (Tables 3, 4), at its bar's place" if j == 0 else None)
        ax.set_xticks(range(len(labels)), labels, rotation=15, fontsize=8)
        values = [p.y for v in series.values() for p in v]
        ax.set_ylim(max(0, min(values + [90]) - 5), 100)
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(entry.title)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        return fig
    return _figure(entry, c, series, out, plot)


def _label_share_figure(entry: Entry, root: Path, out: Path, styles: dict[str, str]) -> Drawn:
    """Accuracy against the share of labels (1, 5, 50, 100 %): direct association and linear classifier."""
    c = _Collector(entry, root)
    networks = list(dict.fromkeys(k.rsplit("/", 1)[0] for k in entry.sources))
    series = {}
    for method in ("direct", "linear"):
        for net in networks:
            points = [c.value(f"{net}/{s}", METRICS[method], s) for s in SHARES]
            series[f"{method}: {LABEL_NETWORKS[net][3]}"] = [p for p in points if p]

    def plot(plt):
        fig, axes = plt.subplots(1, 2, figsize=(12, 5))
        pos = {s: i for i, s in enumerate(SHARES)}
        for ax, method, title in zip(axes, ("direct", "linear"),
                                     ("(A) direct association", "(B) linear classifier")):
            for net in networks:
                points = series[f"{method}: {LABEL_NETWORKS[net][3]}"]
                if points:
                    ax.errorbar([pos[p.x] for p in points], [p.y for p in points], yerr=[p.std for p in points],
                                fmt=styles[net], capsize=3, label=f"ours: {LABEL_NETWORKS[net][3]}")
                ref = entry.paper.get(f"{net}/100/{method}")
                if ref is not None:
                    ax.plot([pos[100]], [ref.mean], "k_", markersize=14, markeredgewidth=2)
            ax.plot([], [], "k_", markersize=14, markeredgewidth=2, label="paper, all labels (Table 3)")
            ax.set_xticks(range(len(SHARES)), [str(s) for s in SHARES])
            ax.set(xlabel="labels used for class association (%)", ylabel="test accuracy (%)", title=title)
            ax.legend(fontsize=7)
        fig.suptitle(entry.title)
        return fig
    return _figure(entry, c, series, out, plot)


def draw_fig4(entry: Entry, root: Path, out: Path) -> Drawn:
    return _label_share_figure(entry, root, out, {"bp_1layer_trained": "g:o", "ep_1layer_trained": "b:o",
                                                 "bp_1layer_untrained": "m:s", "bp_2layer_untrained": "m-s"})


def draw_fig5(entry: Entry, root: Path, out: Path) -> Drawn:
    return _label_share_figure(entry, root, out, {"bp_1layer_trained": "g:o", "ep_1layer_trained": "b:o",
                                                 "bp_2layer_trained": "g-o", "ep_2layer_trained": "b-o"})


def _image(row: np.ndarray) -> np.ndarray:
    """A flat or (C, H, W) image as something imshow draws: (H, W) or (H, W, C)."""
    row = np.asarray(row, dtype=np.float32)
    if row.ndim == 1:
        side = int(round(math.sqrt(row.size)))
        return row.reshape(side, side)
    return row[0] if row.shape[0] == 1 else np.moveaxis(row, 0, -1)


ROW_GAP = 5  # pixels between rows of a montage: room for the neurons' labels


def montage(images: np.ndarray, columns: int = 10, signed: bool = False) -> np.ndarray:
    """Images tiled into one array, `columns` per row, NaN pixels between them (drawn as background).

    signed: each image divided by its largest |value| (weights, drawn in [-1, 1]); else drawn as they are.
    """
    tiles = [_image(img) for img in images]
    h, w = tiles[0].shape[:2]
    rows = math.ceil(len(tiles) / columns)
    sheet = np.full((rows * (h + ROW_GAP) - ROW_GAP, columns * (w + 1) - 1, *tiles[0].shape[2:]), np.nan,
                    dtype=np.float32)
    for i, tile in enumerate(tiles):
        r, col = divmod(i, columns)
        if signed:
            tile = tile / (float(np.abs(tile).max()) or 1.0)
        sheet[r * (h + ROW_GAP):r * (h + ROW_GAP) + h, col * (w + 1):col * (w + 1) + w] = tile
    return sheet


def _image_panels(entry: Entry, root: Path, out: Path, array: str, titles: dict[str, str], signed: bool) -> Drawn:
    """One panel of 20 images (2 x 10) per source, from its extracted NPZ; the series: neuron, mean |pixel|."""
    c = _Collector(entry, root)
    found = {k: hit for k in entry.sources if (hit := c.file(k, (array, "neurons")))}
    series = {key: [Point(int(n), float(np.abs(img.astype(np.float32)).mean()), 0.0, rec.folder, path.name)
                    for n, img in zip(z["neurons"], z[array])] for key, (rec, path, z) in found.items()}

    def plot(plt):
        fig, axes = plt.subplots(len(found), 1, figsize=(12, 2.9 * len(found) + 0.6), squeeze=False)
        for ax, (key, (rec, _, z)) in zip(axes[:, 0], found.items()):
            ax.imshow(montage(z[array], signed=signed), cmap="bwr" if signed else "gray",
                      vmin=-1 if signed else 0, vmax=1, interpolation="nearest")
            ax.axis("off")
            ax.set_title(f"{titles[key]}: {rec.describe(entry.sources[key].full_epochs)}", fontsize=9, pad=12)
            h, w = _image(z[array][0]).shape[:2]
            for i, neuron in enumerate(z["neurons"]):
                label = f"n{neuron}" + (f" class {z['classes'][i]}" if "classes" in z else "")
                ax.text((i % 10) * (w + 1), (i // 10) * (h + ROW_GAP) - 0.6, label, fontsize=6, va="bottom")
        fig.suptitle(entry.title + ("\nweights of each neuron scaled to its largest |w|; red > 0, blue < 0"
                                    if signed else ""), fontsize=10)
        return fig
    return _figure(entry, c, series, out, plot, footnotes=False)  # each panel's title says its run


def draw_fig6(entry: Entry, root: Path, out: Path) -> Drawn:
    return _image_panels(entry, root, out, "images", {"bp_1layer": "(A) one-layer network",
                                                      "bp_2layer": "(B) two-layer network"}, signed=False)


def draw_fig11(entry: Entry, root: Path, out: Path) -> Drawn:
    return _image_panels(entry, root, out, "weights", {
        "supervised_1layer": "(A) supervised one-layer", "unsupervised_1layer": "(B) unsupervised one-layer",
        "supervised_2layer": "(C) supervised two-layer", "unsupervised_2layer": "(D) unsupervised two-layer"},
        signed=True)


def draw_fig9(entry: Entry, root: Path, out: Path) -> Drawn:
    """Bars by number of labels: supervised only, + WTA, + WTA + homeostasis; BP and EP panels."""
    c = _Collector(entry, root)
    series = {}
    for rule in ("bp", "ep"):
        for variant, name in SEMI_VARIANTS.items():
            points = [c.value(f"{rule}/{n}/{variant}", SEMI_METRIC[variant], n) for n in SEMI_LABELS]
            series[f"{rule.upper()} {name}"] = [p for p in points if p]

    def plot(plt):
        fig, axes = plt.subplots(1, 2, figsize=(12, 5))
        pos = {n: i for i, n in enumerate(SEMI_LABELS)}
        width = 0.27
        for ax, rule in zip(axes, ("bp", "ep")):
            for j, (variant, name) in enumerate(SEMI_VARIANTS.items()):
                points = series[f"{rule.upper()} {name}"]
                if points:
                    ax.bar([pos[p.x] + (j - 1) * width for p in points], [p.y for p in points], width,
                           yerr=[p.std for p in points], capsize=2, label=f"ours: {name}",
                           color=f"C{j}")  # one colour per variant in both panels
            refs = [(pos[n], entry.paper.get(f"{rule}/{n}/wta_homeostasis")) for n in SEMI_LABELS]
            refs = [(x, p) for x, p in refs if p]
            ax.plot([x + width for x, _ in refs], [p.mean for _, p in refs], "k_", markersize=16, markeredgewidth=2,
                    label="paper: + WTA + homeostasis (Table 5)")
            values = [p.y for k, v in series.items() if k.startswith(rule.upper()) for p in v]
            low = max(0, min(values + [85]) - 3)
            ax.set_ylim(low, 100 + 0.3 * (100 - low))  # a band above 100 % for the legend, clear of the bars
            ax.set_yticks([t for t in ax.get_yticks() if low <= t <= 100])
            ax.set_xticks(range(len(SEMI_LABELS)), [str(n) for n in SEMI_LABELS])
            ax.set(xlabel="labeled examples", ylabel="test accuracy (%)",
                   title=f"({'A' if rule == 'bp' else 'B'}) semi-supervised {rule.upper()}")
            ax.legend(fontsize=7, loc="upper center", ncol=2)
        fig.suptitle(entry.title)
        return fig
    return _figure(entry, c, series, out, plot)


def draw_fig10(entry: Entry, root: Path, out: Path) -> Drawn:
    """Three scatter plots of the 2-D UMAP embedding of the test outputs, coloured by class."""
    c = _Collector(entry, root)
    found = {k: hit for k in entry.sources if (hit := c.file(k, ("embedding", "labels")))}
    series = {key: [Point(float(a), float(b), 0.0, rec.folder, path.name) for a, b in
                    z["embedding"].astype(np.float32)] for key, (rec, path, z) in found.items()}

    def plot(plt):
        # the colour bar in its own narrow column, so that tight_layout places it like the panels
        fig, axes = plt.subplots(1, 4, figsize=(15, 5), gridspec_kw={"width_ratios": (1, 1, 1, 0.04)})
        for ax, (key, name), letter in zip(axes, SEMI_VARIANTS.items(), "ABC"):
            ax.set_title(f"({letter}) {name}", fontsize=9)
            ax.set_xticks([]), ax.set_yticks([])
            if key not in found:
                ax.text(0.5, 0.5, "no data yet", ha="center", transform=ax.transAxes)
                continue
            rec, _, z = found[key]
            sc = ax.scatter(z["embedding"][:, 0], z["embedding"][:, 1], c=z["labels"], cmap="tab10", s=1,
                            vmin=-0.5, vmax=9.5)
            ax.set_xlabel(textwrap.fill(rec.describe(entry.sources[key].full_epochs), 70), fontsize=7)
        fig.colorbar(sc, cax=axes[3], ticks=range(10), label="class")
        fig.suptitle(entry.title)
        return fig
    return _figure(entry, c, series, out, plot, footnotes=False)  # each panel's label says its run


def draw_fig12(entry: Entry, root: Path, out: Path) -> Drawn:
    """Test error rate (%) of direct association per epoch, batch against sequential, BP and EP panels."""
    c = _Collector(entry, root)
    series = {}
    for key in entry.sources:
        rec = c.record(key)
        if rec is None:
            continue
        folder = rec.folder / f"S-{rec.seeds[0]}" if (rec.folder / f"S-{rec.seeds[0]}").is_dir() else rec.folder
        curves = plots.curves(folder)
        name = plots.ACCURACY_NAMES["error_mean"]
        if curves and name in curves:
            series[key] = [Point(int(e), 100 - float(a), 0.0, folder, "error_mean")
                           for e, a in zip(curves["epoch"], curves[name])]

    def plot(plt):
        from matplotlib import ticker
        fig, axes = plt.subplots(1, 2, figsize=(12, 5))
        for ax, rule in zip(axes, ("bp", "ep")):
            for key, points in series.items():
                if key.startswith(rule):
                    _, layers, mode = key.split("/")
                    ax.plot([p.x for p in points], [p.y for p in points], "-" if mode == "sequential" else "--",
                            color="C0" if layers == "1layer" else "C3", label=entry.sources[key].label)
            ax.set(xlabel="epoch", ylabel="test error rate (%), direct association", yscale="log",
                   title=f"({'A' if rule == 'bp' else 'B'}) unsupervised {rule.upper()}")
            ax.yaxis.set_major_formatter(ticker.ScalarFormatter())  # plain numbers on the log axis
            ax.yaxis.set_minor_formatter(ticker.ScalarFormatter())
            ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
            if ax.lines:
                ax.legend(fontsize=7)
        fig.suptitle(entry.title + "\n" + entry.note, fontsize=9)
        return fig
    return _figure(entry, c, series, out, plot)


def draw_fig13(entry: Entry, root: Path, out: Path) -> Drawn:
    """Direct association (2% of labels) against the number of output neurons, BP and EP."""
    c = _Collector(entry, root)
    series = {}
    for rule in ("bp", "ep"):
        points = [c.value(f"{rule}/{n}", METRICS["direct"], n) for n in N_OUT]
        series[rule.upper()] = [p for p in points if p]

    def plot(plt):
        fig, ax = plt.subplots(figsize=(7, 5))
        for rule, color in (("bp", "g"), ("ep", "b")):
            points = series[rule.upper()]
            if points:
                ax.errorbar([p.x for p in points], [p.y for p in points], yerr=[p.std for p in points],
                            fmt=f"{color}-o", capsize=3, label=f"ours: {rule.upper()}")
            refs = [(n, entry.paper.get(f"{rule}/{n}")) for n in N_OUT]
            refs = [(n, p) for n, p in refs if p]
            ax.plot([n for n, _ in refs], [p.mean for _, p in refs], f"{color}x", markersize=9,
                    label=f"paper: {rule.upper()} (section 6.3; 10 outputs 'about 60')")
        ax.set(xscale="log", xlabel="output neurons", ylabel="test accuracy (%)\ndirect association, 2% of labels")
        ax.set_title(entry.title, fontsize=9)
        ax.legend(fontsize=7)
        return fig
    return _figure(entry, c, series, out, plot)


DRAW: dict[str, Callable[[Entry, Path, Path], Drawn]] = {
    "fig2_accuracies": draw_fig2, "fig4_label_share_untrained": draw_fig4, "fig5_label_share_2layer": draw_fig5,
    "fig6_max_activation": draw_fig6, "fig9_semi_supervised": draw_fig9, "fig10_umap": draw_fig10,
    "fig11_first_layer_weights": draw_fig11, "fig12_homeostasis_mode": draw_fig12, "fig13_n_out": draw_fig13,
}


def draw(name: str, results="simuResults", out="figuresPlot") -> Drawn:
    """Draw one figure of the registry from the run folders under `results` into `<out>/<name>.png`."""
    Path(out).mkdir(parents=True, exist_ok=True)
    return DRAW[name](REGISTRY[name], Path(results), Path(out))


def draw_all(results="simuResults", out="figuresPlot", echo: bool = True) -> dict[str, Drawn]:
    """Every figure of the registry; prints, per figure, its folders and the commands for what is missing."""
    drawn = {}
    for name in DRAW:
        drawn[name] = draw(name, results, out)
        if echo:
            print(drawn[name].report() + "\n")
    return drawn


# --- the tables -------------------------------------------------------------------------------

@dataclass
class Row:
    """One line of a table: the paper's number and ours, traceable to its folder."""
    what: str
    method: str
    paper: Paper | None
    mean: float | None = None
    std: float | None = None
    seeds: int = 0
    epochs: str = ""
    folder: str = ""
    metric: str = ""


TABLE_ROWS = {  # table -> [(source key, what, method, metric, paper key)]
    "table3": [(k, src.label, m, METRICS[m], f"{k}/{m}") for k, src in {**MLP, **HEBB}.items()
               for m in ("direct", "linear")],
    "table4": [(k, CNN[k].label, "linear classifier", METRICS["linear"], f"{k}/linear") for k in CNN] +
              [(f"supervised_{k}", SUPERVISED_CNN[k].label, "supervised", "test", f"{k}/supervised")
               for k in SUPERVISED_CNN],
    "table5": [(f"{r}/{n}", f"{r.upper()} + WTA + homeostasis", f"{n} labels", "test", f"{r}/{n}")
               for r in ("bp", "ep") for n in (100, 600, 1000, 3000)],
}


def table(name: str, results="simuResults") -> list[Row]:
    """The rows of a table: paper beside ours (mean, std, seeds, epochs run, folder) for every source."""
    entry, root = REGISTRY[name], Path(results)
    rows = []
    for key, what, method, metric, paper_key in TABLE_ROWS[name]:
        src = entry.sources[key]
        row = Row(what, method if method not in METRICS else {"direct": "direct association",
                                                              "linear": "linear classifier"}[method],
                  entry.paper.get(paper_key), metric=metric)
        rec = find(root, src)
        if rec is not None:
            row.folder = str(rec.folder.relative_to(root))
            row.seeds = len(rec.seeds)
            row.epochs = _epochs_text(rec, src.full_epochs) if rec.epochs_run is not None else ""
            row.mean, row.std = rec.value(metric), rec.std.get(metric) if rec.value(metric) is not None else None
        else:
            row.folder = f"missing: {src.produce(root)}"
        rows.append(row)
    return rows


def _fmt(v: float | None, std: float | None = None) -> str:
    if v is None:
        return "-"
    return f"{v:.2f}" + (f" ({std:.2f})" if std is not None else "")


def format_table(name: str, results="simuResults") -> str:
    """A table as text: paper mean (std), ours mean, std, seeds, epochs run, folder."""
    header = ["network", "method", "paper", "ours", "std", "seeds", "epochs", "folder"]
    lines = [[r.what, r.method, _fmt(r.paper.mean, r.paper.std) if r.paper else "-", _fmt(r.mean),
              _fmt(r.std) if r.mean is not None and r.seeds > 1 else "-", str(r.seeds or "-"), r.epochs or "-",
              r.folder] for r in table(name, results)]
    if name == "table3":
        lines += [[who, m, _fmt(v), "(paper only)", "", "", "", ""] for who, d, lin in TABLE3_OTHERS
                  for m, v in (("direct association", d), ("linear classifier", lin)) if v is not None]
    if name == "table5":
        lines += [["pseudo-label (Lee 2013)", f"{n} labels", _fmt(v), "(paper only)", "", "", "", ""]
                  for n, v in PSEUDO_LABEL.items()]
    widths = [max(len(x[i]) for x in [header, *lines]) for i in range(len(header) - 1)]
    text = [REGISTRY[name].title]
    for line in [header, *lines]:
        text.append("  ".join(cell.ljust(w) for cell, w in zip(line, widths)) + "  " + line[-1])
    return "\n".join(text)


def print_tables(results="simuResults") -> None:
    """Tables 3, 4 and 5, paper beside ours."""
    for name in (n for n, e in REGISTRY.items() if e.kind == "table"):
        print(format_table(name, results) + "\n")


# --- commands and the notebook ------------------------------------------------------------------

def commands(results="simuResults", missing_only: bool = False) -> list[str]:
    """Every command the registry names (runs, then extractions), once; only the missing ones if asked."""
    root = Path(results)
    out = []
    for entry in REGISTRY.values():
        for src in entry.sources.values():
            rec = find(root, src)
            if rec is None or not missing_only:
                out.append(src.produce(root))
            if src.file and (rec is None or find_file(rec, src.file) is None or not missing_only):
                out.append(src.extract_command(root))
    return list(dict.fromkeys(out))


def show(drawn: dict[str, Drawn]) -> None:
    """Display the drawn PNGs in a notebook."""
    from IPython.display import Image, display
    for d in drawn.values():
        if d.path is not None:
            display(Image(filename=str(d.path)))


def execute_notebook(path=NOTEBOOK, results: str | None = None, out: str | None = None,
                     save: Path | None = None, timeout: int = 600):
    """Run the notebook headless (nbclient) from the repository root; `results`/`out` replace its first cell's.

    Returns the executed notebook; raises nbclient's CellExecutionError if a cell fails.
    """
    import nbclient
    import nbformat
    nb = nbformat.read(str(path), as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code")
    for var, value in (("RESULTS", results), ("OUT", out)):
        if value is not None:
            cell.source, n = re.subn(rf"^{var} = .*$", f"{var} = {str(value)!r}", cell.source, flags=re.M)
            assert n == 1, f"the notebook's first code cell must assign {var} once"
    nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(REPO)}}).execute()
    if save is not None:
        nbformat.write(nb, str(save))
    return nb


def _print_outputs(nb) -> None:
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("name") == "stdout":
                print(output["text"], end="")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m funcs.figures", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("draw", help="draw every figure (or --only NAME ...) into --out")
    d.add_argument("--results", default="simuResults")
    d.add_argument("--out", default="figuresPlot")
    d.add_argument("--only", nargs="*", choices=list(DRAW))
    t = sub.add_parser("tables", help="print tables 3, 4 and 5, paper beside ours")
    t.add_argument("--results", default="simuResults")
    c = sub.add_parser("commands", help="the commands that produce every folder and extracted file")
    c.add_argument("--results", default="simuResults")
    c.add_argument("--missing", action="store_true", help="only those whose output is not there yet")
    n = sub.add_parser("notebook", help="execute reproduce_figures.ipynb headless and print its output")
    n.add_argument("--results")
    n.add_argument("--out")
    n.add_argument("--save", help="also write the executed notebook here")
    e = sub.add_parser("extract", help="write a figure's small arrays beside a trained run (figures 6, 10, 11)")
    e.add_argument("kind", choices=("max_activation", "weights", "umap"))
    e.add_argument("run_dir")
    e.add_argument("--data_dir", help="where the dataset is (default: the run's data_dir)")
    e.add_argument("--pretrained", action="store_true", help="umap: the phase-1 network (pretrained.pt)")
    args = p.parse_args(argv)
    if args.command == "draw":
        for name in args.only or DRAW:
            print(draw(name, args.results, args.out).report() + "\n")
    elif args.command == "tables":
        print_tables(args.results)
    elif args.command == "commands":
        print("\n".join(commands(args.results, args.missing)))
    elif args.command == "notebook":
        _print_outputs(execute_notebook(NOTEBOOK, args.results, args.out, Path(args.save) if args.save else None))
    else:
        from funcs import extract  # torch and the rules: only for an extraction
        from funcs.errors import UserError
        try:
            print(extract.main(args.kind, Path(args.run_dir), args.data_dir, args.pretrained))
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
