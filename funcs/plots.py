"""Per-run plots: `curves.png` in a run folder (loss and test accuracies per epoch), and over seeds.

The series come from `results.csv` alone, so any finished or unfinished run can
be re-plotted: `python -m funcs.plots RUN_DIR [RUN_DIR ...]`; the per-layer update sizes of several runs:
`python -m funcs.plots --update-sizes OUT.png RUN_DIR [RUN_DIR ...]`.
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

from funcs.errors import OneLineParser, UserError, one_line_errors

# Test-error columns of results.csv and the names their accuracies are plotted under.
ACCURACY_NAMES = {"error_mean": "direct association (mean)", "error_max": "direct association (max)",
                  "error": "test (supervised read-out)", "error_unsupervised": "test after the unsupervised half"}


def damaged(path: Path, err: Exception) -> UserError:
    """The one line for a run's file that cannot be read as it was written (a hand edit, a full disk)."""
    return UserError(f"{path}: damaged ({err.__class__.__name__}: {err})")


def read_csv(path: Path) -> tuple[list[str], list[dict]]:
    """A run's CSV file (results.csv, classifier.csv): its header and its rows; the one reader every module uses,
    so that a damaged file is one line naming it (`damaged`) wherever it is read."""
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
        return list(reader.fieldnames or []), rows
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise damaged(path, err) from None


def columns(path: Path, rows: list[dict], names) -> dict[str, np.ndarray]:
    """Columns of a CSV file's rows as float arrays ({} without rows); `damaged` if a value is missing or no number."""
    try:
        return {n: np.array([float(r[n]) for r in rows]) for n in names} if rows else {}
    except (KeyError, ValueError, TypeError) as err:
        raise damaged(path, err) from None


def curves(folder: Path) -> dict[str, np.ndarray]:
    """epoch, loss and one accuracy (%) series per error column of the run's results.csv; {} without epochs."""
    path = Path(folder) / "results.csv"
    if not path.exists():  # an untrained network (epochs 0) has no rows
        return {}
    header, rows = read_csv(path)
    errors = [c for c in ACCURACY_NAMES if c in header]
    out = columns(path, rows, ["epoch", "loss", *errors])
    for column in errors if out else ():
        out[ACCURACY_NAMES[column]] = 100 * (1 - out.pop(column))
    return out


def final_classifier_accuracy(folder: Path) -> float | None:
    path = Path(folder) / "classifier.csv"
    if not path.exists():
        return None
    errors = columns(path, read_csv(path)[1], ["test_error"]).get("test_error")
    return 100 * (1 - float(errors[-1])) if errors is not None else None


def pyplot():
    """matplotlib's pyplot, drawing to files only (no display needed); every figure module of funcs/ uses this."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save(fig, path: Path, rect=(0, 0, 1, 1)) -> Path:
    """Lay the figure out (within `rect` of it), write it to `path` (its folder made if needed) and free it;
    UserError naming the path when it cannot be written there (a folder, a path under a file, a format matplotlib
    does not write)."""
    path = Path(path)
    fig.tight_layout(rect=rect)
    try:
        if path.is_dir() or not path.suffix:
            raise ValueError("give a file name ending in .png, .pdf or .svg")
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: the figure cannot be written there ({err})") from None
    finally:
        pyplot().close(fig)
    return path


def _figure(title: str):
    plt = pyplot()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    fig.suptitle(title)
    ax_loss.set(xlabel="epoch", ylabel="training loss", yscale="log")
    ax_acc.set(xlabel="epoch", ylabel="test accuracy (%)")
    return plt, fig, ax_loss, ax_acc


def plot_run(folder: Path, title: str = "") -> Path | None:
    """Write `curves.png` into a run folder; None when the run has no epoch yet."""
    series = curves(folder)
    if not series:
        return None
    plt, fig, ax_loss, ax_acc = _figure(title or Path(folder).name)
    epoch = series.pop("epoch")
    ax_loss.plot(epoch, series.pop("loss"))
    for name, values in series.items():
        if not np.isnan(values).all():
            ax_acc.plot(epoch, values, label=name)
    classifier = final_classifier_accuracy(folder)
    if classifier is not None:
        ax_acc.plot([epoch[-1]], [classifier], "k*", markersize=10, label=f"linear classifier {classifier:.2f}")
    ax_acc.legend(fontsize=8)
    return save(fig, Path(folder) / "curves.png")


def plot_seeds(root: Path, folders: list[Path]) -> Path | None:
    """Write `curves.png` into a seeds folder: each series' mean over seeds, shaded by one standard deviation."""
    per_seed = [s for s in (curves(f) for f in folders) if s]
    if not per_seed:
        return None
    n = min(len(s["epoch"]) for s in per_seed)
    plt, fig, ax_loss, ax_acc = _figure(f"{Path(root).name}: mean and std over {len(per_seed)} seeds")
    epoch = per_seed[0]["epoch"][:n]
    for name in per_seed[0]:
        if name == "epoch":
            continue
        values = np.stack([s[name][:n] for s in per_seed])
        if np.isnan(values).all():
            continue
        mean, std = values.mean(0), values.std(0, ddof=1) if len(per_seed) > 1 else np.zeros(n)
        ax = ax_loss if name == "loss" else ax_acc
        ax.plot(epoch, mean, label=None if name == "loss" else name)
        ax.fill_between(epoch, mean - std, mean + std, alpha=0.25)
    ax_acc.legend(fontsize=8)
    return save(fig, Path(root) / "curves.png")


def update_sizes(folder: Path) -> dict[int, np.ndarray]:
    """Per-layer update size per epoch (a rule's `log_update_sizes` columns update_size_<layer>), by layer."""
    path = Path(folder) / "results.csv"
    header, rows = read_csv(path)
    names = [c for c in header if c.startswith("update_size_")]
    if any(not c.rsplit("_", 1)[1].isdigit() for c in names):
        raise UserError(f"{path}: damaged, a column update_size_<layer> names no layer number")
    return dict(sorted((int(c.rsplit("_", 1)[1]), v) for c, v in columns(path, rows, names).items()))


def plot_update_sizes(folders: list[Path], path: Path) -> Path:
    """Each layer's update size ||dW|| / sqrt(connections) against the epoch, one line style per run (Gammell et
    al. 2021, Figure 3): how far the deep layers' updates vanish, and whether a topology fixes it."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for style, folder in zip(("-", "--", ":", "-."), map(Path, folders)):
        name = f"{folder.parent.name}/{folder.name}" if folder.name.startswith("S-") else folder.name
        for j, sizes in update_sizes(folder).items():
            ax.plot(np.arange(1, len(sizes) + 1), sizes, style, color=f"C{j - 1}", label=f"{name}, layer {j}")
    ax.set(xlabel="epoch", ylabel="mean update size ||dW|| / sqrt(connections)", yscale="log")
    ax.legend(fontsize=6, ncol=2)
    return save(fig, Path(path))


@one_line_errors
def main(argv=None) -> int:
    parser = OneLineParser(prog="python -m funcs.plots", description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders with a results.csv")
    parser.add_argument("--update-sizes", metavar="OUT.png",
                        help="instead of curves.png per run, one plot of the per-layer update sizes "
                             "(update_size_<layer> columns) of all RUN_DIRs")
    args = parser.parse_args(argv)
    runs = [Path(r) for r in args.runs]
    missing = next((r for r in runs if not (r / "results.csv").is_file()), None)
    if missing is not None:
        raise UserError(f"{missing} has no results.csv")
    if args.update_sizes:
        missing = next((r for r in runs if not update_sizes(r)), None)
        if missing is not None:
            raise UserError(f"{missing} has no update_size_<layer> columns (log_update_sizes)")
        print(plot_update_sizes(runs, Path(args.update_sizes)))
        return 0
    for folder in runs:
        print(plot_run(folder))
    return 0


if __name__ == "__main__":
    sys.exit(main())
