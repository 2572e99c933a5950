"""funcs.reproduce: the job plan on fake folders, --print, --dry-run estimates, bad input, and real tiny jobs
through the real CLI (one interrupted and continued by the next call, a read-out waiting for its trained run).

Sources are passed to `reproduce.main` as a parameter, in place of the registry's; every command is a
quickstart network on an MNIST subset (scikit-learn's digits where MNIST cannot be had, tests/conftest.py).
"""
from __future__ import annotations

import csv
import dataclasses
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from funcs import figures_registry, records, reproduce
from funcs.errors import UserError
from funcs.figures_registry import Source
from tests.conftest import DATA_DIR

REPO = Path(__file__).resolve().parents[1]
EPOCHS = 20  # of the interrupted run: long enough (seconds) that the interruption lands before its end


def tiny(dataset: str, epochs: int, *more: str) -> str:
    """A quickstart command on a small subset (0.1 to 0.2 s per epoch on a laptop CPU), one thread, CPU."""
    data = ["dataset=digits", "fcLayers=[64,500]"] if dataset == "digits" else \
        [f"data_dir={DATA_DIR}", "train_size=2000", "test_size=200"]
    sets = [*data, f"epochs={epochs}", "class_epoch=0", "device=-1", *more]
    return "python -m bp.main --json_path configFile/quickstart" + "".join(f" --set {s}" for s in sets)


def write(folder: Path, files: dict[str, str]) -> Path:
    """A fake run folder: file name -> text."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def rows_csv(n: int) -> str:
    return "epoch,loss\n" + "".join(f"{i},0.1\n" for i in range(1, n + 1))


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


QUICK = "python -m bp.main --json_path configFile/quickstart"
SEMI = "python -m bp.main --json_path configFile/semi_bp/100"


# --- the plan ------------------------------------------------------------------------------------------

def test_plan_skips_finished_resumes_checkpointed_restarts_dead_and_makes_the_wta_wait_for_its_base(tmp_path):
    root = tmp_path / "r"
    write(root / "done", {"config.json": "{}", "summary.json": "{}"})
    write(root / "half", {"config.json": "{}", "checkpoint.pt": "", "results.csv": rows_csv(2)})
    write(root / "dead", {"config.json": "{}", "results.csv": rows_csv(1)})  # killed before its first checkpoint
    (root / "empty").mkdir(parents=True)
    sources = [Source(name, f"{QUICK} --set seed={i}", name)  # five runs, not five folders of one
               for i, name in enumerate(("done", "half", "dead", "empty", "new"), 1)]
    sources += [Source("semi_wta", SEMI + " --set pretrained_path={root}/semi", "wta"),
                Source("semi", SEMI, "base"),
                Source("readout", QUICK + " --trained_path {root}/done", "read-out")]
    jobs = {j.name: j for j in reproduce.plan(sources, root)}

    assert {n: j.action for n, j in jobs.items()} == {"done": "skip", "half": "resume", "dead": "fresh",
                                                      "empty": "fresh", "new": "fresh", "semi_wta": "fresh",
                                                      "semi": "fresh", "readout": "fresh"}
    assert jobs["semi_wta"].needs == [root / "semi" / "pretrained.pt"]
    assert reproduce.producer(list(jobs.values()), jobs["semi_wta"].needs[0]) is jobs["semi"]
    assert jobs["readout"].needs == [root / "done" / "summary.json"] and reproduce.is_ready(jobs["readout"].needs[0])
    # what each runs when started: --resume for the checkpointed one; the dead one's folder is removed first
    assert reproduce.command_for(jobs["half"])[1:] == ["-m", "bp.main", "--resume", str(root / "half")]
    assert reproduce.command_for(jobs["dead"])[-2:] == ["--out", str(root / "dead")]
    assert not (root / "dead").exists()
    assert reproduce.command_for(jobs["done"]) is None


def test_a_run_resumed_on_another_machine_takes_its_device_and_data_dir_where_they_differ(tmp_path):
    root = tmp_path / "r"
    saved = json.dumps({"device": 0, "data_dir": ".gpu_data", "seed": 1})  # started on a GPU machine
    for name in ("moved", "same"):
        write(root / name, {"config.json": saved, "checkpoint.pt": "", "results.csv": rows_csv(2)})
    sources = [Source(name, QUICK, name) for name in ("moved", "same")]
    moved = {j.name: j for j in reproduce.plan(sources, root, device=-1, data_dir="/data")}["moved"]
    assert reproduce.command_for(moved)[3:] == ["--resume", str(root / "moved"), "--set", "device=-1",
                                                "--set", 'data_dir="/data"']
    same = {j.name: j for j in reproduce.plan(sources, root, device=0, data_dir=".gpu_data")}["same"]
    assert reproduce.command_for(same)[3:] == ["--resume", str(root / "same")]  # nothing asked that differs


def test_a_run_folder_named_by_two_sources_is_planned_once_whichever_comes_first(tmp_path):
    one_seed, seeds = Source("s/S-1", QUICK, "figure"), Source("s", QUICK, "table", seeds=2)
    for sources in ([one_seed, seeds], [seeds, one_seed], [seeds, seeds]):
        assert [j.name for j in reproduce.plan(sources, tmp_path)] == ["s/S-1", "s/S-2"]


def test_registry_plan_puts_table5_first_then_the_seeds_then_every_other_folder_once_then_our_tables(tmp_path):
    jobs = reproduce.plan(reproduce.registry_sources(), tmp_path)
    runs = [j.name for j in jobs if j.is_run]
    table5 = [f"semi_{r}_{n}" for r in ("bp", "ep") for n in (100, 600, 1000, 3000)]
    seeds = [f"unsupervised_{net}_seeds/S-{s}" for net, n in (("bp_1layer", 5), ("ep_1layer", 5), ("bp_2layer", 3),
                                                               ("hebb_softhebb", 3), ("hebb_hard_wta", 3),
                                                               ("hebb_krotov", 3))
             for s in range(1, n + 1)] + [f"{name}_seeds/S-{s}" for name in table5 for s in range(1, 6)]
    assert runs[:8] == table5 and runs[8:8 + len(seeds)] == seeds
    single = {s.path for e in figures_registry.REGISTRY.values() for s in e.sources.values() if s.seeds == 1}
    registry = single | {f"{s.path}/S-{k}" for e in figures_registry.REGISTRY.values() for s in e.sources.values()
                         if s.seeds > 1 for k in range(1, s.seeds + 1)}
    # each folder once: a figure's single seed of a seeds root (Figure 11 of the rules) is that seed's job
    rest = sorted(registry - set(table5) - set(seeds))
    assert {f"unsupervised_bp_cnn_mnist/S-{k}" for k in range(1, 6)} <= set(rest)  # 5 seeds, each a GPU job
    assert sorted(runs[8 + len(seeds):8 + len(seeds) + len(rest)]) == rest and len(set(runs)) == len(runs)
    # then our own tables' folders, those the paper's figures and tables do not already run
    ours = {f"{s.path}/S-{k}" if s.seeds > 1 else s.path for e in figures_registry.OTHER_TABLES.values()
            for s in e.sources.values() for k in range(1, s.seeds + 1)}
    assert sorted(runs[8 + len(seeds) + len(rest):]) == sorted(ours - registry)
    assert "unsupervised_hebb_krotov_fashionMnist" in ours and "small_world/wine_8layer_small_world/S-3" in ours
    assert single & set(seeds) == {"unsupervised_hebb_softhebb_seeds/S-2", "unsupervised_hebb_hard_wta_seeds/S-2",
                                     "unsupervised_hebb_krotov_seeds/S-1"}
    # every seed of a seeds root runs the base command with its seed, into <path>/S-<seed>
    s3 = next(j for j in jobs if j.name == "unsupervised_bp_1layer_seeds/S-3")
    assert s3.argv[-4:] == ["--set", "seed=3", "--out", str(tmp_path / "unsupervised_bp_1layer_seeds/S-3")]
    assert s3.cfg["seed"] == 3 and s3.cfg["epochs"] == 200
    # a seed of Table 5 draws its own labeled subset: the preset's semi_seed -1 takes the seed
    semi = next(j for j in jobs if j.name == "semi_ep_600_seeds/S-4")
    assert semi.argv[-4:] == ["--set", "seed=4", "--out", str(tmp_path / "semi_ep_600_seeds/S-4")]
    assert (semi.cfg["seed"], semi.cfg["semi_seed"], semi.cfg["epochs"]) == (4, -1, 200)
    # folders of one run are trained once: Table 5's seed-1 runs and Table 3's singles are their seeds' S-1
    copies = {j.name: j.twin.name for j in jobs if j.action == "copy"}
    assert copies == {**{f"{name}_seeds/S-1": name for name in table5},
                      **{f"unsupervised_{net}": f"unsupervised_{net}_seeds/S-1"
                         for net in ("bp_1layer", "ep_1layer", "bp_2layer")}}


def test_a_fresh_folder_of_a_run_planned_elsewhere_copies_its_finished_twin_else_the_twin_that_trains(tmp_path):
    seeds = Source("seeds", QUICK, "table", seeds=2)
    single, readout = Source("single", QUICK, "figure"), Source("readout", f"{QUICK} --trained_path {{root}}/x", "r")
    sources = [single, Source("other", f"{QUICK} --set lr=[0.5]", "figure"), readout, seeds]
    jobs = {j.name: j for j in reproduce.plan(sources, tmp_path)}
    # seed 1 of the seeds root is the single run (the preset's seed is 1); another rate or a read-out is another run
    assert {n: j.action for n, j in jobs.items()} == {"single": "fresh", "other": "fresh", "readout": "fresh",
                                                      "seeds/S-1": "copy", "seeds/S-2": "fresh"}
    assert jobs["seeds/S-1"].twin is jobs["single"] and jobs["seeds/S-1"].needs == [tmp_path / "single/summary.json"]
    dry = reproduce.dry_run(list(jobs.values()), threads=1)
    assert "copy     seeds/S-1  the same run as single: copied from it when it finishes\n" in dry
    assert "5 jobs: 4 fresh, 0 resume, 1 copy, 0 skip, 0 extract" in dry
    # the twin with epochs done trains, whichever is planned first
    write(tmp_path / "seeds/S-1", {"config.json": "{}", "checkpoint.pt": "", "results.csv": rows_csv(2)})
    jobs = {j.name: j for j in reproduce.plan(sources, tmp_path)}
    assert (jobs["single"].action, jobs["single"].twin) == ("copy", jobs["seeds/S-1"])
    # a finished twin outside --only is copied; not one shortened, trained with other settings, or damaged
    shutil.rmtree(tmp_path / "seeds/S-1")
    planned = {k: v for k, v in jobs["single"].cfg.items() if v is not None}
    for trained, copied in ((planned, True), ({**planned, "epochs": 1}, False), ({**planned, "lr": [0.5]}, False)):
        write(tmp_path / "single", {"config.json": json.dumps(trained), "summary.json": "{}"})
        job = reproduce.plan(sources, tmp_path, patterns=["seeds/S-1"])[0]
        assert job.action == ("copy" if copied else "fresh"), trained
    write(tmp_path / "single", {"config.json": json.dumps(planned), "summary.json": "{}"})
    job = reproduce.plan(sources, tmp_path, patterns=["seeds/S-1"])[0]
    assert job.action == "copy" and reproduce.is_ready(job.needs[0])
    assert "copy     seeds/S-1  the same run as single: copied from it now" in reproduce.dry_run([job], threads=1)
    (tmp_path / "single/summary.json").write_text("{")
    assert reproduce.plan(sources, tmp_path, patterns=["seeds/S-1"])[0].action == "fresh"


def test_a_copy_stopped_midway_leaves_no_half_copied_folder(tmp_path, monkeypatch):
    write(tmp_path / "done", {"summary.json": "{}", "run.log": "trained\n"})

    def stopped(source, target):  # Ctrl-C once part of the folder is copied
        write(target, {"summary.json": "{}"})
        raise KeyboardInterrupt
    monkeypatch.setattr(shutil, "copytree", stopped)
    with open(tmp_path / "copy.log", "w") as log, pytest.raises(KeyboardInterrupt):
        reproduce.copy_run(tmp_path / "done", tmp_path / "copy", log)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.log", "done"]


def test_a_path_planned_both_as_one_run_and_as_a_seeds_root_is_refused(tmp_path):
    """As CNN MNIST would be if Figure 2 named its folder as one run and Table 4 as two seeds."""
    sources = [Source("cnn", QUICK, "figure"), Source("cnn", QUICK, "table", seeds=2)]
    with pytest.raises(UserError, match=f"plan {tmp_path}/cnn as one run and {tmp_path}/cnn/S-1 inside it"):
        reproduce.plan(sources, tmp_path)


def test_table3_reads_the_seeds_root_where_it_exists_else_the_single_run(tmp_path):
    root = tmp_path / "r"
    single = write(root / "unsupervised_bp_1layer", {
        "config.json": '{"epochs": 200}',
        "summary.json": '{"seed": 1, "accuracy_percent": {"direct_association_mean": 95.0}}'})
    src = figures_registry.REGISTRY["table3"].sources["bp_1layer"]
    assert records.find(root, src).folder == single
    for seed, acc in ((1, 95.5), (2, 96.0)):
        write(root / f"{src.path}/S-{seed}", {
            "config.json": '{"epochs": 200}', "results.csv": rows_csv(200),
            "summary.json": json.dumps({"seed": seed, "accuracy_percent": {"direct_association_mean": acc}})})
    rec = records.find(root, src)
    assert rec.folder == root / src.path and rec.seeds == [1, 2]
    assert rec.value("direct_association_mean") == pytest.approx(np.mean([95.5, 96.0]))


def test_print_gives_one_resumable_line_per_group_with_work_left(tmp_path, capsys):
    root = tmp_path / "r"
    write(root / "done", {"config.json": "{}", "summary.json": "{}"})
    sources = [Source("semi", SEMI, "base"), Source("seeds", QUICK, "seeds", seeds=2), Source("done", QUICK, "x"),
               Source("semi_wta", SEMI + " --set pretrained_path={root}/semi", "wta")]
    assert reproduce.main(["--root", str(root), "--print", "--threads", "2"], sources) == 0
    lines = capsys.readouterr().out.splitlines()
    tail = ["--jobs", "1", "--threads", "2"]
    head = ["python", "-m", "funcs.reproduce", "--root", str(root)]
    assert [shlex.split(line) for line in lines] == [[*head, "--only", "semi", "--only", "semi_wta", *tail],
                                                    [*head, "--only", "seeds/S-1", *tail],
                                                    [*head, "--only", "seeds/S-2", *tail]]
    for line, names in zip(lines, (["semi", "semi_wta"], ["seeds/S-1"], ["seeds/S-2"])):
        assert reproduce.main([*shlex.split(line)[3:], "--dry-run"], sources) == 0
        assert [out.split()[1] for out in capsys.readouterr().out.splitlines()[:-1]] == names


def test_dry_run_names_the_settings_a_finished_folder_was_trained_with_that_the_command_now_changes(tmp_path):
    """A default changed since a folder was trained (EP's readout_state): the folder still counts as finished, and
    the dry run says which keys differ; this machine's paths, keys the folder predates and the CPU shortening's
    keys do not count."""
    ep_semi = "python -m ep.main --json_path configFile/semi_ep/100"
    planned = reproduce.planned_config(reproduce._words(ep_semi))
    assert planned["readout_state"] == "nudged"  # the rule's own key, at its default
    old = {**planned, "readout_state": "free", "data_dir": "/elsewhere", "epochs": 10, "class_epoch": 0}
    del old["semi_seed"]  # written before the key existed: not comparable
    write(tmp_path / "old", {"config.json": json.dumps(old), "summary.json": "{}"})
    write(tmp_path / "same", {"config.json": json.dumps({**planned, "epochs": 10, "class_epoch": 0}),
                              "summary.json": "{}"})
    sources = [Source(name, ep_semi, name, shorten="--set epochs=10 --set class_epoch=0") for name in ("old", "same")]
    lines = {j.name: reproduce.describe(j, 1)[0] for j in reproduce.plan(sources, tmp_path)}
    assert lines["old"].endswith('; trained with readout_state "free" (now "nudged"): another --root reruns it as '
                                 'the command is now')
    assert lines["same"] == "skip     same  finished"


def test_dry_run_compares_semi_seed_as_the_labeled_subset_it_draws(tmp_path):
    """The presets' semi_seed -1 draws with the run's seed: a folder trained with semi_seed 1 and seed 1 drew the
    same subset (Table 5's single runs as seed 1 of their seeds roots); one of older code, whose -1 drew a random
    seed, is compared by the seed its summary recorded."""
    ep_semi = "python -m ep.main --json_path configFile/semi_ep/100"
    planned = reproduce.planned_config(reproduce._words(ep_semi))
    assert (planned["semi_seed"], planned["seed"]) == (-1, 1)
    for name, semi_seed, drawn in (("same_draw", 1, 1), ("older_random", -1, 12345), ("other", 2, 2)):
        write(tmp_path / name, {"config.json": json.dumps({**planned, "semi_seed": semi_seed}),
                                "summary.json": json.dumps({"semi_seed": drawn})})
    sources = [Source(name, ep_semi, name) for name in ("same_draw", "older_random", "other")]
    lines = {j.name: reproduce.describe(j, 1)[0] for j in reproduce.plan(sources, tmp_path)}
    assert lines["same_draw"] == "skip     same_draw  finished"
    assert lines["older_random"].endswith("; trained with semi_seed 12345 (now 1): another --root reruns it as the "
                                          "command is now")
    assert lines["other"].endswith("; trained with semi_seed 2 (now 1): another --root reruns it as the command is "
                                   "now")


def test_dry_run_estimates_epochs_left_from_the_newest_matching_bench_json(tmp_path):
    root, bench = tmp_path / "r", tmp_path / "bench"
    saved = {"action": "unsupervised_bp", "epochs": 10, "fcLayers": [784, 500], "batchSize": 16, "device": -1}
    write(root / "half", {"config.json": json.dumps(saved), "checkpoint.pt": "", "results.csv": rows_csv(4)})
    entry = {"preset": "quickstart", "fcLayers": [784, 500], "batchSize": 16}
    semi = {"preset": "semi_bp/100", "fcLayers": [784, 5000, 10], "pre_batchSize": 32,
            "supervised_samples_per_second": 200.0,
            "unsupervised_samples_per_second": 3000.0, "unsupervised_seconds": 19.0, "evaluation_seconds": 3.0}
    # A GPU's numbers never estimate a CPU run; "gpu": null (as bench/hebb_throughput.py writes) is a CPU's.
    for name, threads, gpu, seconds in (("2026-01-01_old.json", 1, None, 99.0), ("2026-02-01_new.json", 1, None, 12.5),
                                        ("2026-03-01_two-threads.json", 2, None, 7.0),
                                        ("2026-04-01_gpu.json", 1, "NVIDIA H200", 0.1),
                                        ("2026-02-01_new_before-speedup.json", 1, None, 50.0),
                                        ("2026-02-01_other-machine.json", 1, None, 30.0)):
        machine = {"threads": threads, **({"gpu": gpu} if name != "2026-01-01_old.json" else {})}
        write(bench, {name: json.dumps({"machine": machine,
                                        "results": [{**entry, "seconds_per_epoch": seconds}, semi]})})
    # another label count of the same rule's preset: its supervised pass scaled (a 600-label row here)
    other_count = {"preset": "semi_bp/600", "fcLayers": [784, 5000, 10], "pre_batchSize": 32,
                   "supervised_samples_per_second": 1200.0,
                   "unsupervised_samples_per_second": 2000.0, "unsupervised_seconds": 18.0, "evaluation_seconds": 3.0}
    write(bench, {"2026-02-01_semi600.json": json.dumps({"machine": {"threads": 1, "gpu": None}, "results": [
        {**other_count, "preset": "semi_ep/600", "unsupervised_seconds": 99.0}, other_count]})})
    sources = [Source("half", QUICK + " --set epochs=10", "x"),
               Source("wide", QUICK + " --set fcLayers=[784,300]", "x"), Source("semi", SEMI, "x"),
               Source("semi_1000", SEMI.replace("semi_bp/100", "semi_bp/1000"), "x"),
               Source("semi_batch", SEMI + " --set pre_batchSize=8", "x"),  # measured with another batch
               Source("untrained", QUICK + " --set epochs=0", "x")]  # a control: only its read-out is left
    jobs = reproduce.plan(sources, root)
    lines = {j.name: reproduce.describe(j, threads=1, bench=bench) for j in jobs}
    assert lines["half"][1] == 6 * 12.5  # 10 epochs, 4 done
    assert lines["half"][0].startswith("resume   half  6 of 10 epochs left, ~1 min (")
    assert lines["half"][0].endswith("2026-02-01_new.json)")
    assert lines["wide"] == ("fresh    wide  3 of 3 epochs left, no estimate", None)
    cfg = json.loads((REPO / "configFile/semi_bp/100/config.json").read_text())
    # a phase-1 epoch: the labels' pass (100 / 200 s) and one evaluation; phase 2: two, and the unlabeled pass
    assert lines["semi"][1] == pytest.approx(cfg["pre_epochs"] * (0.5 + 3.0 / 2) + cfg["epochs"] * (19 + 0.5 + 3))
    cfg = json.loads((REPO / "configFile/semi_bp/1000/config.json").read_text())
    supervised = 1000 / 1200.0  # seconds for the 1000 labels at the measured rate
    unlabeled = 18.0 - 400 / 2000.0  # 400 fewer unlabeled images than at 600 labels
    assert lines["semi_1000"][1] == pytest.approx(cfg["pre_epochs"] * (supervised + 3.0 / 2) +
                                                  cfg["epochs"] * (unlabeled + supervised + 3.0))
    assert lines["semi_1000"][0].endswith("2026-02-01_semi600.json)")
    assert lines["semi_batch"][0].endswith("epochs left, no estimate") and lines["semi_batch"][1] is None
    assert lines["untrained"] == ("fresh    untrained  0 of 0 epochs left: its read-out only, no estimate", None)
    assert reproduce.describe(jobs[0], threads=2, bench=bench)[1] == 6 * 7.0
    total = reproduce.dry_run(jobs, 1, bench).splitlines()[-1]
    assert total.startswith("6 jobs: 5 fresh, 1 resume, 0 skip, 0 extract;")


DIVERGED = {"status": "diverged", "diverged": {"reason": "diverged: loss nan at epoch 3", "resume_key": "lr"}}


def test_a_diverged_run_fails_with_its_reason_and_resume_command_and_what_waits_for_it_does_not_start(
        tmp_path, capsys):
    root = tmp_path / "r"
    write(root / "d", {"config.json": "{}", "checkpoint.pt": "", "summary.json": json.dumps(DIVERGED)})
    sources = [Source("d", QUICK, "d"), Source("readout", QUICK + " --trained_path {root}/d", "read-out")]
    jobs = {j.name: j for j in reproduce.plan(sources, root)}
    assert jobs["d"].action == "diverged" and not reproduce.has_work(jobs["d"])
    assert not reproduce.is_ready(jobs["readout"].needs[0]) and not reproduce.is_done(jobs["d"])
    resume = f"continue it with: python -m bp.main --resume {root}/d --set lr=[...]"
    assert reproduce.describe(jobs["d"], 1) == (f"diverged d  diverged: loss nan at epoch 3; {resume}", None)
    dry = reproduce.dry_run(list(jobs.values()), 1).splitlines()
    assert dry[-1].startswith("2 jobs: 1 fresh, 0 resume, 0 skip, 1 diverged, 0 extract;")
    assert dry[1].endswith(f"waits for {root}/d/summary.json (which diverged: it will not start)")
    with pytest.raises(UserError, match="loss nan at epoch 3"):  # diverged since it was planned: never cleared
        reproduce.command_for(dataclasses.replace(jobs["d"], action="fresh"))
    assert (root / "d" / "summary.json").is_file()

    assert reproduce.main(["--root", str(root)], sources) == 1  # at once: nothing trains
    out = capsys.readouterr().out
    assert "0 jobs to run, 0 finished, 1 diverged;" not in out and "1 jobs to run, 0 finished, 1 diverged;" in out
    assert f"d: diverged: loss nan at epoch 3; {resume}" in out
    assert f"readout: not started: needs {root}/d/summary.json, not written by d" in out
    assert not (root / "readout").exists()


def test_jobs_waiting_for_each_other_fail_at_once_and_a_damaged_folder_not_selected_stops_nothing(tmp_path,
                                                                                                      capsys):
    sources = [Source("a", QUICK + " --trained_path {root}/b", "a"),
               Source("b", QUICK + " --trained_path {root}/a", "b"), Source("other", QUICK, "other")]
    write(tmp_path / "other", {"config.json": "{}", "summary.json": "{bad"})
    t0 = time.monotonic()  # were the cycle not seen, the call would wait until this stop: exit 3, not 1
    assert reproduce.main(["--root", str(tmp_path), "--only", "a", "--only", "b"], sources,
                          stop=lambda: time.monotonic() - t0 > 60) == 1
    out = capsys.readouterr().out
    assert f"a: not started: needs {tmp_path}/b/summary.json, not written by b" in out
    assert f"b: not started: needs {tmp_path}/a/summary.json, not written by a" in out
    assert reproduce.main(["--root", str(tmp_path), "--only", "other", "--dry-run"], sources) == 2  # selected: read


def test_seeds_summary_waits_for_every_planned_seed_to_finish(tmp_path):
    src = Source("s", QUICK, "s", seeds=2)  # seeds 1 and 2 (the quickstart preset's seed is 1)
    finished = {"status": "finished", "seed": 1, "accuracy_percent": {"direct": 90.0}}
    write(tmp_path / "s" / "S-1", {"summary.json": json.dumps(finished)})
    write(tmp_path / "s" / "S-2", {"summary.json": json.dumps({**DIVERGED, "seed": 2})})
    write(tmp_path / "s" / "S-9", {"summary.json": json.dumps({**finished, "seed": 9})})  # not a planned seed
    write(tmp_path / "s" / "S-3_old", {"summary.json": "{}"})
    reproduce.summarize_seeds(src, tmp_path)
    assert not (tmp_path / "s" / "seeds_summary.json").exists()
    write(tmp_path / "s" / "S-2", {"summary.json": json.dumps({**finished, "seed": 2})})  # resumed, finished
    reproduce.summarize_seeds(src, tmp_path)
    assert json.loads((tmp_path / "s" / "seeds_summary.json").read_text())["seeds"] == [1, 2]


def test_the_seed_a_single_seed_source_owns_completes_its_seeds_summary_when_it_finishes(tmp_path, capsys):
    sources = [Source("s/S-1", QUICK, "figure"), Source("s", QUICK, "table", seeds=2)]
    jobs = reproduce.plan(sources, tmp_path)
    finished = {"status": "finished", "accuracy_percent": {"direct": 90.0}}
    write(tmp_path / "s" / "S-2", {"summary.json": json.dumps({**finished, "seed": 2})})
    write(tmp_path / "s" / "S-1", {"summary.json": json.dumps({**finished, "seed": 1})})  # what the job wrote
    done = subprocess.Popen([sys.executable, "-c", ""])
    done.wait()
    assert reproduce.reap({done.pid: (jobs[0], done, time.monotonic(), 0)}, tmp_path, jobs) == []
    assert jobs[0].source.seeds == 1 and json.loads((tmp_path / "s" / "seeds_summary.json").read_text())["seeds"] \
        == [1, 2]


def test_a_job_whose_log_another_reproduce_holds_is_left_alone(tmp_path):
    root = tmp_path / "r"
    write(root / "dead", {"config.json": "{}"})  # what a job in its first epoch looks like from outside
    job = reproduce.plan([Source("dead", QUICK, "dead")], root)[0]
    held = reproduce.locked_log(job)  # as the other reproduce's child holds it while it trains
    try:
        running = {}
        assert reproduce.try_start(job, running, 1) == [
            (job, "left", f"not started: another funcs.reproduce is running it ({root}/dead.log is locked)")]
        assert running == {} and (root / "dead" / "config.json").is_file()  # not cleared as a dead start
    finally:
        held.close()
    again = reproduce.locked_log(job)
    assert again is not None  # released with its holder
    again.close()


def test_bad_input_is_one_error_line_and_exit_2(tmp_path, capsys):
    sources = [Source("a", QUICK, "a")]
    (tmp_path / "file").write_text("")
    for argv in (["--only", "nothing*"], ["--root", str(tmp_path / "file")], ["--jobs", "0"], ["--deadline", "-1"],
                 ["--deadline", "nan"], ["--root", ""]):
        assert reproduce.main(["--root", str(tmp_path / "r"), *argv], sources) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, err
    assert not (tmp_path / "r").exists()


def test_damaged_run_folder_is_one_error_line_naming_its_file(tmp_path, capsys):
    """A config.json or summary.json that is not JSON (a hand edit, a full disk): exit 2 and the file named."""
    sources = [Source("a", QUICK, "a"), Source("s", QUICK, "s", seeds=2)]
    write(tmp_path / "a", {"config.json": "{bad", "summary.json": "{}"})
    assert reproduce.main(["--root", str(tmp_path), "--only", "a", "--dry-run"], sources) == 2
    err = capsys.readouterr().err
    assert err == f"error: run config {tmp_path}/a/config.json: malformed JSON at line 1 column 2: " \
                  "Expecting property name enclosed in double quotes\n"
    write(tmp_path / "s" / "S-1", {"config.json": "{}", "summary.json": "[1,"})
    write(tmp_path / "s" / "S-2", {"config.json": "{}", "summary.json": "{}"})
    with pytest.raises(UserError, match=f"run summary {tmp_path}/s/S-1/summary.json: malformed JSON"):
        reproduce.summarize_seeds(sources[1], tmp_path)
    assert not (tmp_path / "s" / "seeds_summary.json").exists()


def test_wta_without_its_base_selected_does_not_start_and_says_why(tmp_path, capsys):
    sources = [Source("semi", SEMI, "base"), Source("semi_wta", SEMI + " --set pretrained_path={root}/semi", "wta")]
    assert reproduce.main(["--root", str(tmp_path), "--only", "semi_wta", "--dry-run"], sources) == 0
    assert f"waits for {tmp_path}/semi/pretrained.pt (which no selected job writes: it will not start; add that " \
           f"source to --only)" in capsys.readouterr().out
    assert reproduce.main(["--root", str(tmp_path), "--only", "semi_wta"], sources) == 1
    out = capsys.readouterr().out
    assert f"semi_wta: not started: needs {tmp_path}/semi/pretrained.pt, which no selected job writes" in out
    assert not (tmp_path / "semi_wta").exists()


# --- real jobs ---------------------------------------------------------------------------------------------

def test_interrupted_job_is_resumed_by_the_next_call_and_ends_with_the_rows_of_a_straight_run(tmp_path, dataset,
                                                                                             capsys):
    src = Source("tiny", tiny(dataset, EPOCHS), "tiny")
    straight = tmp_path / "straight"
    subprocess.run([sys.executable, *shlex.split(src.command)[1:], "--out", str(straight)], cwd=REPO, check=True,
                   env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True)
    root = tmp_path / "r"
    folder = root / "tiny"

    # --deadline: interrupted while it starts (or in its first epochs); the next call cleans up or resumes
    assert reproduce.main(["--root", str(root), "--deadline", "0.5"], [src]) == 3
    assert "tiny: time is up: stopped at" in capsys.readouterr().out
    # interrupted once an epoch is checkpointed, as at a deadline: SIGINT, the job exits, the checkpoint stays,
    # and its rows are the checkpoint's (a SIGINT between an epoch's row and its checkpoint is held until both
    # are written: seen in CI before, a row without a checkpoint, and the folder started again)
    checkpoint = folder / "checkpoint.pt"
    assert reproduce.main(["--root", str(root)], [src], stop=checkpoint.is_file) == 3
    done = torch.load(checkpoint, weights_only=False)["epoch"]
    assert 1 <= done < EPOCHS and len(read_rows(folder / "results.csv")) == done  # SIGINT waits for the checkpoint
    assert not (folder / "summary.json").exists()
    assert "--resume" in (root / "tiny.log").read_text().splitlines()[-1]  # the CLI's "continue with" line
    capsys.readouterr()

    assert reproduce.main(["--root", str(root)], [src]) == 0
    out = capsys.readouterr().out
    assert f"tiny: resumed (epoch {done} of {EPOCHS} done)" in out and "tiny: finished in" in out
    same = lambda rows: [{k: v for k, v in r.items() if "seconds" not in k} for r in rows]  # noqa: E731
    assert same(read_rows(folder / "results.csv")) == same(read_rows(straight / "results.csv"))
    assert reproduce.main(["--root", str(root)], [src]) == 0  # finished: nothing to do
    assert "0 jobs to run, 1 finished" in capsys.readouterr().out


def test_an_error_in_reproduce_itself_stops_the_running_job_before_it_goes_on(tmp_path, dataset, capsys):
    src = Source("tiny", tiny(dataset, EPOCHS), "tiny")
    checkpoint = tmp_path / "tiny" / "checkpoint.pt"

    def stop():  # a bug of reproduce's own, once its job is training
        if checkpoint.is_file():
            raise RuntimeError("a bug in the loop")
        return False
    with pytest.raises(RuntimeError, match="a bug in the loop"):
        reproduce.main(["--root", str(tmp_path)], [src], stop=stop)
    assert reproduce.live_process(tmp_path / "tiny") is None  # its job in its own session did not go on alone
    assert not (tmp_path / "tiny" / "summary.json").exists()


def test_readout_waits_for_its_trained_seed_and_seeds_summary_holds_mean_and_std(tmp_path, dataset, capsys):
    sources = [Source("readout", tiny(dataset, 0) + " --trained_path {root}/seeds/S-1", "read-out"),
               Source("seeds", tiny(dataset, 1), "seeds", seeds=2)]
    assert reproduce.main(["--root", str(tmp_path), "--jobs", "2"], sources) == 0
    # listed first, started once its trained seed's summary.json was written (the seed's own "finished" line
    # may come later: its process still draws its curves then)
    assert (tmp_path / "seeds/S-1/summary.json").stat().st_mtime <= (tmp_path / "readout/config.json").stat().st_mtime
    per_seed = [json.loads((tmp_path / f"seeds/S-{s}/summary.json").read_text())["accuracy_percent"] for s in (1, 2)]
    stats = json.loads((tmp_path / "seeds/seeds_summary.json").read_text())
    assert stats["seeds"] == [1, 2] and "direct_association_mean" in per_seed[0]
    for key in per_seed[0]:
        values = [p[key] for p in per_seed]
        assert stats["mean"][key] == pytest.approx(np.mean(values), abs=1e-3)
        assert stats["std"][key] == pytest.approx(np.std(values, ddof=1), abs=1e-3)
    readout = json.loads((tmp_path / "readout/summary.json").read_text())
    assert readout["trained_network"]["folder"] == str(tmp_path / "seeds/S-1")
    assert (tmp_path / "seeds/S-1.log").is_file() and (tmp_path / "readout.log").is_file()


def test_a_second_folder_of_one_run_is_copied_when_the_first_finishes_and_completes_its_seeds_summary(
        tmp_path, dataset, capsys):
    sources = [Source("single", tiny(dataset, 2), "figure"), Source("seeds", tiny(dataset, 2), "table", seeds=2)]
    # three at a time: the copy waits for its twin's process to end, not only for its summary.json
    assert reproduce.main(["--root", str(tmp_path), "--jobs", "3"], sources) == 0
    out = capsys.readouterr().out
    assert "3 jobs to run, 0 finished" in out and out.count(": started, log") == 2  # single and S-2 trained
    assert "seeds/S-1: copied from single (the same run), accuracy (%)" in out
    single, copy = tmp_path / "single", tmp_path / "seeds/S-1"
    for name in ("summary.json", "results.csv", "curves.png"):
        assert (copy / name).read_bytes() == (single / name).read_bytes(), name
    trained, copied = (single / "run.log").read_text(), (copy / "run.log").read_text()
    assert copied.startswith(trained) and "final test accuracy" in trained.splitlines()[-1]
    assert copied[len(trained):].endswith(f"funcs.reproduce: copied from {single}, the same run (rule, config, "
                                          f"seed and labeled subset)\n")
    assert json.loads((tmp_path / "seeds/seeds_summary.json").read_text())["seeds"] == [1, 2]
    assert not list(tmp_path.glob("seeds/.S-1.copying*"))
    assert reproduce.main(["--root", str(tmp_path)], sources) == 0
    assert "0 jobs to run, 3 finished" in capsys.readouterr().out


def test_sigterm_and_a_background_shell_s_ignored_sigint_both_stop_with_keyboardinterrupt():
    """A process started by `nohup ... &` from a script has SIGINT ignored (and its children too): --deadline's
    SIGINT went unheard. stop_signals_interrupt makes Ctrl-C work again and SIGTERM stop as Ctrl-C does."""
    code = ("import os, signal, time\n"
            "from funcs.errors import stop_signals_interrupt\n"
            "assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN\n"
            "stop_signals_interrupt()\n"
            "for sig in (signal.SIGINT, signal.SIGTERM):\n"
            "    try:\n"
            "        os.kill(os.getpid(), sig)\n"
            "        time.sleep(0.5)\n"
            "    except KeyboardInterrupt:\n"
            "        print('stopped by', sig.name)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)).stdout
    assert out.split("\n")[:2] == ["stopped by SIGINT", "stopped by SIGTERM"]


def test_a_stop_inside_stops_deferred_waits_for_the_block_s_end_then_stops_as_it_would_have():
    """An epoch's row and checkpoint are written under stops_deferred: a SIGINT or SIGTERM in between is held
    (the block runs to its end) and then raised; the handlers stay as they were. A block that fails raises its
    own error, and the stop it held does not leak into the next block."""
    code = ("import os, signal, time\n"
            "from funcs.errors import stop_signals_interrupt, stops_deferred\n"
            "stop_signals_interrupt()\n"
            "before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}\n"
            "for sig in (signal.SIGINT, signal.SIGTERM):\n"
            "    try:\n"
            "        with stops_deferred():\n"
            "            os.kill(os.getpid(), sig)\n"
            "            time.sleep(0.2)\n"
            "            print('block ended')\n"
            "        print('not stopped')\n"
            "    except KeyboardInterrupt:\n"
            "        print('stopped by', sig.name)\n"
            "assert before == {s: signal.getsignal(s) for s in before}\n"
            "try:\n"
            "    with stops_deferred():\n"
            "        os.kill(os.getpid(), signal.SIGINT)\n"
            "        time.sleep(0.2)\n"
            "        raise OSError('disk full')\n"
            "except OSError as err:\n"
            "    print(err)\n"
            "with stops_deferred():\n"
            "    pass\n"
            "print('no signal, no stop')\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[:6] == ["block ended", "stopped by SIGINT", "block ended", "stopped by SIGTERM",
                                    "disk full", "no signal, no stop"]


def test_a_finished_job_is_reported_by_its_accuracies_or_a_regression_s_cost(tmp_path):
    def finished(summary: dict) -> str:
        done = tmp_path / "summary.json"
        done.write_text(json.dumps(summary))
        job = reproduce.Job("x", Source("x", QUICK, "x"), tmp_path, "fresh", [], {}, [], done, tmp_path / "x.log")
        return reproduce.finished_text(job)

    assert finished({"accuracy_percent": {"test": 28.0}, "cost": {}}) == "accuracy (%) test 28.0"
    assert finished({"accuracy_percent": {}, "cost": {"test_cost": 0.045926}}) == "cost test_cost 0.045926"


def test_a_second_ctrl_c_while_jobs_stop_kills_them_at_once(tmp_path):
    """The first Ctrl-C sends SIGINT and waits up to GRACE_S; a second one in that wait kills the jobs, with no
    traceback (it escaped interrupt() before)."""
    write(tmp_path / "run", {"config.json": "{}", "results.csv": rows_csv(1)})  # an epoch done: SIGINT, not kill
    job = reproduce.plan([Source("run", QUICK, "run")], tmp_path)[0]
    deaf = subprocess.Popen([sys.executable, "-c", "import signal, time\n"
                             "signal.signal(signal.SIGINT, signal.SIG_IGN)\nprint(flush=True)\ntime.sleep(600)"],
                            stdout=subprocess.PIPE)
    deaf.stdout.readline()  # SIGINT is ignored from here on: only a kill ends it

    class CtrlCInTheWait:  # the process, with a Ctrl-C arriving during the graceful wait
        pid = deaf.pid
        send_signal, kill = deaf.send_signal, deaf.kill

        def wait(self, timeout=None):
            if timeout is not None:
                raise KeyboardInterrupt
            return deaf.wait()

    try:
        left = reproduce.interrupt({deaf.pid: (job, CtrlCInTheWait(), time.monotonic(), 0)}, "interrupted")
    except KeyboardInterrupt:
        deaf.kill()
        pytest.fail("the second Ctrl-C escaped interrupt()")
    assert deaf.poll() == -signal.SIGKILL
    assert left == [(job, "left", f"interrupted: stopped at {reproduce.epoch_text(job)}; the same command resumes it")]
