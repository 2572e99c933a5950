"""The study and its workers: the storage (a journal file, or an RDB such as PostgreSQL with heartbeats), the
study opened or joined (refused if made by another search or on another validation split), each worker's
sampler seed, its trials until the study holds n_trials, and the trials of dead workers failed.

Only optuna's public API is used: a trial left running by a dead process is failed with `study.tell` (its reason
kept with the study, outputs.failed_elsewhere_key), a stale RDB trial by `optuna.storages.fail_stale_trials`.
"""
from __future__ import annotations

import json
import os
import random
import re
import socket
import time
import warnings
from pathlib import Path

from funcs import data as data_mod
from funcs import rules
from funcs.errors import UserError
from funcs.search.outputs import best_trial, failed_elsewhere_key, write_outputs
from funcs.search.space import Search
from funcs.search.trial import objective


# The oldest optuna this code runs on: RDBStorage's heartbeat_stale_trial_callback came in 4.9 (4.0-4.8 name it
# failed_trial_callback). requirements-search.txt's floor is this one (tests/test_search.py checks it).
OPTUNA_MIN = "4.9"


def check_optuna() -> None:
    """One line, not a failure deep in the storage, when the installed optuna is older than OPTUNA_MIN."""
    import optuna
    from packaging.version import Version  # optuna's own dependency
    if Version(optuna.__version__) < Version(OPTUNA_MIN):
        raise UserError(f"the search needs optuna >= {OPTUNA_MIN}, this environment has {optuna.__version__}: "
                        f"pip install 'optuna>={OPTUNA_MIN}'")


def masked(url: str) -> str:
    """A storage URL without its password, for messages and records."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def is_rdb(url: str | None) -> bool:
    """Whether `--storage` names a database (a URL) rather than a journal file."""
    return url is not None and "://" in url


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def make_storage(url: str | None, folder: Path, heartbeat: int, echo):
    """The study's storage: a journal file in the study folder, a journal file path, or an RDB URL."""
    import optuna

    if not is_rdb(url):
        return journal_storage(Path(url) if url else folder / "study.journal", given=url is not None)

    def stale(study, trial) -> None:
        echo(f"trial {trial.number} failed: its worker ({trial.user_attrs.get('worker', 'unknown')}) sent no "
             f"heartbeat for {2 * heartbeat} s (stopped or killed); the study goes on")

    url = rdb_url(url)
    engine = {} if url.startswith("sqlite") else {"pool_pre_ping": True}  # recycle idle connections
    import sqlalchemy.exc
    for attempt in range(6):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, engine_kwargs=engine, heartbeat_interval=heartbeat,
                                                  grace_period=2 * heartbeat, heartbeat_stale_trial_callback=stale)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as err:
            # Workers started together on an empty database all create optuna's tables; the losers of that
            # race see a duplicate table or type: wait a moment and open the tables the winner made.
            if attempt == 5:
                raise UserError(f"--storage {masked(url)}: cannot create optuna's tables ({_first_line(err)})")
            time.sleep(random.uniform(0.2, 1.0))
        except ImportError as err:
            driver = "psycopg2-binary" if url.startswith("postgres") else "the database's Python driver"
            raise UserError(f"--storage {masked(url)}: the driver is missing ({err}); pip install {driver}")
        except Exception as err:  # sqlalchemy's many connection and URL errors
            raise UserError(f"--storage {masked(url)}: cannot open it ({_first_line(err)})")


def journal_storage(path: Path, given: bool):
    """The storage of a journal file (made if new, with its folder), or one line naming the file: one that cannot
    be opened (a folder, no permission), or a damaged one, refused before anything is appended to it."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage
    what = f"--storage {path}" if given else f"study journal {path}"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _check_journal(path, what)
        return JournalStorage(JournalFileBackend(str(path)))  # replays the whole file
    except OSError as err:
        raise UserError(f"{what}: cannot open the journal file ({err.strerror or _first_line(err)})") from None
    except (ValueError, KeyError, TypeError) as err:
        # records that read as JSON but that optuna cannot replay (its own messages, often a bare key); an
        # optuna of another version may be the cause too, so the file is not called worthless
        raise UserError(f"{what}: optuna {optuna.__version__} cannot replay it ({_first_line(err)}): a damaged "
                        f"file, or one of another optuna version; restore it, or move it away to start the study "
                        f"anew") from None


def _check_journal(path: Path, what: str) -> None:
    """Each complete line of the journal must be an optuna record. optuna itself passes over a damaged last line
    until a record is appended after it, then fails on every read: refuse the file now, before writing to it. An
    unfinished last line (no newline) is another worker's write under way and is left to optuna."""
    if not path.exists():
        return
    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            if not line.endswith(b"\n"):
                return
            try:
                record = json.loads(line)
            except ValueError:  # not JSON, or not UTF-8
                record = None
            if not isinstance(record, dict) or "op_code" not in record:
                raise UserError(f"{what} is damaged (line {n} is not an optuna record); restore it, or move it "
                                f"away to start the study anew")


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return f"{err.__class__.__name__}: {text.splitlines()[0]}" if text else err.__class__.__name__


def rdb_url(url: str) -> str:
    """postgresql://... with the PostgreSQL driver that is installed: SQLAlchemy 2.1 means psycopg (3) by it,
    2.0 psycopg2; either works, and the URL users write should not depend on which one they have."""
    scheme, sep, rest = url.partition("://")
    if scheme not in ("postgresql", "postgres"):
        return url
    import importlib.util
    for driver in ("psycopg", "psycopg2"):
        if importlib.util.find_spec(driver) is not None:
            return f"postgresql+{driver}://{rest}"
    raise UserError(f"--storage {masked(url)}: no PostgreSQL driver; pip install psycopg2-binary")


def fail_dead_local_trials(study, echo) -> None:
    """Journal storage has no heartbeat: fail the running trials of this machine whose process is gone.
    (An RDB storage fails a dead worker's trial by its heartbeat.)"""
    import optuna
    from optuna.trial import TrialState

    host = socket.gethostname()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        name, _, pid = t.user_attrs.get("worker", "").rpartition(":")
        if name == host and pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            reason = f"its worker (process {pid} on {host}) stopped during the trial"
            study.set_user_attr(failed_elsewhere_key(t.number), reason)
            try:
                study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
            except optuna.exceptions.UpdateFinishedTrialError:  # another worker starting now failed it first
                continue
            echo(f"trial {t.number} failed: {reason}")


def counted(trials) -> list:
    """Trials that count towards n_trials: all but those stopped by Ctrl-C (a rerun makes up for them)."""
    return [t for t in trials if not t.user_attrs.get("interrupted")]


class StopAfter:
    """Stop this worker once the study holds n_trials counted trials (its other workers' included)."""

    def __init__(self, n_trials: int):
        self.n_trials = n_trials

    def __call__(self, study, trial) -> None:
        if len(counted(study.get_trials(deepcopy=False))) >= self.n_trials:
            study.stop()


def worker_seed(search: Search, worker: int, n_existing: int) -> int:
    """This worker's sampler seed: drawn fresh, or derived from sampler_seed, the worker index and the trials
    already in the study, so that workers and reruns never propose the same sequence."""
    if search.sampler_seed is None:
        return random.SystemRandom().randrange(2 ** 31)
    import numpy as np
    return int(np.random.SeedSequence([search.sampler_seed, worker, n_existing]).generate_state(1)[0] >> 1)


def make_sampler(search: Search, seed: int):
    import optuna
    if search.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def make_pruner(spec: dict):
    import optuna
    args = {k: v for k, v in spec.items() if k != "name"}
    if spec["name"] == "median":
        return optuna.pruners.MedianPruner(**args)
    if spec["name"] == "percentile":
        return optuna.pruners.PercentilePruner(**args)
    return optuna.pruners.NopPruner()


def validation_record(cfg) -> dict:
    """The validation split of a search (a seeded hold-out of the training set): its size, seed and checksum."""
    from funcs import association
    import torch
    train = data_mod.load_dataset(cfg.dataset, cfg.data_dir).train
    _, _, held = data_mod.hold_out(train, cfg.validation_size, torch.Generator().manual_seed(cfg.seed))
    return {"size": cfg.validation_size, "seed": cfg.seed, "indices": association.describe_subset(held)["sha256"],
            "dataset": cfg.dataset, "training_examples": train.y.shape[0]}


def open_study(search: Search, name: str, storage, sampler):
    """Create the study or join it; refuse one created with another search."""
    import optuna
    study = optuna.create_study(study_name=name, storage=storage, sampler=sampler,
                                pruner=make_pruner(search.pruner), direction=search.direction,
                                load_if_exists=True)
    record = json.loads(json.dumps(search.record()))  # as stored: tuples become lists
    saved = study.user_attrs.get("search")
    if saved is None:
        study.set_user_attr("search", record)
    elif saved != record:
        changed = sorted(k for k in record if saved.get(k) != record.get(k))
        if "base" in changed:
            keys = sorted(k for k in set(saved["base"]) | set(record["base"])
                          if saved["base"].get(k) != record["base"].get(k))
            changed[changed.index("base")] = "config keys " + ", ".join(keys)
        raise UserError(f"study '{name}' was created with another search ({'; '.join(changed)} differ); "
                        f"restore optuna_config.json or choose a new --study-name")
    return study


def set_up_study(search: Search, args, name: str, folder: Path, echo):
    """Open the study (or create it) and refuse one made by another search or on another validation split;
    this worker recorded in it. The default journal file's folder is the only one made. (study, sampler seed)."""
    import optuna
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # one line per epoch and per trial, printed here
    validation = validation_record(search.base)
    storage = make_storage(args.storage, folder, args.heartbeat, echo)
    try:
        existing = len(optuna.load_study(study_name=name, storage=storage).trials)
    except KeyError:  # a new study
        existing = 0
    seed = worker_seed(search, args.worker, existing)
    study = open_study(search, name, storage, make_sampler(search, seed))
    saved = study.user_attrs.get("validation")
    if saved is None:
        study.set_user_attr("validation", validation)
    elif saved["indices"] != validation["indices"]:
        raise UserError(f"study '{name}': this machine's {search.base.dataset} training set gives another "
                        f"validation split than the study's (indices sha256 {saved['indices'][:12]}); check "
                        f"the dataset files")
    study.set_user_attr(f"worker {worker_id()}", {"sampler_seed": seed, "worker_index": args.worker,
                                                  "started": time.strftime("%Y-%m-%dT%H:%M:%S")})
    return study, seed


def optimise(rule: rules.Rule, study, search: Search, folder: Path, echo) -> None:
    """This worker's trials, until the study holds n_trials; on Ctrl-C, trials.csv is brought up to date and the
    KeyboardInterrupt goes on up."""
    def after_trial(study, trial) -> None:
        value = f"{search.metric} {trial.value:.4f}" if trial.values else (
            trial.user_attrs.get("fail_reason") or trial.user_attrs.get("pruned") or "")
        best = best_trial(study)
        lead = f"; best {best.value:.4f} (trial {best.number})" if best is not None else ""
        echo(f"trial {trial.number} {trial.state.name.lower()}: {value}{lead}; "
             f"{len(counted(study.get_trials(deepcopy=False)))} of {search.n_trials} trials")
        write_outputs(study, search, folder, plots=False)

    if len(counted(study.get_trials(deepcopy=False))) >= search.n_trials:
        return
    try:
        study.optimize(objective(rule, search, worker_id(), echo, folder / "search.log"), catch=(Exception,),
                       callbacks=[after_trial, StopAfter(search.n_trials)], gc_after_trial=True)
    except KeyboardInterrupt:
        write_outputs(study, search, folder, plots=False)
        raise


def fail_stale(study) -> None:
    """Fail a dead worker's trial once its heartbeat is past the grace period (RDB storage; else nothing)."""
    import optuna
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def running(study) -> bool:
    return any(t.state.name == "RUNNING" for t in study.get_trials(deepcopy=False))


def settle(study, heartbeat: int) -> None:
    """Wait up to three heartbeat intervals for trials still running elsewhere to end.

    A worker killed mid-trial leaves its trial RUNNING until some worker fails it, two
    heartbeats later; the last worker standing waits for that, so that its outputs
    show the trial failed rather than running and it finds the study complete. Live
    workers' trials that run longer are left to them.
    """
    deadline = time.monotonic() + 3 * heartbeat
    while running(study) and time.monotonic() < deadline:
        time.sleep(min(1.0, heartbeat / 2))
        fail_stale(study)


def progress(study) -> tuple[int, int]:
    """(trials that count towards n_trials, trials still running), a dead worker's stale trial failed first."""
    fail_stale(study)
    trials = study.get_trials(deepcopy=False)
    return len(counted(trials)), sum(t.state.name == "RUNNING" for t in trials)


def study_complete(study, search: Search) -> bool:
    """Whether the study holds its n_trials and none is running."""
    n, live = progress(study)
    return n >= search.n_trials and not live


