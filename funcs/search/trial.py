"""One trial: its config trained by the call bp.main makes (`cli.prepare`, then `cli.train_config`), scored on the
validation split each epoch (so that the pruner may stop it), its failure recorded with a one-line reason."""
from __future__ import annotations

import contextlib
import math
import tempfile
import time
import traceback
from pathlib import Path

from funcs import cli, loop, results, rules
from funcs.errors import UserError
from funcs.search.space import Search

# A trial whose loss is not finite (raised by the epoch loop, or below): recorded failed with its one-line reason.
Diverged = loop.Diverged


class TrialReporter:
    """Stands in for a run folder during a trial (loop.train's `run`): reports the metric each epoch, may prune.

    It writes nothing but semi-supervised phase-1 files into a temporary folder. A line per training and per
    classifier epoch (into search.log too), a bar over them on a terminal, and a line a minute inside a long
    epoch elsewhere (results.Progress).
    """

    def __init__(self, trial, metric: str, folder: Path, echo):
        self.trial, self.metric, self.folder, self.echo = trial, metric, folder, echo
        self.facts: dict = {}
        self.progress: results.Progress | None = None

    def log(self, message: str, echo: bool = True) -> None:
        pass  # the run's own lines; the search prints one line per epoch instead

    def _line(self, message: str) -> None:
        with self.progress.writing() if self.progress is not None else contextlib.nullcontext():
            self.echo(message)

    def start_progress(self, total: int, initial: int) -> None:
        self.stop_progress()
        self.progress = results.Progress(total, initial, "epoch", desc=f"trial {self.trial.number}", say=self._line)

    def within_epoch(self, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress.within(done, total)

    def start_classifier(self, epochs: int, n_train: int, n_test: int, seconds: float) -> None:
        self.stop_progress()
        self.progress = results.Progress(epochs, 0, "epoch", desc=f"trial {self.trial.number} classifier",
                                         say=self._line)

    def stop_progress(self) -> None:
        if self.progress is not None:
            self.progress.close()
            self.progress = None

    def _report(self, value: float, step: int) -> None:
        import optuna
        self.trial.report(value, step)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {step}: {self.metric} {value:.4f}")

    def epoch_done(self, row: dict, checkpoint: dict) -> None:
        if not math.isfinite(row["loss"]):
            raise Diverged(f"diverged: loss {row['loss']} at epoch {row['epoch']}")
        if self.progress is not None:
            self.progress.step()
        shown = (self.metric, row[self.metric]) if self.metric in row else ("loss", row["loss"])
        took = f" ({row['seconds']:.1f} s)" if row.get("seconds") is not None else ""
        self._line(f"trial {self.trial.number} epoch {row['epoch']}: {shown[0]} {shown[1]:.4f}{took}")
        if self.metric in row:
            self._report(row[self.metric], row["epoch"])

    def classifier_epoch_done(self, row: dict) -> None:
        seconds = self.progress.step() if self.progress is not None else None
        took = f" ({seconds:.1f} s)" if seconds is not None else ""
        self._line(f"trial {self.trial.number} classifier epoch {row['epoch']}: test_error "
                   f"{row['test_error']:.4f}{took}")
        if self.metric == "classifier_error":
            self._report(row["test_error"], row["epoch"])


def objective(rule: rules.Rule, search: Search, worker: str, echo, log_file: Path):
    """optuna's objective: one trial's config trained as bp.main would, scored on the validation split."""
    import optuna

    def run(trial) -> float:
        trial.set_user_attr("worker", worker)
        values = {p.name: p.suggest(trial) for p in search.params}
        tic = time.perf_counter()
        try:
            cfg = search.trial_config(values)
            with tempfile.TemporaryDirectory(prefix=f"trial-{trial.number}-") as tmp:
                prepared = cli.prepare(rule, cfg)
                metrics = cli.train_config(rule, cfg, TrialReporter(trial, search.metric, Path(tmp), echo),
                                           prepared=prepared)
            value = metrics[search.metric]
            trial.set_user_attr("metrics", metrics)
            if not math.isfinite(value):
                raise Diverged(f"diverged: {search.metric} is {value}")
        except optuna.TrialPruned as pruned:
            trial.set_user_attr("pruned", str(pruned))
            raise
        except KeyboardInterrupt:
            trial.set_user_attr("fail_reason", "interrupted (Ctrl-C)")
            trial.set_user_attr("interrupted", True)
            raise
        except (UserError, Diverged) as err:
            trial.set_user_attr("fail_reason", str(err))
            raise
        except Exception as err:  # a bug or a resource problem: the reason in the study, the traceback in the log
            trial.set_user_attr("fail_reason", f"{err.__class__.__name__}: {err}"[:500])
            with open(log_file, "a") as f:
                f.write(f"trial {trial.number} ({worker}):\n{traceback.format_exc()}\n")
            raise
        finally:
            trial.set_user_attr("seconds", round(time.perf_counter() - tic, 3))
        return value

    return run

