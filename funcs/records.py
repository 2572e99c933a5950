"""Run folders read back: what a run (or a `--seeds` root) says it did and reached, for the figures and tables.

A `Record` holds a folder's accuracies (summary.json, or an unfinished run's
last results.csv row; a seeds root's mean and std from seeds_summary.json), its
seeds and the epochs it ran against those its config planned, so that a
shortened or unfinished run is labelled from its own folder ("108 of 200 epochs
(unfinished), 1 seed"), and a read-out by the epochs its trained run had done
when read. Nothing here writes; funcs/results.py writes these files.
"""
from __future__ import annotations

import math
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from funcs.figures_registry import Source
from funcs.config import read_json
from funcs.plots import damaged, read_csv
from funcs.errors import UserError
from funcs.results import COSTS, accuracies, costs, mean_and_std


@dataclass
class Record:
    """What a run folder (or a `--seeds` root) says: accuracies (%), their spread, seeds and epochs."""
    folder: Path
    config: dict
    accuracy: dict[str, float]  # mean over seeds for a seeds root; a regression's costs (test_cost) too
    std: dict[str, float]  # sample std (ddof 1) over seeds; 0 for one run
    seeds: list[int]
    epochs_run: int | None  # rows of results.csv (both phases of a semi-supervised run); min over seeds
    epochs_planned: int | None  # what its config asks for
    finished: bool  # summary.json written (every seed's, for a seeds root)
    phase_rows: tuple[int, int] | None = None  # semi-supervised: rows of phase 1 and phase 2
    trained: Record | None = None  # train_class_layer: the trained run it evaluated, when found

    def value(self, metric: str) -> float | None:
        """An accuracy (%) named as summary.json's accuracy_percent, or a cost as its `cost`; None if the run has
        none (yet)."""
        return self.accuracy.get(metric)

    @property
    def untrained(self) -> bool:
        """A read-out of the initial weights: `train_class_layer` without a trained network, or a run of 0 epochs
        (not a semi-supervised one: its 0 are phase 2's, after phase 1 trained it)."""
        cfg = self.config
        return (cfg.get("action") == "train_class_layer" and not cfg.get("trained_path")) or \
            (cfg.get("epochs") == 0 and self.phase_rows is None)

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
        elif self.untrained:
            parts.append("untrained network")
        elif self.epochs_run is not None:
            parts.append(self.epochs(full_epochs))
        if train_size:
            parts.append(f"{train_size} training images")
        if seeds:
            parts.append(f"{len(self.seeds)} seed" + ("s" if len(self.seeds) != 1 else ""))
        return ", ".join(parts)

    def is_shortened(self, full_epochs: int | None) -> bool:
        """Whether its config asks for fewer epochs than the paper's `full_epochs` (None: nothing to compare)."""
        return None not in (full_epochs, self.epochs_planned) and self.epochs_planned < full_epochs

    def epochs(self, full_epochs: int | None = None) -> str:
        """'108 of 200 epochs (unfinished)', '1 of 200 epochs (shortened)': the epochs run against those planned.

        full_epochs: the paper's (both phases of a semi-supervised run), so that a shorter plan says so.
        """
        run, planned, cfg = self.epochs_run, self.epochs_planned, self.config
        if self.phase_rows is not None:
            p1, p2 = self.phase_rows
            text = (f"phase 1: {p1} of {cfg['pre_epochs']}, " if not cfg.get("pretrained_path") else "") + \
                f"phase 2: {p2} of {cfg['epochs']} epochs"
        else:
            text = f"{run} of {planned} epochs" if planned is not None else f"{run} epochs"
        shortened = self.is_shortened(full_epochs)
        if shortened and run == planned and self.phase_rows is None:
            return f"{run} of {full_epochs} epochs (shortened)"
        if planned is not None and run < planned:
            text += " (unfinished" + (f"; shortened from the paper's {full_epochs})" if shortened else ")")
        elif shortened:
            text += f" (shortened: {planned} of the paper's {full_epochs})"
        return text


def _read_csv(path: Path) -> list[dict]:
    """A run's results.csv rows ([] when it has none yet); UserError when it is not one."""
    if not path.is_file():
        return []
    header, rows = read_csv(path)
    if header and "epoch" not in header:
        raise UserError(f"{path}: damaged, its header has no epoch column; rerun that run or remove its folder")
    return rows


def planned_epochs(cfg: dict) -> int | None:
    """The epochs a run's config asks for (both phases of a semi-supervised run); None for a read-out."""
    if cfg.get("action") == "train_class_layer":
        return None
    if str(cfg.get("action", "")).startswith("semi_supervised") and not cfg.get("pretrained_path"):
        return cfg["pre_epochs"] + cfg["epochs"]
    return cfg.get("epochs")


def _accuracies_from_rows(rows: list[dict]) -> dict[str, float]:
    """The accuracies of an unfinished run: its last row (and, semi-supervised, its last phase-1 row)."""
    if not rows:
        return {}
    last = {k: float(v) for k, v in rows[-1].items() if v not in ("", "nan", None) and
            (k.startswith("error") or k in COSTS)}
    if "phase" in rows[0]:
        phase1 = [r for r in rows if r["phase"] == "1"]
        last = {"error": float(rows[-1]["error"])} if rows[-1]["phase"] == "2" else {}
        if phase1:
            last["pretrain_error"] = float(phase1[-1]["error"])
    last = {k: v for k, v in last.items() if not math.isnan(v)}
    return {**accuracies(last), **costs(last)}


def _read_single(folder: Path, root: Path | None = None, rows_read: int | None = None) -> Record | None:
    """One run folder: summary.json's accuracies, or, unfinished, those of its last results.csv row.

    rows_read: only the first rows of results.csv count: the epochs a read-out found done when it read
    this (trained) run, which may have gone on since.
    """
    if not (folder / "config.json").is_file():
        return None
    cfg = read_json(folder / "config.json", "run config")
    rows = _read_csv(folder / "results.csv")[:rows_read]
    summary_path = folder / "summary.json"
    summary = read_json(summary_path, "run summary") if summary_path.is_file() else None
    try:
        acc = {**summary.get("accuracy_percent", {}), **summary.get("cost", {})} if summary else \
            _accuracies_from_rows(rows)
    except (KeyError, ValueError, TypeError, AttributeError) as err:
        raise damaged(summary_path if summary else folder / "results.csv", err) from None
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
    return Record(folder, cfg, acc, {k: 0.0 for k in acc}, [seed], epochs_run, planned_epochs(cfg),
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
        stats = read_json(stats_path, "seeds summary")
        mean, std, seeds = dict(stats["mean"]), dict(stats["std"]), list(stats["seeds"])
    else:  # seeds still running: the finished ones
        done = [r for r in per_seed if r.finished] or per_seed
        keys = set.intersection(*(set(r.accuracy) for r in done))
        stats = {k: mean_and_std(r.accuracy[k] for r in done) for k in keys}
        mean, std = {k: m for k, (m, _) in stats.items()}, {k: sd for k, (_, sd) in stats.items()}
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
