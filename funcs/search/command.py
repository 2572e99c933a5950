"""The command line of the search, `python -m bp.optuna_optim` (and ep., hebb.): run this worker's trials, or with
`--test` score the finished study's best config on the test set, once."""
from __future__ import annotations

import dataclasses
import shlex
import sys
from pathlib import Path

from funcs import cli, results, rules
from funcs import config as config_mod
from funcs.errors import OneLineParser, UserError, one_line_errors
from funcs.search.outputs import best_config, best_trial, summary_text, write_outputs
from funcs.search.space import Search, load, positive_int
from funcs.search.study import (check_optuna, counted, fail_dead_local_trials, is_rdb, masked, optimise, progress,
                                settle, set_up_study, study_complete, worker_id)


def parse_args(rule: rules.Rule, argv):
    p = OneLineParser(prog=f"python -m {rule.search}",
                      description=f"Random (or TPE) search of {rule.title} hyperparameters with optuna, "
                                  f"scored on a validation split of the training set.")
    p.add_argument("--json_path", default=rule.search_config or f"configFile/hyper_{rule.name}/unsupervised",
                   help="folder holding optuna_config.json, or a .json file (default: %(default)s)")
    p.add_argument("--trained_path", metavar="RUN_DIR",
                   help="classifier searches: the run folder whose trained network is read out")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of optuna_config.json; VALUE is JSON (e.g. --set epochs=3 --set n_trials=10)")
    p.add_argument("--storage", metavar="URL",
                   help="optuna storage shared by the workers: postgresql://user@host/db (or any RDB URL), or a "
                        "journal file path (default: STUDY_DIR/study.journal)")
    p.add_argument("--study-name", help="the study's name in the storage (default: from --json_path)")
    p.add_argument("--out", metavar="STUDY_DIR",
                   help="where this worker writes the outputs (default: DATA-0/optuna/<study name>)")
    p.add_argument("--n-trials", type=int, help="trials of the whole study (default: optuna_config's n_trials)")
    p.add_argument("--worker", type=int, default=0, metavar="I",
                   help="this worker's index, mixed into the sampler seed when sampler_seed is set")
    p.add_argument("--heartbeat", type=int, default=60, metavar="SECONDS",
                   help="RDB storage: heartbeat interval; a trial silent for twice this is failed (default 60)")
    p.add_argument("--test", action="store_true",
                   help="run no trial: train the finished study's best config without the hold-out into "
                        "STUDY_DIR/test and score it on the test set, once (a stopped test run continues)")
    p.add_argument("--dry-run", action="store_true",
                   help="validate the search file, print the search space and exit (reads no data or network)")
    return p.parse_args(argv)


def default_study_name(json_path: str, trained_path: str | None = None) -> str:
    """hyper_bp-unsupervised for configFile/hyper_bp/unsupervised; the read-out searches add the trained run's name."""
    path = Path(json_path).resolve()
    if path.suffix == ".json":
        path = path.parent if path.name == "optuna_config.json" else path.with_suffix("")
    return f"{path.parent.name}-{path.name}" + (f"-{Path(trained_path).resolve().name}" if trained_path else "")


@one_line_errors
def main(rule: rules.Rule, argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = parse_args(rule, argv)
    except SystemExit as done:
        return done.code
    # As typed, but without a storage password: it is printed, logged and recorded in the test run's summary.json.
    command = [f"python -m {rule.search}", *map(masked, argv)]
    try:
        return _main(rule, args, command)
    except cli.RunDiverged as stop:  # the test run of the best config
        print(stop, file=sys.stderr)
        return cli.DIVERGED_EXIT
    except (cli.UserInterrupt, KeyboardInterrupt):  # a trial, the test run or the outputs stopped by Ctrl-C
        print("interrupted; run the same command again to resume the search", file=sys.stderr)
        return 130


def _main(rule: rules.Rule, args, command) -> int:
    search, raw = load(args.json_path, rule, args.set, args.trained_path)
    if args.n_trials is not None:
        search = dataclasses.replace(search, n_trials=positive_int("--n-trials", args.n_trials))
    if args.heartbeat < 1:
        raise UserError(f"--heartbeat must be at least 1 second, got {args.heartbeat}")
    name = args.study_name or default_study_name(args.json_path, args.trained_path)
    if args.out is not None and not args.out.strip():
        raise UserError("--out: an empty path; give the study folder")
    folder = Path(args.out or Path("DATA-0") / "optuna" / name)
    where = masked(args.storage) if args.storage else folder / "study.journal"
    if args.dry_run:
        print(f"study {name} in {where}: {search.n_trials} trials, {search.sampler} sampler, pruner "
              f"{search.pruner['name']}, {search.direction} {search.metric} on {search.base.validation_size} "
              f"validation examples")
        for p in search.params:
            print("  " + p.describe())
        return 0
    check_study_folder(folder)
    check_optuna()
    echo = logger(folder / "search.log")
    # What no sampled value changes is refused once, not by every trial: the data files and sizes, the trained
    # network of trained_path, the phase-1 network of pretrained_path.
    cli.prepare(rule, search.base)
    study, seed = set_up_study(search, args, name, folder, echo)
    folder.mkdir(parents=True, exist_ok=True)  # every check passed
    write_json_once(folder / "optuna_config.json", raw)
    if not is_rdb(args.storage):  # an RDB storage fails a dead worker's trial by its heartbeat instead
        fail_dead_local_trials(study, echo)
    if args.trained_path:
        echo(hold_out_note(args.trained_path, search.base))
    echo(f"study {name} ({where}), worker {worker_id()}, sampler {search.sampler} seed {seed}: "
         f"{len(counted(study.get_trials(deepcopy=False)))} of {search.n_trials} trials there; scoring "
         f"{search.metric} on {search.base.validation_size} validation examples")
    if args.test:
        run_test(rule, study, search, folder, command, echo)
    else:
        optimise(rule, study, search, folder, echo)
        if is_rdb(args.storage):
            settle(study, args.heartbeat)
        say_how_to_test(study, search, command, echo)
    summary = write_outputs(study, search, folder)
    echo(summary_text(summary).rstrip())
    echo(f"outputs in {folder}: trials.csv, summary.txt, summary.json" +
         (", history.png, importance.png, best/config.json" if summary.get("best") else ""))
    return 0


def say_how_to_test(study, search: Search, command, echo) -> None:
    """Once the study is finished, with a best trial and no test yet: the command that tests it. This worker runs
    no test itself: workers finishing together would each run one, and the test set is used once."""
    if study_complete(study, search) and best_trial(study) is not None and not study.user_attrs.get("test"):
        echo(f"the study is complete; score its best config on the test set, once, with:\n  "
             f"{command_with_test(command)}")


def command_with_test(command: list[str]) -> str:
    """The command line that tests the study's best config: this one, shell-quoted, with `--test` (a storage
    password shows as ***: put it back, or give it in ~/.pgpass)."""
    program, *argv = command
    return " ".join([program, *map(shlex.quote, argv), "--test"])


def run_test(rule: rules.Rule, study, search: Search, folder: Path, command, echo) -> None:
    """The test set, once: the best config without the hold-out (validation_size null: the validation examples
    back in the training set), trained into `folder/test`; its accuracies are kept with the study.

    The study must be finished, so that the test scores the final best config; a test run stopped on the way
    continues from `folder/test` when the command is run again; once recorded, the test is not run again.
    """
    done = study.user_attrs.get("test")
    if done:
        echo(f"the test set was used already, by trial {done['trial']}'s config ({done['folder']}); not again")
        return
    n, live = progress(study)
    if n < search.n_trials or live:
        raise UserError(f"--test: the study is not finished ({n} of its {search.n_trials} trials, "
                        f"{live or 'none'} running): run the search (without --test) to its end first; the test "
                        f"set scores the final best config, once")
    best = best_trial(study)
    if best is None:
        raise UserError("--test: no trial of the study completed, so there is no best config to test")
    out = folder / "test"
    cfg = config_mod.replace(best_config(search, best), validation_size=None, out_dir=str(out))
    echo(f"test: trial {best.number}'s config without the hold-out (validation_size null), scored on the test set, "
         f"into {out}")
    started = (out / "config.json").exists()  # a test run into this folder that stopped (or was not recorded)
    saved = config_mod.read_json(out / "config.json", "test run config") if started else None
    if started and _but_rates(saved) != _but_rates(cfg.to_json()):
        raise UserError(f"{out} holds the run of another config than trial {best.number}'s; move it away")
    if (out / "summary.json").exists():
        summary = test_summary(out)
        if summary["status"] == "diverged":
            key = summary["diverged"].get("resume_key", "lr")
            then = f"continue it with {rule.command} --resume {out} --set {key}=[...]" if key else \
                "no rate a resume may change helps; move it away and change the search's base config"
            raise UserError(f"the test run in {out} diverged ({summary['diverged']['reason']}); {then}, then run "
                            f"this command again")
    else:
        summary = cli.run_one(rule, cfg, out if started else None, command, resume=started)
    study.set_user_attr("test", {"trial": best.number, "folder": str(out), "worker": worker_id(),
                                 "accuracy_percent": summary["accuracy_percent"], "metrics": summary["metrics"]})


def _but_rates(config: dict) -> dict:
    """A config without the rates a diverged run may be resumed with (cli.RESUMABLE_KEYS): a test run that
    diverged and was continued with a lower rate is still the run of the best trial's config."""
    return {k: v for k, v in config.items() if k not in cli.RESUMABLE_KEYS}


def test_summary(out: Path) -> dict:
    """The summary.json of a test run that ended (finished, or diverged), as results.Run.write_summary writes it;
    one line naming the file when it is damaged."""
    path = out / "summary.json"
    summary = config_mod.read_json(path, "test run summary")
    status = summary.get("status", "finished")  # older code wrote no status: a summary was a finished run's
    if status == "diverged":
        missing = [] if isinstance(summary.get("diverged"), dict) and "reason" in summary["diverged"] else \
            ["diverged.reason"]
    elif status == "finished":
        missing = [k for k in ("accuracy_percent", "metrics") if not isinstance(summary.get(k), dict)]
    else:
        missing = ["status finished or diverged"]
    if missing:
        raise UserError(f"test run summary {path} is damaged (no {', '.join(missing)}); remove {out} to run the "
                        f"test again")
    return summary


def check_study_folder(folder: Path) -> None:
    """The study folder (--out) is a folder or can be made one: refused before anything is written to the study."""
    for p in (folder, *folder.parents):
        if p.is_dir():
            return
        if p.exists():
            there = "a file is there" if p == folder else f"{p} is a file"
            raise UserError(f"--out {folder}: {there}, not a folder; choose another study folder")


def logger(log_file: Path):
    """echo(message): print a line and append it to the study's search.log (once the study folder exists)."""
    def echo(message: str) -> None:
        print(message, flush=True)
        with open(log_file, "a") as f:
            f.write(message + "\n")
    return echo


# What the trained run's own training used of the validation images, by its kind (config.Config.target_kind).
SEEN = {"unsupervised": "it may have seen the validation images (never their labels)",
        "supervised": "it may have been trained on the validation images with their labels, which flatters the "
                      "validation score",
        "semi_supervised": "it may have been trained on the validation images, some of them with their labels, "
                           "which flatters the validation score"}


def hold_out_note(trained_path: str, cfg) -> str:
    """Whether the read-out network was trained without the search's validation images, and if not what it may
    have learnt of them (their labels too, for a supervised or semi-supervised run)."""
    saved = config_mod.read_json(results.trained_config_file(Path(trained_path)), "--trained_path config")
    if saved.get("validation_size") == cfg.validation_size and saved.get("seed") == cfg.seed:
        return f"the network of {trained_path} was trained without these {cfg.validation_size} validation images"
    action = saved.get("action")
    if action == config_mod.READ_OUT:
        if saved.get("trained_path") is None:
            return f"the network of {trained_path} is untrained (action {action}): it has seen no image"
        return (f"note: the network of {trained_path} is that of {saved['trained_path']} (action {action}); "
                f"whether that one was trained without these validation images is not checked")
    owner = rules.owner(action) if isinstance(action, str) else None
    kind = owner.actions[action] if owner else "supervised"  # as Config.target_kind
    return (f"note: the network of {trained_path} was trained ({action}) with validation_size "
            f"{saved.get('validation_size')} and seed {saved.get('seed')}: {SEEN.get(kind, SEEN['supervised'])}; "
            f"train it with validation_size {cfg.validation_size} and seed {cfg.seed} for a clean hold-out")


def write_json_once(path: Path, obj) -> None:
    if not path.exists():
        results.write_json(path, obj)
