"""Hyperparameter search with optuna: `python -m bp.optuna_optim --json_path configFile/hyper_bp/unsupervised`.

Each trial is one Config, trained by the call `bp.main` makes (`cli.prepare`,
then `cli.train_config`) and scored on `validation_size` training examples held
out from training (`cli.shrink`), never on the test set. The best trial's
config.json repeats the trial under `python -m bp.main --json_path`. The test
set is used once, by an explicit `--test` once the study is finished: the best
config trained with the validation examples back in the training set. A worker
that finds the study finished prints that command; it does not run it.

Storage: a journal file in the study folder by default (several processes of
one machine may share it; a trial left running by a process that died is
failed when the next worker of that machine starts), or any optuna storage URL
with `--storage` (PostgreSQL for several machines: workers that stop sending
heartbeats have their trial failed while the study goes on).

    space.py    optuna_config.json -> Search (the base Config, the searched Params)
    trial.py    one trial: the objective and the reporter that scores each epoch
    study.py    storage, the study opened or joined, this worker's trials, dead workers' trials failed
    outputs.py  trials.csv, best/config.json, plots, summary.json and summary.txt
    command.py  the command line (main), and the test run of `--test`
"""
from funcs.search.command import default_study_name, hold_out_note, main, run_test
from funcs.search.outputs import best_config, best_trial, summary_text, trial_rows, write_outputs
from funcs.search.space import SEARCH_KEYS, Param, Search, load, parse, search_file
from funcs.search.study import OPTUNA_MIN, check_optuna, masked, rdb_url, worker_id
from funcs.search.trial import Diverged, TrialReporter, objective

__all__ = ["OPTUNA_MIN", "SEARCH_KEYS", "Diverged", "Param", "Search", "TrialReporter", "best_config", "best_trial",
           "check_optuna", "default_study_name", "hold_out_note", "load", "main", "masked", "objective", "parse",
           "rdb_url", "run_test", "search_file", "summary_text", "trial_rows", "worker_id", "write_outputs"]
