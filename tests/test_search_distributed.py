"""Several workers on one PostgreSQL study (a throwaway server on 127.0.0.1, tests/pg_server.py): every trial
recorded once and the counts add up; a worker killed mid-trial has its trial failed by the heartbeat while the
study goes on."""
from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from funcs import search
from tests.pg_server import Server, server_bin
from tests.test_search import read_csv, tiny_search, write

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def tiny() -> dict:
    """The tiny search on scikit-learn's 8x8 digits (no test set): the workers' start-up and trials are short."""
    return {**tiny_search(), "dataset": "digits", "fcLayers": [64, 30], "test_size": None}


@pytest.fixture(scope="module")
def pg_url():
    """A fresh PostgreSQL server for this module. Missing server binaries skip only where they cannot be installed
    (not root); as root (CI, where `make test` installs Debian's postgresql) they, or a failed start, fail."""
    if server_bin() is None:
        if os.geteuid() != 0:
            pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) and not root to install them: "
                        "apt-get install postgresql, or run make test as root")
        pytest.fail("no PostgreSQL server binaries (initdb, pg_ctl): make test installs Debian's postgresql package")
    if importlib.util.find_spec("psycopg2") is None and importlib.util.find_spec("psycopg") is None:
        pytest.fail("no PostgreSQL driver for optuna: pip install -r requirements-test.txt (psycopg2-binary)")
    server = Server()
    try:
        url = server.start()
    except (RuntimeError, OSError, subprocess.SubprocessError) as err:
        server.stop()
        pytest.fail(f"the throwaway PostgreSQL server did not start: {err}")
    yield url
    server.stop()


def worker(folder: Path, out: Path, url: str, name: str, log: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "bp.optuna_optim", "--json_path", str(folder), "--out", str(out), "--storage", url,
           "--study-name", name, *extra]
    return subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=open(log, "w"), stderr=subprocess.STDOUT, text=True)


def finished(log: Path) -> list[int]:
    """Trial numbers a worker reports as finished (complete, pruned or failed) in its own output."""
    return [int(n) for n in re.findall(r"^trial (\d+) (?:complete|pruned|fail):", log.read_text(), re.M)]


def load(url: str, name: str):
    import optuna
    return optuna.load_study(study_name=name, storage=search.rdb_url(url))


@pytest.fixture(scope="module")
def two_workers(pg_url, tiny, tmp_path_factory) -> dict:
    """Two workers start on one PostgreSQL study of 10 trials with a 1 s heartbeat; once the first has finished a
    trial and is training its next one, it is killed (SIGKILL); the second goes on to the end."""
    root = tmp_path_factory.mktemp("two-workers")
    folder = write(root / "cfg", {**tiny, "n_trials": 10, "epochs": 3, "class_epoch": 0})
    logs = [root / "worker0.log", root / "worker1.log"]
    procs = [worker(folder, root / f"out{i}", pg_url, "shared", logs[i], "--worker", str(i), "--heartbeat", "1")
             for i in range(2)]
    deadline = time.monotonic() + 180
    while not (m := re.search(r"^trial (\d+) complete:.*\n(?:.*\n)*?trial (\d+) epoch 1:", logs[0].read_text(),
                              re.M)):
        assert time.monotonic() < deadline and procs[0].poll() is None, logs[0].read_text()
        time.sleep(0.02)
    procs[0].send_signal(signal.SIGKILL)  # mid-trial: epochs 2 and 3 of trial m[2] still to train
    procs[0].wait()
    killed_at = time.time()
    assert procs[1].wait(timeout=240) == 0, logs[1].read_text()
    return {"study": load(pg_url, "shared"), "logs": logs, "pids": [p.pid for p in procs], "root": root,
            "killed_trial": int(m.group(2)), "killed_at": killed_at}


def test_two_workers_share_one_postgresql_study_each_trial_recorded_once(two_workers):
    study, logs = two_workers["study"], two_workers["logs"]
    numbers = [t.number for t in study.trials]
    assert numbers == list(range(len(numbers))) and 10 <= len(numbers) <= 11  # one in flight may end past 10
    ran = [finished(log) for log in logs]
    killed = two_workers["killed_trial"]
    assert killed not in ran[0] and sorted(ran[0] + ran[1] + [killed]) == numbers  # each trial run once, none lost
    assert ran[0] and ran[1]  # both took part
    for i in range(2):  # the study records who ran what
        pid = two_workers["pids"][i]
        assert sorted(t.number for t in study.trials if t.user_attrs["worker"].endswith(f":{pid}")) == sorted(
            ran[i] + ([killed] if i == 0 else []))
    states = {s: sum(t.state.name == s for t in study.trials) for s in ("COMPLETE", "FAIL", "PRUNED", "RUNNING")}
    assert states == {"COMPLETE": len(numbers) - 1, "FAIL": 1, "PRUNED": 0, "RUNNING": 0}  # the counts add up
    seeds = [v["sampler_seed"] for k, v in study.user_attrs.items() if k.startswith("worker ")]
    assert len(set(seeds)) == 2  # sampler_seed mixed with the worker index: two sequences of proposals
    assert len(read_csv(two_workers["root"] / "out1" / "trials.csv")) == len(numbers)
    print(f"{len(numbers)} trials on one PostgreSQL study: worker 0 ran {sorted(ran[0])} and was killed in trial "
          f"{killed}, worker 1 ran {sorted(ran[1])}; states {states}")


def test_killed_worker_has_its_trial_failed_by_the_heartbeat_and_the_study_goes_on(two_workers):
    study, killed = two_workers["study"], two_workers["killed_trial"]
    trial = study.trials[killed]
    assert trial.state.name == "FAIL" and trial.user_attrs["worker"].endswith(f":{two_workers['pids'][0]}")
    assert len(trial.intermediate_values) < 3  # it died before its last epoch
    out = two_workers["logs"][1].read_text()
    line = next(l for l in out.splitlines() if l.startswith(f"trial {killed} failed: its worker"))
    assert "sent no heartbeat for 2 s" in line
    # The study went on after the kill: the survivor completed trials since (the failure itself may come last:
    # the survivor waits for the dead worker's heartbeat to go stale before writing its outputs).
    after = [t.number for t in study.trials if t.state.name == "COMPLETE"
             and t.datetime_complete.timestamp() > two_workers["killed_at"]]
    assert after
    rows = read_csv(two_workers["root"] / "out1" / "trials.csv")
    assert rows[killed]["state"] == "FAIL" and "stopped sending heartbeats" in rows[killed]["reason"]
    # Having waited for that, the survivor finds the study finished: it prints the test command and runs nothing.
    assert re.search(r"^  python -m bp\.optuna_optim .* --study-name shared .*--test$", out, re.M)
    assert not (two_workers["root"] / "out1" / "test").exists() and "test" not in study.user_attrs
    print(f"worker 1: {line!r}; trials completed after the kill: {after}")
