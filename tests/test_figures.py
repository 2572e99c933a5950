"""The figures notebook and module: drawn from run folders the real CLI writes, numbers read back and compared.

A small results folder is made once per module by the registry's own commands
(`python -m bp.main ...` lines, run through the entry point in-process) with
tiny overrides: an MNIST subset (600 training, 500 test images), small layers,
one or two epochs. Where MNIST cannot be provisioned the tests use
scikit-learn's 8x8 digits (the dataset fixture, tests/conftest.py).
"""
from __future__ import annotations

import csv
import json
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from bp.main import RULE as BP
from funcs import cli, extract, figures, figures_registry, records, rules, tables
from funcs import config as config_mod
from tests.conftest import DATA_DIR, INPUT_SIZE

REPO = Path(__file__).resolve().parents[1]
RULES = {rule.command.split()[-1]: rule for rule in rules.all_rules()}  # "bp.main": the bp rule
PNGS = {f"{name}.png" for name in figures.DRAW}
NOTEBOOK_PNGS = PNGS | {"semi_against_original.png"}  # the notebook also draws Table 5's runs over the original's


def tiny(dataset: str, sizes: str, *more: str) -> list[str]:
    """Quick settings appended to a registry command (later --set wins)."""
    data = ["dataset=digits"] if dataset == "digits" else [f"data_dir={DATA_DIR}", "train_size=600",
                                                           "test_size=500"]
    sets = [*data, "device=-1", f"fcLayers={sizes}", "class_epoch=2", "test_batchSize=500", *more]
    return [a for s in sets for a in ("--set", s)]


def run_command(command: str, extra: list[str]) -> None:
    """A registry command (`python -m bp.main --json_path configFile/... --out ...`) through its entry point."""
    parts = shlex.split(command)
    assert parts[:2] == ["python", "-m"], command
    argv = parts[3:]
    i = argv.index("--json_path")
    argv[i + 1] = str(REPO / argv[i + 1])
    assert cli.main(RULES[parts[2]], [*argv, *extra]) == 0, command


def pca2(x: np.ndarray) -> np.ndarray:
    """A cheap stand-in for UMAP in the tests: the two leading principal components."""
    x = x - x.mean(0)
    return x @ np.linalg.svd(x, full_matrices=False)[2][:2].T


@pytest.fixture(scope="module")
def results(tmp_path_factory, dataset) -> Path:
    """A results root with a run behind most figures, made by the registry's commands with tiny settings."""
    root = tmp_path_factory.mktemp("results")
    n_in = INPUT_SIZE[dataset]
    reg = figures_registry.REGISTRY
    runs = [  # (source, extra arguments)
        (figures_registry.MLP["bp_1layer"], tiny(dataset, f"[{n_in},100]", "epochs=2")),
        (figures_registry.MLP["ep_1layer"], tiny(dataset, f"[{n_in},100]", "epochs=1")),
        (figures_registry.MLP["bp_2layer"], tiny(dataset, f"[{n_in},100,100]", "epochs=1")),
        (figures_registry.SUPERVISED_MLP["bp_1layer"], tiny(dataset, f"[{n_in},100]", "epochs=1")),
        (figures_registry.SEMI["bp/100/wta_homeostasis"],
         tiny(dataset, f"[{n_in},100,10]", "pre_epochs=2", "epochs=1")),
        (figures_registry.SEMI["bp/100/wta"], tiny(dataset, f"[{n_in},100,10]", "pre_epochs=2", "epochs=1")),
        (figures_registry.HOMEOSTASIS["bp/1layer/batch"], tiny(dataset, f"[{n_in},50]", "epochs=2")),
        (figures_registry.HOMEOSTASIS["bp/1layer/sequential"], tiny(dataset, f"[{n_in},50]", "epochs=2")),
        (figures_registry.N_OUT_RUNS["bp/10"], tiny(dataset, f"[{n_in},10]", "epochs=1")),
        (figures_registry.N_OUT_RUNS["bp/100"], tiny(dataset, f"[{n_in},100]", "epochs=1") + ["--seeds", "2"]),
    ]
    label_share = {**reg["fig4_label_share_untrained"].sources, **reg["fig5_label_share_2layer"].sources}
    runs += [(label_share[key], tiny(dataset, sizes, "class_epoch=1")) for key, sizes in (  # the others: missing
        ("bp_1layer_trained/1", f"[{n_in},100]"), ("bp_1layer_trained/5", f"[{n_in},100]"),
        ("bp_1layer_trained/50", f"[{n_in},100]"), ("bp_1layer_trained/100", f"[{n_in},100]"),
        ("bp_1layer_untrained/1", f"[{n_in},100]"), ("bp_1layer_untrained/100", f"[{n_in},100]"),
        ("ep_1layer_trained/100", f"[{n_in},100]"), ("bp_2layer_trained/1", f"[{n_in},100,100]"),
        ("bp_2layer_trained/100", f"[{n_in},100,100]"))]
    for src, extra in runs:
        run_command(src.produce(root), extra)
    data_dir = None if dataset == "digits" else str(DATA_DIR)
    for key in ("bp_1layer", "bp_2layer"):
        extract.max_activation(BP, root / figures_registry.MLP[key].path, data_dir)
        extract.first_layer_weights(BP, root / figures_registry.MLP[key].path)
    extract.first_layer_weights(BP, root / figures_registry.SUPERVISED_MLP["bp_1layer"].path)
    semi = root / figures_registry.SEMI["bp/100/wta_homeostasis"].path
    extract.umap_outputs(BP, semi, data_dir, embed=pca2)
    extract.umap_outputs(BP, semi, data_dir, pretrained=True, embed=pca2)
    extract.umap_outputs(BP, root / figures_registry.SEMI["bp/100/wta"].path, data_dir, embed=pca2)
    return root


def read_back(folder: Path, metric: str) -> float:
    """A run folder's accuracy (%) or cost, read the plain way: seeds_summary.json, summary.json, or the last CSV
    row."""
    if (folder / "seeds_summary.json").is_file():
        return json.loads((folder / "seeds_summary.json").read_text())["mean"][metric]
    finished_seeds = list(folder.glob("S-*/summary.json"))  # a seeds root whose other seeds are still to come
    if finished_seeds:  # stored like seeds_summary.json's means, to 6 decimals (seen: 74.666667 for 3 seeds)
        return round(float(np.mean([json.loads(p.read_text())["accuracy_percent"][metric] for p in finished_seeds])), 6)
    if (folder / "summary.json").is_file():
        summary = json.loads((folder / "summary.json").read_text())
        return summary["cost"][metric] if metric == "test_cost" else summary["accuracy_percent"][metric]
    with open(folder / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    if metric == "test_cost":
        return float(rows[-1]["test_cost"])
    if metric == "after_phase_1":
        rows = [r for r in rows if r["phase"] == "1"]
    column = {"direct_association_mean": "error_mean", "test": "error", "after_phase_1": "error"}[metric]
    return round(100 * (1 - float(rows[-1][column])), 2)


def test_every_notebook_cell_has_an_id():  # nbformat warns now, and will refuse such a notebook later
    cells = json.loads(figures.NOTEBOOK.read_text())["cells"]
    assert all(c.get("id") for c in cells) and len({c["id"] for c in cells}) == len(cells)


def test_notebook_writes_every_figure_from_runs_the_cli_made(results, tmp_path):
    nb = figures.execute_notebook(results=str(results), out=str(tmp_path / "png"))
    assert {p.name for p in (tmp_path / "png").glob("*.png")} == NOTEBOOK_PNGS
    text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "Table 3" in text and "Table 5" in text and "missing" in text and "original, same epoch" in text


def test_notebook_runs_on_the_committed_results(tmp_path):
    nb = figures.execute_notebook(results=str(REPO / "simuResults"), out=str(tmp_path / "png"))
    assert {p.name for p in (tmp_path / "png").glob("*.png")} == NOTEBOOK_PNGS
    text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    # Table 3 shows the 1-layer BP network's mean over the committed seeds
    seeds = json.loads((REPO / "simuResults/unsupervised_bp_1layer_seeds/seeds_summary.json").read_text())
    assert f"{seeds['mean']['direct_association_mean']:.2f}" in text


@pytest.mark.parametrize("name", ["fig4_label_share_untrained", "fig5_label_share_2layer", "fig2_accuracies",
                                  "fig9_semi_supervised", "fig13_n_out"])
def test_plotted_accuracies_equal_the_numbers_in_their_run_folders(results, tmp_path, name):
    drawn = figures.draw(name, results, tmp_path)
    points = [p for v in drawn.series.values() for p in v]
    assert points and drawn.path.is_file()
    for p in points:
        assert p.y == pytest.approx(read_back(p.folder, p.metric), abs=1e-9), (p.folder, p.metric)
    if name.startswith("fig4"):  # every folder the fixture made is plotted, once per method; the others missing
        made = {f for f in results.glob("label_share/*/*") if f.parent.name in
                {"bp_1layer_trained", "ep_1layer_trained", "bp_1layer_untrained", "bp_2layer_untrained"}}
        assert len(made) == 7
        assert sorted(str(p.folder) for p in points) == sorted(str(f) for f in made for _ in range(2))
        assert any("bp_1layer_untrained/5" in m for m in drawn.missing)


def test_error_curves_equal_the_rows_of_results_csv(results, tmp_path):
    drawn = figures.draw("fig12_homeostasis_mode", results, tmp_path)
    assert set(drawn.series) == {"bp/1layer/batch", "bp/1layer/sequential"}
    for points in drawn.series.values():
        with open(points[0].folder / "results.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        assert [p.x for p in points] == [int(r["epoch"]) for r in rows]
        assert [p.y for p in points] == pytest.approx([100 * float(r["error_mean"]) for r in rows])


def test_label_share_points_sit_at_their_share_of_labels(results, tmp_path):
    drawn = figures.draw("fig4_label_share_untrained", results, tmp_path)
    points = [p for v in drawn.series.values() for p in v]
    assert points
    for p in points:
        share = json.loads((p.folder / "config.json").read_text())["class_label_percentage"]
        assert p.x == pytest.approx(100 * share)


def test_seeds_root_gives_mean_std_and_seed_count(results):
    rec = records.read_run(results / figures_registry.N_OUT_RUNS["bp/100"].path)
    stats = json.loads((rec.folder / "seeds_summary.json").read_text())
    per_seed = stats["per_seed"]["direct_association_mean"]
    assert rec.seeds == [1, 2] and rec.epochs_run == 1
    assert rec.value("direct_association_mean") == pytest.approx(np.mean(per_seed), abs=1e-3)
    assert rec.std["direct_association_mean"] == pytest.approx(np.std(per_seed, ddof=1), abs=1e-3)


@pytest.mark.parametrize("root", ["made", "committed"])
def test_table_rows_equal_their_folders(results, root):
    base = results if root == "made" else REPO / "simuResults"
    found = 0
    for name in figures_registry.TABLE_ROWS:
        for row in tables.table(name, base):
            if row.mean is None:
                continue
            found += 1
            folder = base / row.folder
            assert row.mean == pytest.approx(read_back(folder, row.metric), abs=1e-9), row
            seeds = json.loads((folder / "seeds_summary.json").read_text())["seeds"] \
                if (folder / "seeds_summary.json").is_file() else list(folder.glob("S-*/summary.json")) or [1]
            assert row.seeds == len(seeds)
            csvs = sorted(folder.glob("**/results.csv"))
            if not csvs:  # a read-out of the initial network (epochs 0) trains nothing
                assert row.epochs == "untrained network", row
                continue
            with open(csvs[0], newline="") as f:
                rows = list(csv.DictReader(f))
            if "phase" in rows[0]:
                cfg = json.loads((csvs[0].parent / "config.json").read_text())  # (a seeds root: its first seed's)
                assert f"phase 2: {sum(r['phase'] == '2' for r in rows)} of {cfg['epochs']} epochs" in row.epochs
            else:
                assert row.epochs.startswith(f"{len(rows)} of "), row
    assert found >= (3 if root == "made" else 4)


def test_committed_runs_are_labelled_from_their_folders():
    rec = records.find(REPO / "simuResults", figures_registry.MLP["bp_2layer"])
    cfg = json.loads((rec.folder / "config.json").read_text())
    rows = sum(1 for _ in open(rec.folder / "results.csv")) - 1
    assert rec.describe(200) == f"{rows} of {cfg['epochs']} epochs" + (" (unfinished)" * (rows < cfg["epochs"])) + \
        ", 1 seed"


def test_an_unfinished_semi_supervised_run_is_labelled_by_phase(tmp_path):
    semi = tmp_path / "semi_bp_600"
    semi.mkdir()
    (semi / "config.json").write_text(json.dumps({"action": "semi_supervised_bp", "pre_epochs": 2, "epochs": 400}))
    (semi / "results.csv").write_text("epoch,phase,loss_unsupervised,error_unsupervised,loss,error,seconds\n" +
                                      "".join(f"{e},{1 + (e > 2)},1,0.1,1,0.1,1\n" for e in range(1, 6)))
    assert records.read_run(semi).describe(402) == "phase 1: 2 of 2, phase 2: 3 of 400 epochs (unfinished), 1 seed"


def test_a_run_of_zero_epochs_is_labelled_untrained_but_a_phase_1_only_semi_run_is_not(tmp_path):
    untrained = write_run(tmp_path / "cnn", {"action": "unsupervised_bp", "epochs": 0}, 0,
                          {"seed": 1, "accuracy_percent": {"linear_classifier": 98.1}})
    assert records.read_run(untrained).describe(30) == "untrained network, 1 seed"
    semi = tmp_path / "semi"
    semi.mkdir()
    (semi / "config.json").write_text(json.dumps({"action": "semi_supervised_bp", "pre_epochs": 2, "epochs": 0}))
    (semi / "results.csv").write_text("epoch,phase,loss,error,seconds\n1,1,1,0.1,1\n2,1,1,0.1,1\n")
    assert records.read_run(semi).describe() == "phase 1: 2 of 2, phase 2: 0 of 0 epochs, 1 seed"


def test_a_regression_run_is_read_and_tabled_by_its_cost_to_four_decimals(tmp_path):
    """Diabetes: summary.json's `cost`, or an unfinished run's last test_cost; 0.0432 is not an accuracy."""
    cfg = {"action": "supervised_ep", "epochs": 10, "seed": 1}
    done = write_run(tmp_path / "done", cfg, 10, {"seed": 1, "accuracy_percent": {}, "cost": {"test_cost": 0.04321}})
    running = write_run(tmp_path / "running", cfg, 0)
    (running / "results.csv").write_text("epoch,loss,test_cost\n1,0.3,0.0877\n2,0.1,0.0601\n")
    assert records.read_run(done).value("test_cost") == 0.04321
    assert records.read_run(running).value("test_cost") == 0.0601
    row = tables.Row("diabetes", "test cost", figures_registry.Paper(0.0441), metric="test_cost", mean=0.04321,
                     std=0.0035, source=figures_registry.SMALL_WORLD_REGRESSION["diabetes_5layer_layered"])
    assert (tables._paper(row), tables._ours(row)) == ("0.0441", "0.0432 ± 0.0035")


def test_shortened_run_is_labelled_with_the_papers_epochs(results):
    rec = records.read_run(results / figures_registry.MLP["bp_2layer"].path)
    assert rec.describe(200).startswith("1 of 200 epochs (shortened)")


def write_run(folder: Path, config: dict, rows: int, summary: dict | None = None) -> Path:
    """A hand-made run folder: config.json, `rows` rows of results.csv, summary.json if given."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config))
    if rows:
        (folder / "results.csv").write_text("epoch,loss,error_mean\n" + "".join(f"{e},0.1,0.1\n"
                                                                               for e in range(1, rows + 1)))
    if summary is not None:
        (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def test_commands_leave_out_the_cpu_shortening_of_a_folder_that_ran_in_full(tmp_path):
    """`commands` gives the command that wrote each folder: a `+ WTA` run of the whole 400 phase-2 epochs was not
    run with the registry's `--set epochs=10`; a shortened one and a missing one keep it."""
    wta = {key: figures_registry.REGISTRY["fig9_semi_supervised"].sources[key] for key in ("bp/100/wta", "bp/600/wta")}
    assert all(src.shorten == "--set epochs=10" for src in wta.values())
    phase_2 = {"action": "semi_supervised_bp", "pretrained_path": "p"}  # phase 2 only, from a phase-1 network
    write_run(tmp_path / wta["bp/100/wta"].path, {**phase_2, "epochs": 400}, rows=400)
    write_run(tmp_path / wta["bp/600/wta"].path, {**phase_2, "epochs": 10}, rows=10)
    made = figures.commands(tmp_path)
    assert wta["bp/100/wta"].produce(tmp_path, shortened=False) in made
    assert wta["bp/600/wta"].produce(tmp_path) in made and "--set epochs=10" in wta["bp/600/wta"].produce(tmp_path)
    missing = figures_registry.REGISTRY["fig9_semi_supervised"].sources["ep/600/wta"]
    assert missing.produce(tmp_path) in figures.commands(tmp_path, missing_only=True)


def test_missing_commands_finish_a_seeds_folder_with_seeds_to_come(tmp_path):
    """A Table 5 seeds folder with one finished seed of five (and one stopped): `--missing` names the
    funcs.reproduce line that finishes it, not the `--seeds` command that refuses an existing folder."""
    src = figures_registry.SEMI_SEEDS["bp/3000"]
    cfg = {"action": "semi_supervised_bp", "pre_epochs": 200, "epochs": 400}
    summary = {"seed": 1, "accuracy_percent": {"test": 96.6, "after_phase_1": 95.6}}
    write_run(tmp_path / src.path / "S-1", {**cfg, "seed": 1}, rows=600, summary=summary)
    write_run(tmp_path / src.path / "S-2", {**cfg, "seed": 2}, rows=300)  # stopped: resumed by funcs.reproduce
    finish = f"python -m funcs.reproduce --root {tmp_path} --only 'semi_bp_3000_seeds/*'"
    missing = figures.commands(tmp_path, missing_only=True)
    assert finish in missing and src.produce(tmp_path) not in missing
    assert finish not in figures.commands(tmp_path)  # every command: the seeds folder's own, as before
    assert src.produce(tmp_path) in figures.commands(tmp_path)
    (tmp_path / src.path / "S-2" / "summary.json").write_text(json.dumps({**summary, "seed": 2}))  # all five finish
    for seed in range(3, 6):
        write_run(tmp_path / src.path / f"S-{seed}", {**cfg, "seed": seed}, rows=600, summary={**summary, "seed": seed})
    assert finish not in figures.commands(tmp_path, missing_only=True)


def test_missing_commands_name_a_run_whose_folder_only_a_stand_in_holds(tmp_path):
    """EP 784-2000-2000 stopped at 36 epochs and lost its checkpoint, kept as `unsupervised_ep_2layer_partial`: the
    figures draw it, but `--missing` still names the run itself, whose folder the read-outs it lists train from."""
    src = figures_registry.MLP["ep_2layer"]
    write_run(tmp_path / src.also[0], {"action": "unsupervised_ep", "epochs": 100, "seed": 1}, rows=36)
    assert records.find(tmp_path, src).folder == tmp_path / src.also[0]  # the stand-in draws the figures
    run = src.produce(tmp_path, shortened=False)
    assert run.endswith(f"--out {tmp_path / src.path}")
    assert run in figures.commands(tmp_path, missing_only=True)
    write_run(tmp_path / src.path, {"action": "unsupervised_ep", "epochs": 100, "seed": 1}, rows=100)
    assert run not in figures.commands(tmp_path, missing_only=True)


def test_read_out_is_labelled_with_the_epochs_its_trained_run_had_when_read(tmp_path, results):
    """Read at epoch 108 of 200, the trained run at 150 since: the read-out says 108 (its summary.json)."""
    trained = write_run(tmp_path / "trained", {"action": "unsupervised_bp", "epochs": 200, "seed": 1}, rows=150)
    readout = {"action": "train_class_layer", "trained_path": str(trained), "epochs": 0, "seed": 1}
    summary = {"seed": 1, "accuracy_percent": {"direct_association_mean": 90.0}}
    now = write_run(tmp_path / "readout", readout, 0, {**summary, "trained_network": {
        "folder": str(trained), "epochs_done": 108, "weights": "model_state_dict.pt", "weights_sha256": "0"}})
    older = write_run(tmp_path / "older_readout", readout, 0, summary)  # written before trained_network existed
    assert records.read_run(now).describe(200) == "read-out of a network trained 108 of 200 epochs (unfinished), 1 seed"
    assert records.read_run(older).describe(200) == ("read-out of a network trained 150 of 200 epochs (unfinished), "
                                                     "1 seed")
    made = results / figures_registry.REGISTRY["fig4_label_share_untrained"].sources["bp_1layer_trained/1"].path
    read = json.loads((made / "summary.json").read_text())["trained_network"]  # as the CLI writes it
    assert records.read_run(made).trained.epochs_run == read["epochs_done"] == 2


def test_extracted_file_is_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    path = extract.save_npz(tmp_path / "a.npz", x=np.arange(3))

    def interrupted(f, **arrays):  # a write stopped halfway (Ctrl-C during a long extraction's write)
        f.write(b"PK\x03\x04 half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(extract.np, "savez_compressed", interrupted)
    with pytest.raises(KeyboardInterrupt):
        extract.save_npz(path, x=np.arange(5))
    with np.load(path) as z:
        assert z["x"].tolist() == [0, 1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["a.npz"]


def test_damaged_extracted_file_is_left_out_with_one_line_naming_its_extract_command(results, tmp_path):
    root = tmp_path / "results"
    for key in ("bp_1layer", "bp_2layer"):
        shutil.copytree(results / figures_registry.MLP[key].path, root / figures_registry.MLP[key].path)
    npz = root / figures_registry.MLP["bp_1layer"].path / figures_registry.MAX_ACTIVATION
    npz.write_bytes(npz.read_bytes()[:100])  # as an interrupted write of older code left it
    drawn = figures.draw("fig6_max_activation", root, tmp_path / "png")
    command = figures_registry.REGISTRY["fig6_max_activation"].sources["bp_1layer"].extract_command(root)
    assert set(drawn.series) == {"bp_2layer"} and drawn.path.is_file()
    assert drawn.missing == [command]
    damaged = [line for line in drawn.report().splitlines() if ": damaged (" in line]
    assert len(damaged) == 1 and str(npz) in damaged[0] and "BadZipFile" in damaged[0] and command in damaged[0]


@pytest.mark.parametrize("name, text, problem", [
    ("summary.json", "{bad", "run summary {}: malformed JSON at line 1 column 2"),
    ("config.json", "", "run config {}: malformed JSON at line 1 column 1"),
    ("results.csv", "x,y\n1,2\n", "{}: damaged, its header has no epoch column"),
])
def test_damaged_run_folder_stops_tables_and_figures_with_one_line_naming_the_file(results, tmp_path, capsys,
                                                                                     name, text, problem):
    root = tmp_path / "results"
    folder = root / figures_registry.MLP["bp_1layer"].path
    shutil.copytree(results / figures_registry.MLP["bp_1layer"].path, folder)
    if name == "results.csv":
        (folder / "summary.json").unlink()  # an unfinished run: its accuracies come from its last row
    (folder / name).write_text(text)
    for argv in (["tables", "--results", str(root)],
                 ["draw", "--only", "fig2_accuracies", "--results", str(root), "--out", str(tmp_path / "png")]):
        assert figures.main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: " + problem.format(folder / name)) and err.count("\n") == 1, err
    assert not list((tmp_path / "png").glob("*"))  # no figure drawn from it


def test_results_root_that_is_a_file_is_refused_in_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    for command in ("tables", "commands", "draw"):
        assert figures.main([command, "--results", str(tmp_path / "file")]) == 2
        assert capsys.readouterr().err == f"error: --results {tmp_path / 'file'}: a file, not a results folder\n"
        assert figures.main([command, "--results", ""]) == 2
        assert capsys.readouterr().err == "error: --results: an empty path; give the results folder\n"
    (tmp_path / "png").write_text("")
    assert figures.main(["draw", "--only", "fig2_accuracies", "--out", str(tmp_path / "png")]) == 2
    assert capsys.readouterr().err.startswith(f"error: {tmp_path / 'png'}/fig2_accuracies.png: the figure cannot be "
                                              "written there (")


def test_extract_command_builds_the_network_of_the_runs_own_rule(results, capsys):
    """An EP run: its weights read through EP's learner (the raw file's rows); max activation refused."""
    run = results / figures_registry.MLP["ep_1layer"].path
    assert figures.main(["extract", "weights", str(run)]) == 0
    weight = next(v for v in torch.load(run / "model_state_dict.pt").values() if v.ndim == 2)
    rows = torch.randperm(weight.shape[0], generator=torch.Generator().manual_seed(extract.PICK_SEED))[:20].sort()
    with np.load(run / figures_registry.FIRST_LAYER) as z:
        assert z["neurons"].tolist() == rows.values.tolist()
        assert np.array_equal(z["weights"], weight[rows.values].numpy().astype(np.float16))
    assert figures.main(["extract", "max_activation", str(run)]) == 2
    assert capsys.readouterr().err.startswith(
        "error: maximum-activation images (the paper's Figure 6) need a network whose output drive")


def test_figure_without_data_says_which_commands_produce_it(tmp_path):
    drawn = figures.draw("fig13_n_out", tmp_path / "empty", tmp_path / "png")
    assert not drawn.has_data and drawn.path.is_file()
    assert drawn.missing == [s.produce(tmp_path / "empty") for s in figures_registry.N_OUT_RUNS.values()]


def test_extracted_arrays_are_small_and_shaped(results):
    for path in results.rglob("*.npz"):
        assert path.stat().st_size < 1_000_000
    with np.load(next((results / figures_registry.MLP["bp_1layer"].path).rglob(figures_registry.MAX_ACTIVATION))) as z:
        assert z["images"].shape[0] == 20 and sorted(z["classes"]) == sorted(list(range(10)) * 2)
        assert 0 <= z["images"].min() and z["images"].max() <= 1
    with np.load(next((results / figures_registry.MLP["bp_2layer"].path).rglob(figures_registry.FIRST_LAYER))) as z:
        assert z["weights"].shape[0] == 20 and len(set(z["neurons"])) == 20


def test_max_activation_of_one_linear_neuron_is_one_where_its_weight_is_positive():
    """On one linear output neuron (a BP 784-1 network) the best input in [0, 1]^784 is 1 where w > 0, else 0."""
    cfg = config_mod.load(REPO / "configFile/quickstart", ["fcLayers=[784,1]", "nudge=1", "device=-1"])
    torch.manual_seed(0)
    learner = BP.build(cfg, torch.device("cpu"))
    weight = learner.model.linears[0].weight.detach().clone()
    x, drive = extract.maximize_inputs(extract.output_drive(learner), torch.tensor([0]), (1, 28, 28))
    assert torch.equal(x.flatten(), (weight[0] > 0).float())
    assert torch.equal(learner.model.linears[0].weight, weight)  # the search does not train the network
    assert drive.item() == pytest.approx((weight[0].clamp(min=0).sum() + learner.model.linears[0].bias[0]).item())


def test_most_responsive_neurons_are_picked_per_class_by_mean_response():
    # 4 neurons, 2 classes: neuron 0 and 2 answer class 0 (means 0.9, 0.5), neurons 1 and 3 class 1 (0.8, 0.7)
    out = torch.tensor([[0.9, 0.0, 0.5, 0.1], [0.9, 0.2, 0.5, 0.1], [0.0, 0.8, 0.1, 0.7], [0.1, 0.8, 0.0, 0.7]])
    labels = torch.tensor([0, 0, 1, 1])
    neurons, classes = extract.most_responsive(out, labels, 2)
    assert neurons.tolist() == [0, 2, 1, 3] and classes.tolist() == [0, 0, 1, 1]


def test_every_registry_command_is_a_valid_config(capsys, tmp_path):
    """--dry-run of each command (the figures' and every table's); a --trained_path is pointed at a folder with
    the trained run's config."""
    for entry in [*figures_registry.REGISTRY.values(), *figures_registry.OTHER_TABLES.values()]:
        for src in entry.sources.values():
            parts = shlex.split(src.produce(tmp_path))
            argv = parts[3:]
            if "--trained_path" in argv:
                trained = Path(argv[argv.index("--trained_path") + 1])
                trained.mkdir(parents=True, exist_ok=True)
                preset = REPO / argv[argv.index("--json_path") + 1] / "config.json"
                (trained / "config.json").write_text(preset.read_text())
            argv[argv.index("--json_path") + 1] = str(REPO / argv[argv.index("--json_path") + 1])
            assert cli.main(RULES[parts[2]], [*argv, "--dry-run"]) == 0, src.produce()
            assert '"action"' in capsys.readouterr().out


def test_readme_figures_section_shows_registry_commands_and_drawn_pngs():
    section = (REPO / "docs/figures.md").read_text().split("\n## Figures\n", 1)[1].split("\n## ", 1)[0]
    named = re.findall(r"`(python -m (?:bp|ep)\.main [^`]*|python -m funcs\.figures extract [^`]*)`", section)
    assert len(named) >= 8 and set(named) <= set(figures.commands("simuResults"))
    images = re.findall(r"\]\(\.\./(figuresPlot/[^)]+\.png)\)", section)
    assert images and all((REPO / png).is_file() and Path(png).stem in figures.DRAW for png in images)


def _config_of(src: figures_registry.Source):
    """The Config a figure's command trains (its --json_path and --set arguments, read by the real loader)."""
    words = src.command.split()
    sets = [words[i + 1] for i, w in enumerate(words) if w == "--set"]
    return config_mod.load(REPO / words[words.index("--json_path") + 1], sets)


def test_figure13_keeps_the_2000_output_presets_step_per_neuron():
    """BP's MSE is a mean over n outputs, so lr / n (and k / n, rounded, at least 1) stay the 2,000-output
    preset's; EP's nudge is per neuron, so its lr stays the preset's."""
    bp_2000, ep_2000 = (config_mod.load(REPO / f"configFile/unsupervised_{rule}/1layer") for rule in ("bp", "ep"))
    assert bp_2000.fcLayers[-1] == ep_2000.fcLayers[-1] == 2000
    for n in figures_registry.N_OUT:
        bp, ep = _config_of(figures_registry.N_OUT_RUNS[f"bp/{n}"]), _config_of(figures_registry.N_OUT_RUNS[f"ep/{n}"])
        assert bp.fcLayers[-1] == ep.fcLayers[-1] == n
        assert bp.lr[0] / n == pytest.approx(bp_2000.lr[0] / 2000)
        assert ep.lr == ep_2000.lr
        assert bp.nudge == max(1, int(bp_2000.nudge * n / 2000 + 0.5))  # rounded half up: 2.5 -> 3
        assert ep.nudge == max(1, int(ep_2000.nudge * n / 2000 + 0.5))
    assert _config_of(figures_registry.N_OUT_RUNS["bp/10"]).lr == (0.04,)


def test_label_share_table_sets_each_read_out_beside_the_originals_same_share(results):
    curves = {"bp_1layer": {"shares": {"1": {"seeds": 3, "direct": [94.5, 0.25], "linear": [95.0, 0.11]}}}}
    lines = tables.original_label_share_table("", results, curves).splitlines()
    rows = {tuple(line.split(" | ")[:2]): line.split(" | ") for line in lines if line.startswith("| ")}
    one = rows[("| unsupervised BP 1-layer", "1 %")]
    rec = records.read_run(results / "label_share/bp_1layer_trained/1")
    ours = [tables._number(rec.value(metric)) for metric in ("direct_association_mean", "linear_classifier")]
    assert one[2] == " / ".join(ours) and one[3] == f"[label_share/bp_1layer_trained/1]({results}/label_share/bp_1" \
                                                  "layer_trained/1)"
    assert one[4:] == ["94.50 ± 0.25 / 95.00 ± 0.11", "3 |"]
    assert rows[("| unsupervised BP 1-layer", "5 %")][4:] == ["-", "- |"]  # a share the original has no runs of
    assert rows[("| unsupervised EP 2-layer", "1 %")][2:4] == ["- / -", "not run"]
