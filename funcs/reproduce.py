"""Run the experiments behind every figure and table at their full length: `python -m funcs.reproduce`.

The registry of funcs/figures_registry.py names every run folder and the command that
writes it; this runs those commands (the paper's full runs, never the CPU
shortenings) into ROOT/<source path>, N jobs at a time with T threads each.

A folder with summary.json is skipped; one with config.json and checkpoint.pt is
resumed (`python -m <rule>.main --resume FOLDER`, with `--set` of --device and --data_dir where they differ
from the run's saved ones: a run moved to another machine); one with neither a checkpoint nor
a summary (killed before its first epoch ended) is removed and started again. A run
that diverged (summary.json says so) is reported as failed, with the command that
continues it at lower rates, and what waits for it does not start.
A finished folder is never rerun, even one shortened for a CPU as in simuResults/, or
one trained with a setting its command now changes, such as a default changed since
(--dry-run says which, and which keys): reproduce into another --root for those. A folder
that another process is training is left alone: one of this machine (its --out or --resume,
seen in /proc), or another funcs.reproduce on any machine sharing the root (it holds a lock
on the job's log while the job runs).
A source with `seeds` > 1 is one job per seed in <path>/S-<seed>/ (command with
`--set seed=S`); when all its seeds have finished, <path>/seeds_summary.json is
written as `--seeds` writes it. Two folders of the same run (same rule, config, seed and
labeled subset: Table 5's seed-1 run and its seeds root's S-1) are trained once: the second is
copied from the first when it finishes (`copy` in --dry-run).

Order: Table 5's semi-supervised runs (+ WTA + homeostasis, seed 1) first, then the
seeds of Tables 3 and 5, then every other source in registry order, then our own
tables' (small-world EP, Fashion-MNIST, supervised references). A job waits for what it reads:
a `_wta` variant for its base run's pretrained.pt (written when phase 1 ends), a
read-out (`--trained_path`) for its trained run's summary.json, an extraction
(`Source.extract`) for its own run's summary.json. Each job's output goes to
ROOT/<path>.log, beside its folder (the CLI wants a new run folder empty).

    python -m funcs.reproduce --dry-run                      # what it would run, with time estimates
    python -m funcs.reproduce --only 'semi_*' --jobs 2 --threads 1
    python -m funcs.reproduce --root R --print              # one resumable shell line per job group
    python -m funcs.reproduce --only semi_bp_100 --device 0 --jobs 8 --deadline 480

Ctrl-C or `kill` (SIGTERM) stops it as --deadline does: every running job stops
at a checkpoint (exit 130), and the same command continues them. A second Ctrl-C
(or kill) kills them at once, losing at most the epoch each was in.

Exit code: 0 everything asked for is finished; 1 a job failed or cannot start;
2 bad input; 3 work left without a failure (stopped at --deadline, or a folder
is being trained by another process): the same command continues it.
"""
from __future__ import annotations

import argparse
import fnmatch
import importlib.util
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

try:
    import fcntl  # the locks that keep two funcs.reproduce off one folder: POSIX only
except ImportError:  # Windows: no lock, as before (the /proc check of live_process finds nothing there either)
    fcntl = None

from funcs import config as config_mod
from funcs import plots, results
from funcs.errors import OneLineParser, UserError, one_line_errors, stop_signals_interrupt
from funcs.figures_registry import (OTHER_TABLES, PAPER_RULES, REGISTRY, REPO, ROOT, SEMI, TABLE5_LABELS, Source,
                                    semi_key)
from funcs.records import planned_epochs

BENCH = REPO / "bench" / "results"
POLL_S = 0.2  # how often running jobs are looked at
PROGRESS_S = 60  # a progress line per running job this often
GRACE_S = 30  # after SIGINT, how long a job may take to stop before it is killed
# Bench files named for code before a speed-up, or for another machine than their siblings of the same day: used
# only where no sibling has the preset.
LESS_FITTING_MARKERS = ("before-", "first-version", "other-machine")
# Extraction kinds that need a package the requirements leave optional.
EXTRACT_MODULES = {"umap": "umap"}


# --- the plan ------------------------------------------------------------------------------------

def registry_sources() -> list[Source]:
    """Every source of the registry, Table 5's runs of seed 1 first, then the seeds of Tables 3 and 5, then the
    rest, then our own tables' (duplicates kept)."""
    table5 = [SEMI[semi_key(rule, n, "wta_homeostasis")] for rule in PAPER_RULES for n in TABLE5_LABELS]
    seeds = [s for table in ("table3", "table5") for s in REGISTRY[table].sources.values() if s.seeds > 1]
    return table5 + seeds + [s for e in (*REGISTRY.values(), *OTHER_TABLES.values()) for s in e.sources.values()]


@dataclass(eq=False)  # jobs are compared by identity, as everywhere here (id(), is)
class Job:
    """One training run (fresh, resumed or finished) or one extraction, and the files it waits for."""
    name: str  # path under the root; <path>/S-<seed> for a seed, <path>:<file stem> for an extraction
    source: Source
    folder: Path  # the run folder it writes (an extraction: the run folder it reads)
    action: str  # "skip", "resume", "fresh", "diverged" or "extract"
    argv: list[str]  # the fresh command (an extraction's command)
    cfg: dict | None  # the config a fresh run gets (None: an extraction)
    needs: list[Path]
    done_file: Path  # there when the job is finished
    log: Path
    twin: Job | None = None  # a "copy" job: the job training the same run, copied when it finishes

    @property
    def is_run(self) -> bool:
        return self.action != "extract"


def shown(path: Path) -> str:
    """A path as commands name it: relative to the repository (where every job runs) when inside it."""
    try:
        return str(Path(path).relative_to(REPO))
    except ValueError:
        return str(path)


def folder_state(folder: Path) -> str:
    """'skip' (finished: summary.json), 'diverged' (its summary.json says so: a person continues it with lower
    rates), 'resume' (config.json and checkpoint.pt) or 'fresh' (nothing, or a dead start)."""
    if (folder / "summary.json").is_file():
        diverged = config_mod.read_json(folder / "summary.json", "run summary").get("status") == "diverged"
        return "diverged" if diverged else "skip"
    if (folder / "config.json").is_file() and (folder / results.CHECKPOINT).is_file():
        return "resume"
    return "fresh"


def _words(command: str) -> list[str]:
    """A registry command as an argument list run by this interpreter."""
    words = shlex.split(command)
    assert words[0] == "python", command  # the registry's commands are `python -m ...`
    return [sys.executable, *words[1:]]


def _option(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def _sets(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, w in enumerate(argv) if w == "--set"]


def planned_config(argv: list[str]) -> dict:
    """The keys a training command runs with: defaults (the rule's too), its preset, its --set values (unvalidated:
    the run checks them and says so in its log); a read-out (--trained_path) is marked as the CLI marks it."""
    cfg = {**config_mod.Config().to_json(),
           **config_mod.read_json(config_mod.config_file(REPO / _option(argv, "--json_path")))}
    cfg.update(config_mod.parse_override(text) for text in _sets(argv))
    try:  # the rule's own keys, at their defaults where the preset leaves them
        cfg = {**{k: spec.default for k, spec in config_mod.resolve_rule(cfg).fields.items()}, **cfg}
    except UserError:
        pass  # the run says what is wrong
    if _option(argv, "--trained_path"):
        cfg["action"] = config_mod.READ_OUT
    return cfg


def needs_of(argv: list[str]) -> list[Path]:
    """Files a command reads from other runs: a phase-1 network (pretrained_path), a trained run (--trained_path)."""
    out = []
    for key, value in map(config_mod.parse_override, _sets(argv)):
        if key == "pretrained_path":
            path = REPO / value  # a run folder, or its pretrained.pt
            out.append(path if path.suffix == ".pt" else path / "pretrained.pt")
    if _option(argv, "--trained_path"):
        out.append(REPO / _option(argv, "--trained_path") / "summary.json")
    return out


def _run_job(name: str, src: Source, folder: Path, argv: list[str], root: Path, extra: list[str]) -> Job:
    """A training job: its fresh command (+ device, data_dir, --out), needs and log; its state is read by `plan`
    once the job is selected."""
    argv = [*argv, *extra, "--out", shown(folder)]
    return Job(name, src, folder, "", argv, planned_config(argv), needs_of(argv), folder / "summary.json",
               root / f"{name}.log")


def _extract_job(src: Source, root: Path, root_text: str, data_dir: str | None) -> Job:
    """The extraction of a source's array file, once its run has finished."""
    folder = root / src.path
    argv = _words(src.extract_command(root_text))
    if data_dir is not None and "--data_dir" in argv:
        argv[argv.index("--data_dir") + 1] = data_dir
    name = f"{src.path}:{Path(src.file).stem}"
    return Job(name, src, folder, "extract", argv, None, [folder / "summary.json"], folder / src.file,
               root / f"{src.path}.{Path(src.file).stem}.log")


def plan(sources: list[Source], root: Path, device: int | None = None, data_dir: str | None = None,
         patterns: list[str] = ()) -> list[Job]:
    """Every job of the sources under `root`, in their order; a run folder met again (a path of two sources, a
    single-seed source naming one seed of a seeds source) adds only its extraction."""
    root_text = shown(root)
    extra = [*(["--set", f"device={device}"] if device is not None else []),
             *(["--set", f"data_dir={json.dumps(data_dir)}"] if data_dir is not None else [])]
    jobs, folders, extractions = [], set(), set()
    for src in sources:
        argv = _words(src.command.replace(ROOT, root_text))
        runs = [(src.path, argv)] if src.seeds == 1 else \
            [(f"{src.path}/S-{seed}", [*argv, "--set", f"seed={seed}"]) for seed in seeds_of(src, argv)]
        for name, run_argv in runs:
            if root / name not in folders:
                folders.add(root / name)
                jobs.append(_run_job(name, src, root / name, run_argv, root, extra))
        if src.file and (src.path, src.file) not in extractions:
            extractions.add((src.path, src.file))
            jobs.append(_extract_job(src, root, root_text, data_dir))
    inner = next((f for f in sorted(folders) if any(p in folders for p in f.parents)), None)
    if inner is not None:  # one run's folder inside another's: the outer run would find the seeds' folders in its own
        outer = next(p for p in inner.parents if p in folders)
        raise UserError(f"the sources plan {shown(outer)} as one run and {shown(inner)} inside it: a path named both "
                        f"as a single run and as a seeds root (give its sources the same seeds)")
    selected = select(jobs, patterns)
    for job in selected:  # only the selected folders are read: a damaged one elsewhere stops nothing
        if job.is_run:
            job.action = folder_state(job.folder)
    copy_twins(selected, jobs)
    return selected


def run_identity(job: Job) -> str:
    """What a run's result depends on: its rule, its trained network (a read-out) and its config with the labeled
    subset's seed resolved; two folders of one identity hold the same run."""
    cfg = _subset_seed_resolved({k: v for k, v in job.cfg.items() if k != "out_dir"})
    return json.dumps([job.argv[2], _option(job.argv, "--trained_path"), cfg], sort_keys=True, default=str)


def copy_twins(selected: list[Job], planned: list[Job]) -> None:
    """Make each fresh selected run that has a twin (another folder of the same run) a "copy" of it instead of a
    second training: of a twin finished in the root as its command now plans it (selected or not; not one
    shortened or trained with other settings), else of the selected twin that trains (the one with epochs done
    first, else the first planned). An unselected twin with epochs done is not waited for: --only leaves it."""
    by_identity: dict[str, list[Job]] = {}
    for job in planned:
        if job.is_run:
            by_identity.setdefault(run_identity(job), []).append(job)
    selected_ids = {id(j) for j in selected}
    for twins in by_identity.values():
        selected_twins = [t for t in twins if id(t) in selected_ids]
        if len(twins) < 2 or not any(t.action == "fresh" for t in selected_twins):
            continue
        trainer = next((t for t in twins if _finished_as_planned(t)), None) or \
            next((t for t in selected_twins if t.action == "resume"), None) or \
            next(t for t in selected_twins if t.action == "fresh")
        for job in selected_twins:
            if job.action == "fresh" and job is not trainer:
                job.action, job.twin, job.needs = "copy", trainer, [trainer.done_file]


def _finished_as_planned(job: Job) -> bool:
    """Whether a run folder has finished with its command's settings and epochs; a damaged one (it may lie
    outside --only) counts as not."""
    try:
        if folder_state(job.folder) != "skip":
            return False
        trained = trained_config(job.folder)
        return planned_epochs(trained) == planned_epochs(job.cfg) and not settings_changed(trained, job.cfg)
    except UserError:
        return False


def trained_config(folder: Path) -> dict:
    """A finished run's config.json, with semi_seed as the seed its labeled subset was drawn with where its
    summary names it (older code drew a random one for semi_seed -1)."""
    cfg = config_mod.read_json(folder / "config.json", "run config")
    drawn = config_mod.read_json(folder / "summary.json", "run summary").get("semi_seed")
    return cfg if drawn is None else {**cfg, "semi_seed": drawn}


def seeds_of(src: Source, argv: list[str]) -> range:
    """The seeds of a seeds source: from its preset's, as --seeds counts them."""
    first = planned_config(argv)["seed"]
    return range(first, first + src.seeds)


def select(jobs: list[Job], patterns: list[str]) -> list[Job]:
    """The jobs whose source path or job name matches one of the patterns (fnmatch; none: every job); each pattern
    must match."""
    if not patterns:
        return jobs
    for pattern in patterns:
        if not any(_matches(job, pattern) for job in jobs):
            raise UserError(f"--only {pattern!r} matches no source path (python -m funcs.reproduce --dry-run "
                            f"lists them)")
    return [job for job in jobs if any(_matches(job, p) for p in patterns)]


def _matches(job: Job, pattern: str) -> bool:
    return fnmatch.fnmatchcase(job.source.path, pattern) or fnmatch.fnmatchcase(job.name, pattern)


def producer(jobs: list[Job], need: Path) -> Job | None:
    """The run job of this plan that writes a needed file (into its own folder)."""
    return next((j for j in jobs if j.is_run and j.folder == need.parent), None)


def is_ready(need: Path) -> bool:
    """Whether a needed file is there: a phase-1 network (written whole, semi.save_pretrained), or the
    summary.json of a run that finished (not one that diverged)."""
    if need.name == "summary.json":
        return folder_state(need.parent) == "skip"
    return need.is_file()


def is_done(job: Job) -> bool:
    """Whether the job's output is there: a finished run's summary.json, or the extracted array."""
    return is_ready(job.done_file)


def has_work(job: Job) -> bool:
    """A run to start, continue or copy (a diverged one waits for a person), or an extraction whose file is not
    there."""
    return job.action in ("fresh", "resume", "copy") or (job.action == "extract" and not is_done(job))


def missing_module(job: Job) -> str | None:
    """The optional python module an extraction needs and this machine lacks, or None."""
    module = EXTRACT_MODULES.get(job.argv[4]) if job.action == "extract" else None
    return module if module and importlib.util.find_spec(module) is None else None


def diverged_text(folder: Path, module: str) -> str:
    """Why a run diverged (its summary.json) and the command that continues it at lower rates."""
    where = config_mod.read_json(folder / "summary.json", "run summary").get("diverged")
    where = where if isinstance(where, dict) else {}
    key = where.get("resume_key")
    how = f"; continue it with: python -m {module} --resume {shown(folder)} --set {key}=[...]" if key else ""
    return f"{where.get('reason') or 'diverged (its run.log says where)'}{how}"  # the reason says "diverged: ..."


# --- what is left, and how long it takes ------------------------------------------------------------

def read_rows(folder: Path) -> list[dict]:
    """The rows of a run folder's results.csv, one per epoch done ([] before the first)."""
    path = folder / "results.csv"
    return plots.read_csv(path)[1] if path.is_file() else []


def epochs_left(cfg: dict, rows: list[dict]) -> tuple[int, int] | None:
    """Epochs still to train: (phase 1, the rest); None for a read-out, which trains no network."""
    planned = planned_epochs(cfg)
    if planned is None:
        return None
    if cfg.get("action", "").startswith("semi_supervised") and not cfg.get("pretrained_path"):
        p1 = sum(r.get("phase") == "1" for r in rows)
        return max(0, cfg["pre_epochs"] - p1), max(0, planned - cfg["pre_epochs"] - (len(rows) - p1))
    return 0, max(0, planned - len(rows))


def _bench_files(threads: int, bench: Path) -> list[tuple[Path, dict]]:
    """bench/results/*.json, most fitting first: same threads, newest date (the name's prefix), then the day's
    files of the newest code on the usual machine (LESS_FITTING_MARKERS), then by name."""
    files = []
    for path in bench.glob("*.json"):
        try:
            files.append((path, json.loads(path.read_text())))
        except (OSError, ValueError):
            continue
    return sorted(files, reverse=True, key=lambda f: (f[1].get("machine", {}).get("threads") == threads,
                                                      f[0].name[:10],
                                                      not any(m in f[0].name for m in LESS_FITTING_MARKERS),
                                                      f[0].name))  # the last: the same choice on every machine


def estimate(cfg: dict, preset: str, left: tuple[int, int], threads: int,
             bench: Path = BENCH) -> tuple[float, Path] | None:
    """Seconds for the epochs left, from the first bench result of the same preset, shape and device kind (else,
    for a semi-supervised preset, of the same preset at another label count)."""
    gpu = cfg.get("device", -1) >= 0 and torch.cuda.is_available()  # the CLI falls back to the CPU
    rows = [(path, r) for path, data in _bench_files(threads, bench)
            if bool(data.get("machine", {}).get("gpu")) == gpu  # no GPU named (absent or null): a CPU's
            for r in data.get("results", []) if _same_shape(r, cfg)]
    for path, r in rows:  # the preset itself
        if r.get("preset") == preset and ("supervised_samples_per_second" in r or "seconds_per_epoch" in r):
            return _seconds(r, cfg, left), path
    for path, r in rows:  # else, for a semi-supervised preset, itself at another label count
        if _same_family(r.get("preset"), preset) and "supervised_samples_per_second" in r:
            return _seconds(r, cfg, left), path
    return None


def _seconds(r: dict, cfg: dict, left: tuple[int, int]) -> float:
    """Seconds for `left` (phase-1, other) epochs from a bench row: seconds_per_epoch, or a semi-supervised row
    of bench/semi_throughput.py (measured at the label count its preset names) scaled to the config's labels:
    a phase-1 epoch is one supervised pass over the labels and one test evaluation; a phase-2 epoch is the same
    with two evaluations (evaluation_seconds) and a pass over the unlabeled rest of the 60,000 images."""
    if "supervised_samples_per_second" not in r:
        return (left[0] + left[1]) * r["seconds_per_epoch"]
    labels, measured = cfg["train_label_number"], int(r["preset"].split("/")[1])
    supervised = labels / r["supervised_samples_per_second"]
    unlabeled = r["unsupervised_seconds"] + (measured - labels) / r["unsupervised_samples_per_second"]
    return left[0] * (supervised + r["evaluation_seconds"] / 2) + \
        left[1] * (unlabeled + supervised + r["evaluation_seconds"])


def _same_shape(r: dict, cfg: dict) -> bool:
    """A bench row of the default variant, measured with the config's layers and batches (where it says them;
    pre_batchSize: the supervised batch of a semi-supervised run)."""
    return r.get("variant", "default") == "default" and \
        all(r.get(key, cfg.get(key)) == cfg.get(key) for key in ("fcLayers", "batchSize", "pre_batchSize"))


def _same_family(measured: str | None, preset: str) -> bool:
    """semi_bp/600 and semi_bp/100: one semi-supervised preset at two label counts."""
    return measured is not None and measured.startswith("semi_") and measured.split("/")[0] == preset.split("/")[0]


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min" if seconds >= 60 else \
        f"{seconds:.0f} s"


# Keys that name this machine's paths and devices, or the schedule (said by "shortened"), not the algorithm.
_NOT_COMPARED = {"data_dir", "out_dir", "device", "threads", "pretrained_path", "trained_path", "epochs",
                 "pre_epochs"}


def settings_changed(have: dict, planned: dict) -> list[str]:
    """'readout_state free (now nudged)' for each key a finished folder was trained with that its command now
    sets otherwise: a default changed since, or a folder trained by hand. Keys a folder lacks (written before
    the key existed) and keys the command leaves to the run (None) cannot be compared and are left out; semi_seed
    is compared as the seed the labeled subset is drawn with (-1 and the run's seed draw the same subset)."""
    have, planned = _subset_seed_resolved(have), _subset_seed_resolved(planned)
    return [f"{key} {json.dumps(have[key])} (now {json.dumps(value)})" for key, value in planned.items()
            if key not in _NOT_COMPARED and key in have and value is not None and have[key] != value]


def _subset_seed_resolved(cfg: dict) -> dict:
    """The config with semi_seed as the seed its labeled subset is drawn with (-1 stands for the run's seed)."""
    if "semi_seed" in cfg and "seed" in cfg:
        return {**cfg, "semi_seed": config_mod.labeled_subset_seed(cfg["semi_seed"], cfg["seed"])}
    return cfg


def describe(job: Job, threads: int, bench: Path = BENCH, jobs: list[Job] | None = None) -> tuple[str, float | None]:
    """One dry-run line (action, name, epochs left, time estimate, what it waits for) and the estimate in seconds;
    jobs: the selected ones, to say when a needed file is written by none of them."""
    if job.action == "extract":
        module = missing_module(job)
        text = "finished" if is_done(job) else f"after {job.source.path}" + \
            ("" if is_ready(job.folder / "summary.json") else _will_come(job.folder / "summary.json", jobs) or
             " finishes") + (f"; needs the python module {module}, not installed here" if module else "")
        return f"extract  {job.name}  {text}", None
    if job.action == "diverged":
        return f"diverged {job.name}  {diverged_text(job.folder, job.argv[2])}", None
    if job.action == "skip":
        cfg = config_mod.read_json(job.folder / "config.json", "run config")
        planned, full = planned_epochs(cfg), job.source.full_epochs
        short = f" (shortened: {planned} of the paper's {full} epochs; another --root reruns it in full)" \
            if planned is not None and full is not None and planned < full else ""
        shortening = {key for key, _ in map(config_mod.parse_override, _sets(shlex.split(job.source.shorten)))}
        other = settings_changed(trained_config(job.folder), {k: v for k, v in job.cfg.items() if k not in shortening})
        other = f"; trained with {', '.join(other)}: another --root reruns it as the command is now" if other else ""
        return f"skip     {job.name}  finished{short}{other}", None
    if job.action == "copy":
        when = "now" if is_ready(job.needs[0]) else "when it finishes" + _will_come(job.needs[0], jobs)
        pid = live_process(job.twin.folder)
        return f"copy     {job.name}  the same run as {job.twin.name}: copied from it {when}" + \
            (f"; process {pid} is training it now" if pid else ""), None
    cfg = {**config_mod.read_json(job.folder / "config.json", "run config"), **moved_settings(job)} \
        if job.action == "resume" else job.cfg
    left = epochs_left(cfg, read_rows(job.folder) if job.action == "resume" else [])
    found = None
    if left is None:
        text = "read-out, no estimate"
    elif not any(left):  # an untrained control, or a run stopped in its read-out: the bench times no read-out
        text = f"0 of {planned_epochs(cfg)} epochs left: its read-out only, no estimate"
    else:
        found = estimate(cfg, _option(job.argv, "--json_path").removeprefix("configFile/"), left, threads, bench)
        text = f"{sum(left)} of {planned_epochs(cfg)} epochs left, " + \
            (f"~{_duration(found[0])} ({shown(found[1])})" if found else "no estimate")
    waits = [shown(n) + _will_come(n, jobs) for n in job.needs if not is_ready(n)]
    text += f"; waits for {', '.join(waits)}" if waits else ""
    pid = live_process(job.folder)
    text += f"; process {pid} is training it now" if pid else ""
    return f"{job.action:7}  {job.name}  {text}", found[0] if found else None


def _will_come(need: Path, jobs: list[Job] | None) -> str:
    """'' when a selected job will write the needed file, else why it will not start."""
    maker = producer(jobs, need) if jobs is not None else None
    if jobs is None or (maker is not None and maker.action != "diverged"):
        return ""
    why = "which diverged" if maker is not None else "which no selected job writes"
    return f" ({why}: it will not start" + ("; add that source to --only)" if maker is None else ")")


def dry_run(jobs: list[Job], threads: int, bench: Path = BENCH) -> str:
    """The dry-run's lines and a total: jobs by action, estimated hours of work (bench: where the JSONs are)."""
    lines, seconds = zip(*(describe(j, threads, bench, jobs) for j in jobs)) if jobs else ((), ())
    count = {a: sum(j.action == a for j in jobs) for a in ("fresh", "resume", "copy", "skip", "diverged", "extract")}
    count = {a: n for a, n in count.items() if n or a not in ("copy", "diverged")}  # said only where there is one
    known = [s for s in seconds if s is not None]
    work = f"~{_duration(sum(known))} of work for the {len(known)} with an estimate, at {threads} thread(s) each" \
        if known else "no estimates"
    return "\n".join([*lines, f"{len(jobs)} jobs: " + ", ".join(f"{n} {a}" for a, n in count.items()) + "; " + work])


# --- printing lines for a job array --------------------------------------------------------------------

def groups(jobs: list[Job]) -> list[list[Job]]:
    """Jobs tied by what they wait for, each group in plan order: one resumable line runs one group."""
    group = {id(j): [j] for j in jobs}
    for job in jobs:
        for other in [producer(jobs, n) for n in job.needs]:
            if other is not None and group[id(other)] is not group[id(job)]:
                merged = group[id(other)] + group[id(job)]
                for j in merged:
                    group[id(j)] = merged
    seen, out = set(), []
    for job in jobs:
        if id(group[id(job)]) not in seen:
            seen.add(id(group[id(job)]))
            out.append(sorted(group[id(job)], key=jobs.index))
    return out


def print_lines(jobs: list[Job], args) -> list[str]:
    """`python -m funcs.reproduce ... --only ...` per group with work left, naming its jobs with work or diverged
    (a finished run they wait for is read without being named); each line resumes on its own."""
    lines = []
    for group in groups(jobs):
        if not any(map(has_work, group)):
            continue
        names = dict.fromkeys(j.name if j.source.seeds > 1 else j.source.path for j in group
                              if has_work(j) or j.action == "diverged")  # a diverged one: said, with its command
        words = ["python", "-m", "funcs.reproduce", "--root", shown(Path(args.root).resolve()),
                 *[w for n in names for w in ("--only", n)], "--jobs", "1", "--threads", str(args.threads)]
        words += ["--device", str(args.device)] if args.device is not None else []
        words += ["--data_dir", args.data_dir] if args.data_dir is not None else []
        lines.append(shlex.join(words))
    return lines


# --- running ------------------------------------------------------------------------------------------

def say(message: str) -> None:
    """A progress line, with the time."""
    print(time.strftime("%H:%M:%S ") + message, flush=True)


def live_process(folder: Path) -> int | None:
    """The pid of another process training this folder (--out or --resume names it), read from /proc."""
    target = folder.resolve()
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            cwd = Path(os.readlink(proc / "cwd"))
        except OSError:
            continue
        words = [w.decode(errors="replace") for w in argv]
        for flag in ("--out", "--resume"):
            if flag in words[:-1] and (cwd / words[words.index(flag) + 1]).resolve() == target \
                    and int(proc.name) != os.getpid():
                return int(proc.name)
    return None


def clear_dead_start(folder: Path) -> None:
    """Remove a run folder killed before its first epoch ended (no checkpoint, no summary) so it starts again."""
    if not folder.exists():
        return
    if not folder.is_dir() or any(p.is_dir() for p in folder.iterdir()):
        raise UserError(f"{folder} is not a run folder killed before its first epoch; move it away")
    shutil.rmtree(folder)


def command_for(job: Job) -> list[str] | None:
    """What to run now, from the folder as it is now (another process may have gone on); None: finished."""
    if job.action == "extract":
        return None if is_done(job) else job.argv
    state = folder_state(job.folder)
    if state == "skip":
        return None
    if state == "diverged":  # since it was planned: a person continues it, never a dead start to clear
        raise UserError(diverged_text(job.folder, job.argv[2]))
    if state == "resume":
        moved = [w for k, v in moved_settings(job).items() for w in ("--set", f"{k}={json.dumps(v)}")]
        return [sys.executable, "-m", job.argv[2], "--resume", shown(job.folder), *moved]
    clear_dead_start(job.folder)
    return job.argv


def locked_log(job: Job):
    """The job's log, open for appending and locked (flock), or None when another process holds the lock.

    The child started with it as its output holds the lock until it ends (a lock belongs to the open file, which
    the child shares): a second funcs.reproduce on the same root, on this machine or on another sharing the
    folder, does not start, nor clear as a dead start, a folder being trained. Checked before anything is run."""
    job.log.parent.mkdir(parents=True, exist_ok=True)
    log = open(job.log, "a")
    if fcntl is None:
        return log
    try:
        fcntl.flock(log, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log.close()
        return None
    except OSError as err:  # a file system without locks (an NFS mount without its lock manager)
        say(f"note: {shown(job.log)} cannot be locked ({err.strerror or err}); another funcs.reproduce on this "
            f"root would not see that {job.name} is running")
    return log


def start(argv: list[str], log, threads: int) -> subprocess.Popen:
    """A job as a child process in its own session (so that only we interrupt it), output to its open log."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    log.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} funcs.reproduce: {shlex.join(argv)}\n")
    log.flush()
    return subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)


def last_line(path: Path) -> str:
    """The last non-empty line of a log: what a failed job said last."""
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()] if path.is_file() else []
    return lines[-1].strip() if lines else "(empty log)"


def epoch_text(job: Job) -> str:
    """'epoch 37 of 600', from the folder's config.json and its results.csv rows."""
    if job.action == "extract" or not (job.folder / "config.json").is_file():
        return "its start"
    planned = planned_epochs(config_mod.read_json(job.folder / "config.json", "run config"))
    return f"epoch {len(read_rows(job.folder))} of {planned}" if planned is not None else "reading out"


def finished_text(job: Job) -> str:
    """What a finished job made: its accuracies (%) or a regression's cost, or the array file it wrote."""
    if job.action == "extract":
        return f"wrote {shown(job.done_file)}"
    summary = config_mod.read_json(job.done_file, "run summary")
    numbers, what = (summary["cost"], "cost") if summary.get("cost") else \
        (summary.get("accuracy_percent", {}), "accuracy (%)")
    return f"{what} " + ", ".join(f"{k} {v}" for k, v in numbers.items())


def summarize_seeds(src: Source, root: Path) -> None:
    """Write <path>/seeds_summary.json and its curves once every planned seed has finished, as `--seeds` does."""
    folder = root / src.path
    done = [folder / f"S-{seed}" for seed in seeds_of(src, _words(src.command.replace(ROOT, shown(root))))]
    if not all(folder_state(d) == "skip" for d in done):
        return
    summaries = [config_mod.read_json(d / "summary.json", "run summary") for d in done]
    stats_path = folder / "seeds_summary.json"
    seeds = [s["seed"] for s in summaries]
    if stats_path.is_file() and config_mod.read_json(stats_path, "seeds summary").get("seeds") == seeds:
        return
    stats = results.seeds_summary(summaries)
    results.write_json(stats_path, stats)
    plots.plot_seeds(folder, done)
    say(f"{src.path}: over seeds {stats['seeds']}: " +
        ", ".join(f"{k} {stats['mean'][k]} ({stats['std'][k]})" for k in stats["mean"]))


def execute(jobs: list[Job], n_jobs: int, threads: int, root: Path, stop: Callable[[], bool]) -> int:
    """Run the jobs, n_jobs at a time, each once what it needs is there, until done or `stop()`; the exit code."""
    pending = [j for j in jobs if has_work(j)]
    running: dict[int, tuple[Job, subprocess.Popen, float, int]] = {}  # pid: (job, process, start, its rows then)
    ended: list[tuple[Job, str, str]] = [(j, "failed", diverged_text(j.folder, j.argv[2]))
                                         for j in jobs if j.action == "diverged"]  # (job, "failed" or "left", why)
    for src in seeds_sources(jobs):
        summarize_seeds(src, root)
    last_progress, interrupted = time.monotonic(), False
    try:
        while (pending or running) and not stop():
            for job in [j for j in pending if can_start(j, running)][:n_jobs - len(running)]:
                pending.remove(job)
                ended += try_start(job, running, threads)
                if job.action == "copy" and is_done(job):  # copied at once, without a process to reap
                    summarize_after(job, root, jobs)
            ended += reap(running, root, jobs)
            stuck = [j for j in pending if waits_in_vain(j, jobs, pending, running)]
            if not running and not stuck and pending and not any(all(map(is_ready, j.needs)) for j in pending):
                stuck = pending  # each waits for another that waits (a cycle): none will start
            ended += [blocked(j, jobs, ended) for j in stuck]
            pending = [j for j in pending if all(j is not k for k in stuck)]
            if time.monotonic() - last_progress >= PROGRESS_S:
                last_progress = time.monotonic()
                for job, *_ in running.values():
                    say(f"{job.name}: {epoch_text(job)}")
            time.sleep(POLL_S if running or pending else 0)
    except KeyboardInterrupt:  # our children run in their own sessions: interrupt them ourselves
        interrupted = True
    except BaseException:  # a run's file damaged under us, or a bug: stop the running jobs at a checkpoint first
        interrupt(running, "stopped")
        raise
    reason = "interrupted" if interrupted else "time is up"
    ended += interrupt(running, reason) + [(j, "left", f"not started: {reason}") for j in pending]
    finished = sum(1 for j in jobs if is_done(j))
    say(f"{finished} of {len(jobs)} jobs finished, {sum(o == 'failed' for _, o, _ in ended)} failed, "
        f"{sum(o == 'left' for _, o, _ in ended)} left")
    for job, outcome, why in ended:
        say(f"  {job.name}: {why}")
    return 130 if interrupted else 1 if any(o == "failed" for _, o, _ in ended) else 3 if ended else 0


def can_start(job: Job, running: dict) -> bool:
    """Whether what a job needs is there; a copy waits, besides, until its twin's process has ended (it draws its
    curves and ends its run.log after writing summary.json)."""
    return all(is_ready(n) for n in job.needs) and all(j is not job.twin for j, *_ in running.values())


def seeds_sources(jobs: list[Job]) -> list[Source]:
    """The sources of the jobs that are seeds sources, once each."""
    return list({j.source.path: j.source for j in jobs if j.source.seeds > 1}.values())


def waits_in_vain(job: Job, jobs: list[Job], pending: list[Job], running: dict) -> bool:
    """Whether a file the job needs is missing and no job waiting or running here will write it."""
    busy = {id(j) for j in pending} | {id(j) for j, *_ in running.values()}
    return any(not is_ready(n) and id(producer(jobs, n)) not in busy for n in job.needs)


def try_start(job: Job, running: dict, threads: int) -> list[tuple[Job, str, str]]:
    """Start a job; [] when started (or found finished), else [(job, "failed" or "left", why)]."""
    module = missing_module(job)
    if module:
        return [(job, "left", f"not run: needs the python module {module}, not installed here")]
    pid = live_process(job.folder) if job.is_run else None
    if pid is not None:
        return [(job, "left", f"not started: process {pid} is training {shown(job.folder)}")]
    log = locked_log(job)
    if log is None:
        return [(job, "left", f"not started: another funcs.reproduce is running it ({shown(job.log)} is locked)")]
    with log:
        try:
            argv = command_for(job)
            copied = argv is not None and job.twin is not None and "--resume" not in argv
            if copied:  # a fresh folder whose twin has finished: that folder is this run
                pid = live_process(job.twin.folder)
                if pid is not None:  # another process still ends it (curves, run.log)
                    return [(job, "left", f"not copied: process {pid} is still ending {shown(job.twin.folder)}")]
                copy_run(job.twin.folder, job.folder, log)
        except UserError as err:
            return [(job, "failed", str(err))]
        if copied:
            say(f"{job.name}: copied from {job.twin.name} (the same run), {finished_text(job)}")
            return []
        if argv is None:
            say(f"{job.name}: finished already")
            return []
        rows = len(read_rows(job.folder))  # before the child starts: a damaged file stops nothing half-started
        proc = start(argv, log, threads)
    running[proc.pid] = (job, proc, time.monotonic(), rows)
    how = f"resumed ({epoch_text(job)} done)" if "--resume" in argv else "started"
    say(f"{job.name}: {how}, log {shown(job.log)}")
    return []


def copy_run(source: Path, folder: Path, log) -> None:
    """A finished run folder copied whole into an absent one, through a temporary sibling (a stop leaves no
    half-copied run folder; the job's lock makes the name its own, and the next try clears a leftover). The
    copy's run.log and the job's log say where it came from; its config.json and summary.json still name the
    folder it was trained in."""
    tmp = folder.with_name(f".{folder.name}.copying")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        shutil.copytree(source, tmp)
        note = f"{time.strftime('%Y-%m-%d %H:%M:%S')} funcs.reproduce: copied from {shown(source)}, the same run " \
               f"(rule, config, seed and labeled subset)\n"
        with open(tmp / "run.log", "a") as f:
            f.write(note)
        tmp.rename(folder)
    except BaseException as err:  # a Ctrl-C too: nothing half-copied stays
        shutil.rmtree(tmp, ignore_errors=True)
        if not isinstance(err, OSError):
            raise
        why = err.args[0][0][2] if isinstance(err, shutil.Error) else err.strerror or err  # the first file's
        raise UserError(f"cannot copy {shown(source)} into {shown(folder)}: {why}") from None
    log.write(f"=== {note}")
    log.flush()


def summarize_after(job: Job, root: Path, jobs: list[Job]) -> None:
    """The seeds summary a finished run completes: of its own source, or of a seeds source naming its folder."""
    for src in seeds_sources(jobs):
        if job.folder.parent == root / src.path:
            summarize_seeds(src, root)


def reap(running: dict, root: Path, jobs: list[Job]) -> list[tuple[Job, str, str]]:
    """Jobs that have ended: said finished (with their accuracy; the seeds summary of a seeds root it completes)
    or failed (exit code, last line of the log)."""
    out = []
    for pid, (job, proc, t0, _) in list(running.items()):
        if proc.poll() is None:
            continue
        del running[pid]
        if proc.returncode == 0 and is_done(job):
            say(f"{job.name}: finished in {_duration(time.monotonic() - t0)}, {finished_text(job)}")
            summarize_after(job, root, jobs)
        else:
            out.append((job, "failed", f"failed (exit {proc.returncode}): {last_line(job.log)}"))
            say(f"{job.name}: {out[-1][2]}")
    return out


def interrupt(running: dict, reason: str) -> list[tuple[Job, str, str]]:
    """SIGINT every running job that has finished an epoch since it started (it stops, keeping its last epoch's
    checkpoint, and says so in its log), kill the others (a kill loses at most the epoch under way; the next call
    resumes the folder, or starts it again), wait GRACE_S, then kill what is left; a second Ctrl-C or SIGTERM
    kills at once.

    Why not SIGINT at once: a Python process interrupted while it imports can swallow the KeyboardInterrupt in
    a half-imported module (seen: numpy inside torch's import) and train on to a traceback at its end."""
    try:
        for job, proc, _, rows_at_start in running.values():
            if len(read_rows(job.folder)) > rows_at_start:
                proc.send_signal(signal.SIGINT)
            else:
                proc.kill()
        end = time.monotonic() + GRACE_S
        for job, proc, *_ in running.values():
            try:
                proc.wait(timeout=max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    except KeyboardInterrupt:  # a second Ctrl-C or SIGTERM: stop waiting (it gave a traceback); a kill loses an epoch
        for job, proc, *_ in running.values():
            proc.kill()
            proc.wait()
    return [(job, "left", f"{reason}: stopped at {epoch_text(job)}; the same command resumes it")
            for job, *_ in running.values()]


def blocked(job: Job, jobs: list[Job], ended: list[tuple[Job, str, str]]) -> tuple[Job, str, str]:
    """A job that cannot start: the file it needs, and why that file is not coming."""
    need = next(n for n in job.needs if not is_ready(n))
    maker = producer(jobs, need)
    if maker is None:
        return job, "failed", f"not started: needs {shown(need)}, which no selected job writes (add it to --only)"
    outcome = next((o for j, o, _ in ended if j is maker), "failed")  # a maker left for later: so is this one
    return job, outcome, f"not started: needs {shown(need)}, not written by {maker.name}"


# --- the command line ---------------------------------------------------------------------------------


def parse_args(argv):
    """The command line; --help shows the module's docstring."""
    p = OneLineParser(prog="python -m funcs.reproduce", description=__doc__.split("\n")[0],
                formatter_class=argparse.RawDescriptionHelpFormatter,
                epilog="\n".join(__doc__.split("\n")[2:]))
    p.add_argument("--root", default="simuResults", help="results root; each run goes to ROOT/<source path>")
    p.add_argument("--only", action="append", default=[], metavar="PATTERN",
                   help="only sources whose path (or job name, e.g. PATH/S-2) matches (fnmatch; repeatable)")
    p.add_argument("--jobs", type=int, default=1, help="jobs at a time (default 1)")
    p.add_argument("--threads", type=int, default=1, help="threads per job (OMP_NUM_THREADS, MKL_NUM_THREADS)")
    p.add_argument("--device", type=int, help="appends --set device=D to fresh runs, and to resumed ones saved "
                   "with another device (-1: the CPU)")
    p.add_argument("--data_dir", help="appends --set data_dir=DIR to fresh runs, to resumed ones saved with "
                   "another data_dir, and to extractions")
    p.add_argument("--deadline", type=float, metavar="SECONDS",
                   help="after this long, start nothing more and interrupt the running jobs (they resume later)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--dry-run", action="store_true", help="say what would run, with time estimates, and exit")
    what.add_argument("--print", action="store_true", help="print one resumable shell command per job group")
    return p.parse_args(argv)


def moved_settings(job: Job) -> dict:
    """The machine's keys asked for (--device, --data_dir) where the run's saved config has others: a run resumed on
    another machine than the one it started on takes this one's (`--set` on its --resume command)."""
    saved = config_mod.read_json(job.folder / "config.json", "run config")
    asked = dict(map(config_mod.parse_override, _sets(job.argv)))  # the last --set of a key counts, as in a run
    return {k: v for k, v in asked.items() if k in config_mod.MACHINE_KEYS and saved.get(k) != v}


def check_args(args) -> Path:
    """The results root, absolute; UserError on bad input."""
    if args.jobs < 1 or args.threads < 1:
        raise UserError(f"--jobs and --threads must be at least 1, got {args.jobs} and {args.threads}")
    if args.deadline is not None and not args.deadline > 0:  # NaN too
        raise UserError(f"--deadline must be a positive number of seconds, got {args.deadline:g}")
    if not args.root.strip():
        raise UserError("--root: an empty path; give the results root")
    root = Path(args.root).resolve()
    if root.exists() and not root.is_dir():
        raise UserError(f"--root {args.root}: exists and is not a folder")
    return root


@one_line_errors
def main(argv=None, sources: list[Source] | None = None, stop: Callable[[], bool] | None = None) -> int:
    """sources: in place of the registry's (tests); stop: in place of --deadline's clock (tests)."""
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as done:
        return done.code
    root = check_args(args)
    jobs = plan(registry_sources() if sources is None else sources, root, args.device, args.data_dir, args.only)
    if args.dry_run:
        print(dry_run(jobs, args.threads))
        return 0
    if args.print:
        print("\n".join(print_lines(jobs, args)))
        return 0
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"--root {args.root}: cannot be created ({err.strerror or err})")
    stop_signals_interrupt()  # kill (SIGTERM) or Ctrl-C: the running jobs stop at a checkpoint
    if stop is None:
        end = time.monotonic() + (args.deadline if args.deadline is not None else float("inf"))
        stop = lambda: time.monotonic() >= end  # noqa: E731
    todo, diverged = sum(map(has_work, jobs)), sum(j.action == "diverged" for j in jobs)
    say(f"reproduce into {shown(root)}: {todo} jobs to run, {len(jobs) - todo - diverged} finished" +
        (f", {diverged} diverged" if diverged else "") + "; "
        f"{args.jobs} at a time, {args.threads} thread(s) each")
    return execute(jobs, args.jobs, args.threads, root, stop)


if __name__ == "__main__":
    sys.exit(main())
