"""What a study writes into its folder: trials.csv, best/config.json, history.png and importance.png (optuna's
plots), summary.json and summary.txt. Every worker writes its own folder from the shared study."""
from __future__ import annotations

import csv
import warnings
from pathlib import Path

from funcs import config as config_mod
from funcs import results, rules
from funcs.search.space import Search

def failed_elsewhere_key(number: int) -> str:
    """The study attribute that says why trial `number` was failed by another process than the one running it.

    optuna's public API sets a trial's user attributes only through the Trial object of the process running it,
    which is gone when another process fails the trial (`study.tell`), so the reason is kept with the study.
    """
    return f"fail_reason of trial {number}"


def trial_rows(study, search: Search) -> list[dict]:
    """One row per trial: number, state, value, parameters, seconds, worker, the reason it failed or was pruned,
    and the final validation metrics."""
    rows = []
    failed_elsewhere = study.user_attrs
    for t in study.get_trials(deepcopy=False):
        row = {"number": t.number, "state": t.state.name, search.metric: t.value if t.values else ""}
        row.update({p.name: t.params.get(p.name, "") for p in search.params})
        steps = sorted(t.intermediate_values)
        reason = (t.user_attrs.get("fail_reason") or t.user_attrs.get("pruned")
                  or failed_elsewhere.get(failed_elsewhere_key(t.number), ""))
        if t.state.name == "FAIL" and not reason:  # failed by optuna's heartbeat check, which records no reason
            reason = "its worker stopped sending heartbeats (stopped or killed)"
        row.update({"last_epoch": steps[-1] if steps else "", "seconds": t.user_attrs.get("seconds", ""),
                    "worker": t.user_attrs.get("worker", ""), "reason": reason})
        for k, v in (t.user_attrs.get("metrics") or {}).items():
            if k != search.metric and k.startswith(("error", "classifier", "loss", "pretrain")):
                row[f"final_{k}"] = v
        rows.append(row)
    return rows


def write_csv(path: Path, rows: list[dict]) -> None:
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
    results.atomic_write(path, write)


def best_trial(study):
    try:
        return study.best_trial
    except ValueError:  # no complete trial yet
        return None


def best_config(search: Search, trial) -> config_mod.Config:
    """The best trial's config as bp.main runs it: same keys, same validation split, its own run folder."""
    return config_mod.replace(search.trial_config(trial.params), out_dir=None)


def write_plots(study, folder: Path, metric: str) -> dict:
    """history.png (value of each trial, best so far) and importance.png (fANOVA, optuna's default); the
    importances, or why there are none."""
    import matplotlib
    matplotlib.use("Agg")  # files only
    import matplotlib.pyplot as plt
    import optuna
    from optuna.visualization import matplotlib as oplt

    out: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        ax = oplt.plot_optimization_history(study)
        ax.set_ylabel(f"{metric} (validation)")
        ax.set_title(f"{study.study_name}: {metric} of each complete trial, best so far")
        ax.figure.set_size_inches(7, 4.5)
        ax.figure.tight_layout()
        ax.figure.savefig(folder / "history.png", dpi=110)
        plt.close(ax.figure)
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
        try:
            out["importance"] = {k: round(v, 4) for k, v in
                                 optuna.importance.get_param_importances(study, evaluator=evaluator).items()}
            ax = oplt.plot_param_importances(study, evaluator=evaluator)
            ax.set_title(f"{study.study_name}: parameter importances for {metric} (fANOVA)")
            ax.figure.set_size_inches(7, 4.5)
            ax.figure.tight_layout()
            ax.figure.savefig(folder / "importance.png", dpi=110)
            plt.close(ax.figure)
        except (ValueError, RuntimeError) as err:  # fewer than two complete trials, or nothing varied
            out["importance"] = None
            out["importance_note"] = f"no parameter importances: {err}"
    return out


def write_outputs(study, search: Search, folder: Path, plots: bool = True) -> dict:
    """trials.csv, best/config.json, and with plots the PNGs and summary.json + summary.txt of the study folder."""
    rows = trial_rows(study, search)
    write_csv(folder / "trials.csv", rows)
    best = best_trial(study)
    if best is not None:
        (folder / "best").mkdir(exist_ok=True)
        results.write_json(folder / "best" / "config.json", best_config(search, best).to_json())
    if not plots:
        return {}
    states: dict[str, int] = {}
    for row in rows:
        states[row["state"]] = states.get(row["state"], 0) + 1
    summary = {"study": study.study_name, "metric": search.metric, "direction": search.direction,
               "n_trials": search.n_trials, "trials": states,
               "searched": [p.describe() for p in search.params],
               "validation": study.user_attrs.get("validation"),
               "best": None, "test": study.user_attrs.get("test"),
               "trial_seconds": round(sum(float(r["seconds"] or 0) for r in rows), 1)}
    if best is not None:
        summary["repeat"] = f"{rules.get(search.base.rule).command} --json_path {folder / 'best'}"
        summary["best"] = {"trial": best.number, "value": best.value, "params": best.params,
                           "metrics": best.user_attrs.get("metrics"), "config": "best/config.json"}
        summary.update(write_plots(study, folder, search.metric))
    results.write_json(folder / "summary.json", summary)
    (folder / "summary.txt").write_text(summary_text(summary))
    return summary


def summary_text(s: dict) -> str:
    lines = [f"study {s['study']}: {sum(s['trials'].values())} trials of {s['n_trials']} "
             f"({', '.join(f'{n} {k.lower()}' for k, n in sorted(s['trials'].items()))}); "
             f"{s['direction']} {s['metric']} on the validation split"]
    if s.get("validation"):
        v = s["validation"]
        lines.append(f"validation: {v['size']} of the {v['training_examples']} {v['dataset']} training examples, "
                     f"held out with seed {v['seed']} (indices sha256 {v['indices'][:12]}); the test set is not used")
    lines += [f"searched: {'; '.join(s['searched'])}", f"trial time: {s['trial_seconds']} s in all"]
    if s["best"] is None:
        lines.append("no trial completed yet")
    else:
        b = s["best"]
        params = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in b["params"].items())
        lines.append(f"best: trial {b['trial']}, {s['metric']} {b['value']:.4f} ({params})")
        lines.append(f"repeat it (same validation split): {s['repeat']}")
    if s.get("test"):
        t = s["test"]
        lines.append(f"test (once: trial {t['trial']}'s config without the hold-out, {t['folder']}): " +
                     ", ".join(f"{k} {v}%" for k, v in t["accuracy_percent"].items()))
    if s.get("importance"):
        lines.append("importance (fANOVA): " + ", ".join(f"{k} {v:.2f}" for k, v in s["importance"].items()))
    return "\n".join(lines) + "\n"


