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
import math
import os
import platform
import subprocess
import sys
import time
import uuid
from contextlib import nullcontext
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import torch

from funcs import config as config_mod
from funcs import plots
from funcs.errors import UserError, stops_deferred
from funcs.loop import REGRESSION_METRIC

CHECKPOINT = "checkpoint.pt"
RESUMES = "resumes.json"  # what each `--resume --set` changed, in order: summary.json's `resumed_with`


class Progress:
    """A long phase's progress (training epochs, classifier epochs, gradient-ascent steps, a trial's epochs).

    On a terminal, a tqdm bar on stderr over the phase's steps, which also shows how far the step in progress is.
    Elsewhere (a log file, a pipe) no bar: the caller prints a plain line per step, and `within` prints one
    plain line at most every LINE_SECONDS inside a long step (an EP 784-2000-2000 epoch: 15-25 minutes on 2 CPU
    cores), so that the output never goes silent for long; with `minute_lines`, for short steps no caller reports
    one by one, `step` prints such a line itself. `enabled` False shows nothing (a run without echo).
    """

    LINE_SECONDS = 60.0

    def __init__(self, total: int, initial: int = 0, unit: str = "epoch", desc: str | None = None,
                 enabled: bool = True, say=print, minute_lines: bool = False):
        self.total, self.done, self.unit, self.desc, self.enabled, self.say = total, initial, unit, desc, enabled, say
        self.minute_lines = minute_lines
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm
            self.bar = tqdm(total=total, initial=initial, unit=unit, desc=desc, dynamic_ncols=True)
        self.step_started = self.last_line = time.monotonic()

    @property
    def terminal(self) -> bool:
        """Whether a bar shows the steps (so per-step lines may stay in the log file)."""
        return self.bar is not None

    def write(self, message: str) -> None:
        """Print a line without breaking the bar."""
        if self.enabled:
            (self.bar.write if self.bar is not None else self.say)(message)

    def writing(self):
        """A context in which other code may print (the bar is cleared, then redrawn)."""
        if self.bar is None:
            return nullcontext()
        from tqdm import tqdm
        return tqdm.external_write_mode()

    def step(self, postfix: dict | None = None) -> float:
        """One step done; the seconds it took."""
        now = time.monotonic()
        seconds, self.step_started = now - self.step_started, now
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
            if postfix:
                self.bar.set_postfix(postfix)
        elif not self.minute_lines:
            self.last_line = now  # the caller prints this step's line
        elif self.enabled and now - self.last_line >= self.LINE_SECONDS:
            self.last_line = now
            self.say(f"{self.desc or self.unit}: {self.done} of {self.total} {self.unit}s")
        return seconds

    def within(self, done: int, total: int, what: str = "batches") -> None:
        """How far the step in progress is (`done` of `total` `what`): on the bar, or a line once a minute."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_postfix_str(f"{what} {done}/{total}")
            return
        now = time.monotonic()
        if now - self.last_line >= self.LINE_SECONDS:
            self.last_line = now
            name = f"{self.desc} {self.unit}" if self.desc else self.unit
            self.say(f"{name} {self.done + 1}/{self.total}: {done} of {total} {what} "
                     f"({(now - self.step_started) / 60:.1f} min so far)")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def default_folder(action: str, root: Path = Path("DATA-0")) -> Path:
    """DATA-0/<date>/<action>-<n>/ with n one more than the highest existing (the original's layout)."""
    base = root / datetime.date.today().isoformat()
    taken = [p.name.rsplit("-", 1)[-1] for p in base.glob(f"{action}-*")] if base.exists() else []
    n = max([int(t) for t in taken if t.isdigit()], default=0) + 1
    return base / f"{action}-{n}"


def code_version(here: Path = Path(__file__).resolve().parent.parent) -> str:
    """The git commit of the code in `here` (with '+dirty' when a tracked Python file has local changes), or
    'unknown'. Only code counts: result tables, figures and run folders being rewritten while a run starts (as
    the reproduce workflow does) leave the code that trains it the commit's."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "*.py"], cwd=here,
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


def atomic_write(path: Path, write) -> None:
    """write(tmp) into a temporary file beside `path`, then renamed onto it: a reader (or a kill) never meets half
    a file. The temporary file is this write's own: two processes writing one file (two seeds' jobs ending
    together, on one machine or two sharing the folder) do not rename each other's file away."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")  # not mkstemp: its file would keep mode 0600
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_rows(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def write_json(path: Path, obj) -> None:
    atomic_write(path, lambda p: p.write_text(json.dumps(obj, indent=2) + "\n"))


class Run:
    """One run folder. Create it with `Run.create` (new) or `Run.open` (resume)."""

    def __init__(self, folder: Path, echo: bool = True):
        self.folder = Path(folder)
        self.echo = echo
        self.progress: Progress | None = None
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
        for left in folder.glob(".*.tmp"):  # atomic_write's, left by a kill (SIGKILL) in the middle of a write
            left.unlink(missing_ok=True)
        return cls(folder, echo)

    # --- logging ------------------------------------------------------------------------
    def log(self, message: str, echo: bool = True) -> None:
        """Append a line to run.log and print it (unless echo is False: the caller prints it elsewhere)."""
        with open(self.folder / "run.log", "a") as f:
            f.write(message + "\n")
        if self.echo and echo:
            (self.progress.write if self.progress is not None else print)(message)

    def start_progress(self, total: int, initial: int) -> None:
        """Training epochs: a progress bar on a terminal; elsewhere a plain line per epoch (from `log`) and one
        a minute inside a long epoch (`within_epoch`)."""
        self.stop_progress()
        self.progress = Progress(total, initial, "epoch", enabled=self.echo)

    def within_epoch(self, done: int, total: int) -> None:
        """The epoch loop's report inside an epoch: `done` of `total` mini-batches (at most every 30 s)."""
        if self.progress is not None:
            self.progress.within(done, total)

    def start_classifier(self, epochs: int, n_train: int, n_test: int, seconds: float) -> None:
        """The linear classifier's epochs: a bar on a terminal, a plain line per epoch elsewhere. (The network's
        outputs of n_train training and n_test test examples, its features, took `seconds`.)"""
        self.stop_progress()
        self.log(f"linear classifier: {epochs} epochs on the outputs of {n_train} training and {n_test} test "
                 f"examples (computed in {seconds:.1f} s)")
        self.progress = Progress(epochs, 0, "epoch", desc="classifier", enabled=self.echo)

    def stop_progress(self) -> None:
        if self.progress is not None:
            self.progress.close()
            self.progress = None

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
        """Append the epoch's row, checkpoint atomically and log the row, with Ctrl-C held until all are written (a
        kill in between leaves a row past the checkpoint, which a resume drops)."""
        with stops_deferred():
            self._append_row("results.csv", row, fresh=row["epoch"] == 1)
            atomic_write(self.folder / CHECKPOINT, lambda p: torch.save(checkpoint, p))
            atomic_write(self.folder / "model_state_dict.pt",
                          lambda p: torch.save(checkpoint["learner"]["model"], p))
            if self.progress is not None:
                self.progress.step({"loss": f"{row['loss']:.4f}", **{
                    f"acc_{k[6:].lstrip('_') or 'test'}": f"{100 * (1 - v):.2f}%" for k, v in row.items()
                    if k.startswith("error")}, **{k: f"{v:.4f}" for k, v in costs(row).items()}})
            self.log(format_row(row))  # the log has the epoch too, even when a held stop follows

    def classifier_epoch_done(self, row: dict) -> None:
        """Append the classifier epoch's row; its line goes to run.log, and is printed where no bar shows it."""
        self._append_row("classifier.csv", row, fresh=self._classifier_rows == 0)
        self._classifier_rows += 1
        progress = self.progress
        seconds = progress.step({"acc_test": f"{100 * (1 - row['test_error']):.2f}%"}) if progress else None
        total = f"/{progress.total}" if progress else ""
        line = f"classifier epoch {row['epoch']}{total}  " + "  ".join(
            f"{k} {v:.4f}" for k, v in row.items() if k != "epoch")
        line += f"  ({seconds:.1f} s)" if seconds is not None else ""
        self.log(line, echo=progress is None or not progress.terminal)

    # --- resume -------------------------------------------------------------------------
    def checkpoint_epoch(self) -> int:
        """The epoch of the last checkpoint, 0 without one (load_checkpoint checks it in full later).

        Memory-mapped: only the pickled header is read here, not the tensors that load_checkpoint reads next."""
        path = self.folder / CHECKPOINT
        try:
            return torch.load(path, weights_only=True, map_location="cpu", mmap=True)["epoch"] if path.exists() else 0
        except Exception:  # unreadable: load_checkpoint says so in one line
            return 0

    def resumes(self) -> list[dict]:
        """What earlier `--resume --set` changed, in order (a diverged summary.json of older code held it)."""
        if (self.folder / RESUMES).exists():
            return config_mod.read_json(self.folder / RESUMES, "resume record").get("resumed_with", [])
        return (read_summary(self.folder) or {}).get("resumed_with", [])

    def add_resume(self, record: dict) -> None:
        """Keep a resume's changes at once, so that a run stopped again before its end still reports them."""
        write_json(self.folder / RESUMES, {"resumed_with": [*self.resumes(), record]})

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
            if type(epoch) is not int or not isinstance(saved, (dict, type(None))):
                raise TypeError("epoch or config of another type")
        except Exception as err:  # any unreadable or foreign file: torch raises many kinds
            raise UserError(f"checkpoint {path} cannot be read ({err.__class__.__name__}); start a new run")
        # the machine's keys may differ (a run moved, perhaps stopped again before it checkpointed on this machine)
        allowed = (*self.may_differ, *config_mod.MACHINE_KEYS)
        changed = [] if saved is None else [k for k in config_changes(saved, cfg) if k not in allowed]
        if changed:
            raise UserError(f"--resume {self.folder}: config.json differs from the checkpoint's config "
                            f"({', '.join(changed)}); restore it or start a new run")
        self._truncate_rows(epoch)
        return state

    def _truncate_rows(self, epochs: int) -> None:
        path = self.folder / "results.csv"
        if not path.exists():
            return
        rows = plots.read_csv(path)[1]  # the one reader of run CSVs: a damaged file is one line naming it
        try:
            rows = [r for r in rows if int(r["epoch"]) <= epochs]
        except (KeyError, ValueError, TypeError) as err:
            raise plots.damaged(path, err) from None
        if rows:
            atomic_write(path, lambda p: _write_rows(p, rows))  # a kill now leaves the old file, not half of it

    # --- the end --------------------------------------------------------------------------
    def write_summary(self, cfg, metrics: dict, device: str, argv: list[str], diverged: dict | None = None) -> dict:
        """summary.json. A diverged run (`diverged`: where and why) has status 'diverged', the last good epoch's
        metrics and no accuracies: nothing reads it as a final result. A regression's final numbers are costs, not
        accuracies: its `accuracy_percent` is empty and `cost` holds them (`costs`)."""
        final_costs = {} if diverged else costs(metrics)
        resumes = self.resumes()
        summary = {
            "action": cfg.action, "dataset": cfg.dataset, "seed": cfg.seed, "epochs": cfg.epochs,
            "status": "diverged" if diverged else "finished", **({"diverged": diverged} if diverged else {}),
            "metrics": metrics, "accuracy_percent": {} if diverged else accuracies(metrics),
            **({"cost": final_costs} if final_costs else {}),
            **self.facts, **({"resumed_with": resumes} if resumes else {}),
            "device": device, "torch": torch.__version__, "python": platform.python_version(),
            "command": " ".join(argv),
            "finished": datetime.datetime.now().isoformat(timespec="seconds"),
        }
        write_json(self.folder / "summary.json", summary)
        return summary


def read_summary(folder: Path) -> dict | None:
    """A run folder's summary.json, or None when it has none (or an unreadable one, or not a JSON object)."""
    try:
        summary = json.loads((Path(folder) / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) else None


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
    done = max(0, len(rows.read_bytes().splitlines()) - 1) if rows.is_file() else None  # bytes: any content
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


# A regression's final numbers: the mean cost 1/2 ||y - output||^2 on the test set (funcs.loop.regression_cost), as
# Gammell et al. 2021 report it; lower is better, rounded to 6 decimals in summary.json, not turned into a percentage.
COSTS = (REGRESSION_METRIC,)


def costs(metrics: dict) -> dict:
    """The regression costs among the metrics, named as in results.csv."""
    return {k: round(v, 6) for k, v in metrics.items() if k in COSTS}


def final_line(summary: dict, split: str = "test") -> str:
    """The run's last printed line: its accuracies (%), or a regression's costs."""
    if summary.get("cost"):
        return f"final {split} cost 1/2 (y - output)^2: " + ", ".join(f"{k} {v}" for k, v in summary["cost"].items())
    return f"final {split} accuracy (%): " + ", ".join(f"{k} {v}" for k, v in summary["accuracy_percent"].items())


def format_row(row: dict) -> str:
    parts = [f"epoch {row['epoch']}"]
    parts += [f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
              for k, v in row.items() if k not in ("epoch", "seconds", "train_seconds")]
    parts.append(f"({row['seconds']:.1f} s)")
    return "  ".join(parts)


def seeds_summary(per_seed: list[dict]) -> dict:
    """Mean and sample standard deviation (ddof=1) of every accuracy (and a regression's every cost) over seeds,
    with the seed list."""
    out = {"seeds": [s["seed"] for s in per_seed], "std_ddof": 1, "per_seed": {}, "mean": {}, "std": {}}
    for block in ("accuracy_percent", "cost"):
        for key in per_seed[0].get(block, {}):
            values = [s[block][key] for s in per_seed]
            out["per_seed"][key] = values
            out["mean"][key], out["std"][key] = mean_and_std(values)
    return out


STATS_DECIMALS = 6  # of a mean and std as stored: the tables round them once, when they show them (seen: a std of
#                     0.0847 stored as 0.085 and shown as 0.09)


def mean_and_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for one value) over seeds, to STATS_DECIMALS decimals."""
    v = torch.tensor(list(values), dtype=torch.float64)
    std = v.std(unbiased=True).item() if len(v) > 1 else 0.0
    return round(v.mean().item(), STATS_DECIMALS), round(std, STATS_DECIMALS)


def half_up(value: float, digits: int) -> str:
    """A value to `digits` decimals, a half rounded up as by hand: the mean of 89.92 and 89.93 shows as 89.93
    (a float's own formatting rounds the binary 89.92499... down). The one rounding of shown means and stds."""
    if not math.isfinite(value):
        return str(value)
    return str(Decimal(repr(float(value))).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))
