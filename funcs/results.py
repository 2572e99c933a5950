"""What a run writes: its folder, per-epoch CSV rows, checkpoints, the summary and the log.

A run folder holds `config.json` (resolved, in the user's key names: `--json_path`
on it repeats the run), `results.csv` (one row per epoch, flushed as it goes),
`classifier.csv` (one row per classifier epoch), `checkpoint.pt` (written
atomically at the end of every epoch), `model_state_dict.pt`, `summary.json` and
`run.log`.
"""
from __future__ import annotations

import csv
import datetime
import hashlib
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

from funcs import config as config_mod
from funcs.errors import UserError

CHECKPOINT = "checkpoint.pt"


def default_folder(action: str, root: Path = Path("DATA-0")) -> Path:
    """DATA-0/<date>/<action>-<n>/ with n one more than the highest existing (the original's layout)."""
    base = root / datetime.date.today().isoformat()
    taken = [p.name.rsplit("-", 1)[-1] for p in base.glob(f"{action}-*")] if base.exists() else []
    n = max([int(t) for t in taken if t.isdigit()], default=0) + 1
    return base / f"{action}-{n}"


def code_version() -> str:
    """The git commit of the code (with '+dirty' when it has local changes), or 'unknown'."""
    here = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (commit + ("+dirty" if dirty else "")) if commit else "unknown"


def run_folder(cfg, folder: Path | None = None) -> Path:
    """Where a new run goes: the given folder, the config's out_dir, or DATA-0/<date>/<action>-<n>/."""
    return Path(folder or cfg.out_dir or default_folder(cfg.action))


def check_new_folder(folder: Path) -> None:
    """A new run needs a folder that does not exist yet or is empty: it never writes over anything."""
    if (folder / CHECKPOINT).exists() and not (folder / "summary.json").exists():
        raise UserError(f"run folder {folder} holds an unfinished run; continue it with --resume {folder} "
                        f"or choose another --out")
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise UserError(f"--out {folder}: exists and is not an empty folder; choose a new one")


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def write_json(path: Path, obj) -> None:
    _atomic_write(path, lambda p: p.write_text(json.dumps(obj, indent=2) + "\n"))


class Run:
    """One run folder. Create it with `Run.create` (new) or `Run.open` (resume)."""

    def __init__(self, folder: Path, echo: bool = True):
        self.folder = Path(folder)
        self.echo = echo
        self.bar = None
        self._classifier_rows = 0
        self.may_differ: tuple[str, ...] = ()  # config keys a resumed run changed (--resume RUN --set KEY=...)
        # Facts for summary.json; the code version is read now, when training starts (or resumes).
        self.facts: dict = {"code_version": code_version()}

    @classmethod
    def create(cls, cfg, folder: Path | None = None, echo: bool = True) -> "Run":
        """Make a new, empty run folder and write the resolved config into it."""
        folder = run_folder(cfg, folder)
        check_new_folder(folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            write_json(folder / "config.json", cfg.to_json())
        except OSError as err:
            raise UserError(f"run folder {folder} cannot be written ({err.strerror or err}); choose another --out")
        return cls(folder, echo)

    @classmethod
    def open(cls, folder: Path, echo: bool = True) -> "Run":
        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise UserError(f"--resume {folder}: no config.json there; is it a run folder?")
        return cls(folder, echo)

    # --- logging ------------------------------------------------------------------------
    def log(self, message: str, echo: bool = True) -> None:
        """Append a line to run.log and print it (unless echo is False: the caller prints it elsewhere)."""
        with open(self.folder / "run.log", "a") as f:
            f.write(message + "\n")
        if self.echo and echo:
            (self.bar.write if self.bar is not None else print)(message)

    def start_progress(self, total: int, initial: int) -> None:
        """A progress bar over epochs on a terminal; plain lines (from `log`) otherwise."""
        if self.echo and sys.stderr.isatty():
            from tqdm import tqdm
            self.bar = tqdm(total=total, initial=initial, unit="epoch", dynamic_ncols=True)

    def stop_progress(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    # --- per-epoch results --------------------------------------------------------------
    def _append_row(self, name: str, row: dict, fresh: bool) -> None:
        path = self.folder / name
        new = fresh or not path.exists()
        with open(path, "w" if new else "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)

    def epoch_done(self, row: dict, checkpoint: dict) -> None:
        """Append the epoch's row, then checkpoint atomically (a resume drops rows past the checkpoint)."""
        self._append_row("results.csv", row, fresh=row["epoch"] == 1)
        _atomic_write(self.folder / CHECKPOINT, lambda p: torch.save(checkpoint, p))
        _atomic_write(self.folder / "model_state_dict.pt", lambda p: torch.save(checkpoint["learner"]["model"], p))
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix({"loss": f"{row['loss']:.4f}", **{
                f"acc_{k[6:].lstrip('_') or 'test'}": f"{100 * (1 - v):.2f}%" for k, v in row.items() if k.startswith("error")}})
        self.log(format_row(row))

    def classifier_epoch_done(self, row: dict) -> None:
        self._append_row("classifier.csv", row, fresh=self._classifier_rows == 0)
        self._classifier_rows += 1

    # --- resume -------------------------------------------------------------------------
    def load_checkpoint(self, cfg) -> dict | None:
        """The last checkpoint, with results.csv cut back to its epoch; None if the run never finished an epoch.

        Refuses a checkpoint written under another config: continuing it would
        mix two experiments (or fail on a shape mismatch).
        """
        path = self.folder / CHECKPOINT
        if not path.exists():
            return None
        try:
            state = torch.load(path, weights_only=True, map_location="cpu")
            epoch, saved = state["epoch"], state.get("config")  # None: written before checkpoints kept it
            state["learner"], state["target"], state["rng"]
        except Exception as err:  # any unreadable or foreign file: torch raises many kinds
            raise UserError(f"checkpoint {path} cannot be read ({err.__class__.__name__}); start a new run")
        changed = [] if saved is None else [k for k in config_changes(saved, cfg) if k not in self.may_differ]
        if changed:
            raise UserError(f"--resume {self.folder}: config.json differs from the checkpoint's config "
                            f"({', '.join(changed)}); restore it or start a new run")
        self._truncate_rows(epoch)
        return state

    def _truncate_rows(self, epochs: int) -> None:
        path = self.folder / "results.csv"
        if not path.exists():
            return
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        rows = [r for r in rows if int(r["epoch"]) <= epochs]
        if rows:
            with open(path, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)

    # --- the end --------------------------------------------------------------------------
    def write_summary(self, cfg, metrics: dict, device: str, argv: list[str], diverged: dict | None = None) -> dict:
        """summary.json. A diverged run (`diverged`: where and why) has status 'diverged', the last good epoch's
        metrics and no accuracies: nothing reads it as a final result."""
        summary = {
            "action": cfg.action, "dataset": cfg.dataset, "seed": cfg.seed, "epochs": cfg.epochs,
            "status": "diverged" if diverged else "finished", **({"diverged": diverged} if diverged else {}),
            "metrics": metrics, "accuracy_percent": {} if diverged else accuracies(metrics),
            **self.facts,
            "device": device, "torch": torch.__version__, "python": platform.python_version(),
            "command": " ".join(argv),
            "finished": datetime.datetime.now().isoformat(timespec="seconds"),
        }
        write_json(self.folder / "summary.json", summary)
        return summary


def read_summary(folder: Path) -> dict | None:
    """A run folder's summary.json, or None when it has none (or an unreadable one)."""
    try:
        return json.loads((Path(folder) / "summary.json").read_text())
    except (OSError, ValueError):
        return None


MODEL_FILES = ("model_state_dict.pt", "model_state_dict_fp16.pt")  # fp16: as simuResults keeps weights


def trained_config_file(folder: Path) -> Path:
    """config.json of a trained run folder (for --trained_path), or a clear error."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise UserError(f"--trained_path {folder}: no config.json there; is it a run folder?")
    return path


def read_trained(folder: Path) -> tuple[dict, dict]:
    """A trained run's saved config (raw JSON) and its network weights in float32."""
    folder = Path(folder)
    saved = config_mod.read_json(trained_config_file(folder), "--trained_path config")
    path = next((folder / name for name in MODEL_FILES if (folder / name).is_file()), None)
    if path is None:
        raise UserError(f"config key 'trained_path': {folder} holds no trained network ({' or '.join(MODEL_FILES)})")
    try:
        weights = torch.load(path, weights_only=True, map_location="cpu")
        weights = {k: v.float() if v.is_floating_point() else v for k, v in weights.items()}
    except Exception as err:  # unreadable or foreign file: torch raises many kinds
        raise UserError(f"config key 'trained_path': {path} cannot be read ({err.__class__.__name__})")
    return saved, weights


def describe_trained(folder: Path) -> dict:
    """What a read-out records of the network it read: the folder, its epochs done, the weights' SHA-256.

    The trained run may still be going; these say which of its states was read.
    """
    folder = Path(folder)
    path = next(folder / name for name in MODEL_FILES if (folder / name).is_file())
    rows = folder / "results.csv"
    done = max(0, len(rows.read_text().splitlines()) - 1) if rows.is_file() else None
    return {"folder": str(folder), "epochs_done": done, "weights": path.name, "weights_sha256": _file_sha256(path)}


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def config_changes(saved: dict, cfg) -> list[str]:
    """Keys whose value differs between a checkpoint's saved config and `cfg`.

    A key the saved config lacks was added to the code after the run started; the
    code then behaved as its default, so it counts as changed only when `cfg` differs
    from the default.
    """
    current = cfg.to_json()
    # read as a config of the run's rule: absent keys take their defaults, other rules' default keys drop out
    before = config_mod.from_dict(saved, default_rule=cfg.rule).to_json()
    return sorted(k for k in set(before) | set(current) if before.get(k) != current.get(k))


def accuracies(metrics: dict) -> dict:
    """Test accuracies in percent from the error metrics, named as the paper's tables."""
    names = {"error_mean": "direct_association_mean", "error_max": "direct_association_max",
             "classifier_error": "linear_classifier", "error": "test", "pretrain_error": "after_phase_1"}
    return {names[k]: round(100 * (1 - v), 2) for k, v in metrics.items() if k in names}


def format_row(row: dict) -> str:
    parts = [f"epoch {row['epoch']}"]
    parts += [f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
              for k, v in row.items() if k not in ("epoch", "seconds", "train_seconds")]
    parts.append(f"({row['seconds']:.1f} s)")
    return "  ".join(parts)


def seeds_summary(per_seed: list[dict]) -> dict:
    """Mean and sample standard deviation (ddof=1) of every accuracy over seeds, with the seed list."""
    keys = per_seed[0]["accuracy_percent"].keys()
    out = {"seeds": [s["seed"] for s in per_seed], "std_ddof": 1, "per_seed": {}, "mean": {}, "std": {}}
    for key in keys:
        values = torch.tensor([s["accuracy_percent"][key] for s in per_seed], dtype=torch.float64)
        out["per_seed"][key] = values.tolist()
        out["mean"][key] = round(values.mean().item(), 3)
        out["std"][key] = round(values.std(unbiased=True).item(), 3) if len(values) > 1 else 0.0
    return out
