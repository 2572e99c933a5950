"""The paper's tables beside ours, every number of ours read from a run folder: as text and as markdown in the docs.

`python -m funcs.figures tables` prints them; `python -m funcs.figures readme`
rewrites the generated blocks of README.md and docs/*.md, each the text between
`<!-- results:begin NAME -->` and `<!-- results:end NAME -->`: NAME is a table
of `funcs.figures_registry.TABLES` (one line per network and method), `summary`
(README's: the paper's Tables 3, 4 and 5, one line per run), `original_semi` (our
semi-supervised runs beside the original code's), `original_seeds` (Table 5's
seeds beside the original's, seed by seed), `original_code` (runs by the
original's own code), `original_cnn` (the original's CNN runs behind Table 4),
`original_mlp` (Table 3's MLPs beside the original's runs at the same epoch)
or `original_label_share` (Figures 4 and 5 as numbers, beside the original's
runs). A test fails when a
committed block differs from what the command writes now, so no number of ours
in the docs is typed by hand.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from funcs import config as config_mod
from funcs import original_curves
from funcs.figures_registry import (DIRECT, LABEL_NETWORKS, LINEAR, METRICS, MLP, PAPER_ONLY_ROWS, PAPER_RULES,
                                    REGISTRY, REPO, SEEDS, SEMI, SEMI_LABELS, SEMI_SEEDS, SEMI_VARIANTS, SHARES,
                                    TABLE4_PAPER, TABLE_ROWS, TABLES, Paper, Source, semi_key)
from funcs.records import find, read_run
from funcs.results import COSTS, half_up, mean_and_std

RESULTS = REPO / "simuResults"  # what the docs describe: our committed runs
BLOCK = re.compile(r"(<!-- results:begin (\w+) -->\n).*?(<!-- results:end \2 -->)", re.S)
SUMMARY_TABLES = {"table3": "3", "table4": "4", "table5": "5"}  # README's summary: the paper's own tables, by number


@dataclass
class Row:
    """One line of a table: the paper's number and ours, traceable to its folder."""
    what: str
    method: str
    paper: Paper | None
    source: Source | None = None  # None: a line only the paper has
    metric: str = ""
    mean: float | None = None
    std: float | None = None  # over seeds; None for one seed
    seeds: int = 0
    epochs: str = ""  # '200 of 200 epochs' (and its training images if a subset), from the folder's config and rows
    folder: str = ""  # relative to the results root; "" when not run
    command: str = ""  # what writes the folder, under the results root as given


def _shown(root: Path) -> Path:
    """A results root as a command names it: relative to the repository when inside it."""
    root = Path(root).resolve()
    return root.relative_to(REPO) if root.is_relative_to(REPO) else root


def table(name: str, results=RESULTS) -> list[Row]:
    """The rows of a table: paper beside ours (mean, std, seeds, epochs run, folder), then the paper's alone."""
    entry, root = TABLES[name], Path(results)
    rows = []
    for key, what, method, metric, paper_key in TABLE_ROWS[name]:
        src = entry.sources[key]
        row = Row(what, method, entry.paper.get(paper_key), src, metric, command=src.produce(_shown(root)))
        rec = find(root, src)
        if rec is not None:
            row.folder, row.seeds = str(rec.folder.relative_to(root)), len(rec.seeds)
            row.epochs = rec.describe(src.full_epochs, seeds=False)
            row.mean = rec.value(metric)
            row.std = rec.std.get(metric) if row.mean is not None and row.seeds > 1 else None
        rows.append(row)
    return rows + [Row(what, method, paper) for what, method, paper in PAPER_ONLY_ROWS.get(name, [])]


def _number(mean: float | None, std: float | None = None, digits: int = 2) -> str:
    """'95.85 ± 0.01', '80.24' (one run), '-' (none)."""
    if mean is None:
        return "-"
    return half_up(mean, digits) + (f" ± {half_up(std, digits)}" if std is not None else "")


def _digits(row: Row) -> int:
    """Accuracies (%) to 2 decimals, a regression's cost (about 0.04) to 4."""
    return 4 if row.metric in COSTS else 2


def _paper(row: Row) -> str:
    return _number(row.paper.mean, row.paper.std, _digits(row)) if row.paper else "-"


def _ours(row: Row) -> str:
    return "(paper only)" if row.source is None else _number(row.mean, row.std, _digits(row))


def format_table(name: str, results=RESULTS) -> str:
    """A table as text: paper mean ± std, ours mean ± std, seeds, epochs run, folder (or the missing command)."""
    header = ["network", "method", "paper", "ours", "seeds", "epochs", "folder"]
    lines = [[r.what, r.method, _paper(r), _ours(r), str(r.seeds or "-"), r.epochs or "-",
              r.folder or (f"missing: {r.command}" if r.source else "")] for r in table(name, results)]
    widths = [max(len(x[i]) for x in [header, *lines]) for i in range(len(header) - 1)]
    text = [TABLES[name].title]
    for line in [header, *lines]:
        text.append("  ".join(cell.ljust(w) for cell, w in zip(line, widths)) + "  " + line[-1])
    return "\n".join(text)


def print_tables(results=RESULTS) -> None:
    """The paper's Tables 3, 4 and 5 and ours beyond them, paper beside ours."""
    for name in TABLES:
        print(format_table(name, results) + "\n")


# --- markdown, for README.md and docs/ ------------------------------------------------------------

def _markdown(header: list[str], lines: list[list[str]]) -> str:
    return "\n".join("| " + " | ".join(cells) + " |" for cells in [header, ["---"] * len(header), *lines])


def _run(row: Row, root: str, command: bool = True) -> str:
    """Seeds and epochs, linked to the folder (`root`: the results root from the page); when not run, says so
    (with the command that runs it)."""
    if not row.folder:
        return f"not run: `{row.command}`" if command else "not run"
    planned = row.source.seeds if row.source is not None else row.seeds
    seeds = (f"{row.seeds} of {planned} seeds" if row.seeds < planned else
             f"{row.seeds} seed" + ("s" if row.seeds != 1 else ""))  # a seeds root whose other seeds are to come
    return f"[{', '.join(p for p in (seeds, row.epochs) if p)}]({root}{row.folder})"


def _root_link(link: str, results) -> str:
    """The results root as a page links it: `link` is the repository from the page's folder ("" or "../")."""
    return f"{link}{_shown(results).as_posix()}/"


def markdown_table(name: str, link: str, results=RESULTS) -> str:
    """A table in markdown, one line per network and method; `link`: the repository from the page's folder."""
    rows, root = table(name, results), _root_link(link, results)
    return f"{TABLES[name].title}:\n\n" + _markdown(
        ["network", "method", "paper", "ours", "our run"],
        [[r.what, r.method, _paper(r), _ours(r), _run(r, root) if r.source else ""] for r in rows])


def summary_table(link: str, results=RESULTS) -> str:
    """README's table: the paper's Tables 3, 4 and 5, one line per run (direct / linear of an unsupervised one)."""
    lines, root = [], _root_link(link, results)
    for name, number in SUMMARY_TABLES.items():
        runs: dict[str, list[Row]] = {}
        for row in table(name, results):
            if row.source is not None:
                runs.setdefault(row.source.path, []).append(row)
        for rows in runs.values():
            methods = [r.method for r in rows]
            lines.append([number, rows[0].what if methods == [DIRECT, LINEAR] else f"{rows[0].what}: {methods[0]}",
                          " / ".join(map(_paper, rows)), " / ".join(map(_ours, rows)),
                          _run(rows[0], root, command=False)])
    return (f"Test accuracy (%) at the last epoch, mean ± sample std over seeds; two numbers: {DIRECT} / {LINEAR}."
            "\n\n" +
            _markdown(["table", "network", "paper", "ours", "our run"], lines))


def _end_at_our_phase_1(rec, curve: dict | None, epochs: int) -> tuple[float, float] | None:
    """Their end as their seeds' phase 1 predicts it for our run: only for one run of ours that went as far."""
    if rec is None or not curve or epochs != len(curve["mean"]) or len(rec.seeds) != 1 \
            or rec.value("after_phase_1") is None:
        return None
    return original_curves.end_given_phase_1(curve, rec.value("after_phase_1"))


def _original_row(key: str, rec, curve: dict | None, root_link: str, root: Path) -> list[str] | None:
    """One line of `original_table`: our run (rec, None if not run) and the original's curve (None if absent)."""
    rows = rec.phase_rows if rec is not None and rec.phase_rows else (0, 0)  # epochs we ran of each phase
    epochs = rows[1]
    if curve is None and not any(rows):
        return None

    def ours(metric: str) -> str:  # '-' where the run has not got this far (a run still in phase 1: no test yet)
        if not any(rows):
            return "-"
        return _number(rec.value(metric), rec.std.get(metric) if len(rec.seeds) > 1 else None)

    def theirs(pair) -> str:
        return "-" if curve is None or pair is None else _number(*pair)

    rule, labels, variant = key.split("/")
    same = original_curves.at_epoch(curve, epochs) if curve and epochs else None
    end = (curve["mean"][-1], curve["std"][-1]) if curve else None
    at_ours = _end_at_our_phase_1(rec, curve, epochs)
    run = f"[{rec.describe(SEMI[key].full_epochs)}]({root_link}{rec.folder.relative_to(root)})" if any(rows) \
        else "not run"
    return [f"{rule.upper()}, {labels} labels", SEMI_VARIANTS[variant], ours("after_phase_1"),
            theirs(curve and curve["after_phase_1"]), str(epochs or "-"), ours("test"), theirs(same), theirs(end),
            theirs(at_ours), str(curve["seeds"]) if curve else "-", run]


def original_table(link: str, results=RESULTS, curves: dict | None = None) -> str:
    """Our semi-supervised runs beside the original code's own runs at the same phase-2 epoch and at their end
    (funcs.original_curves): a run of ours stopped early is compared with where theirs stood then."""
    curves = original_curves.load() if curves is None else curves
    root = Path(results)
    keys = [semi_key(rule, labels, variant) for rule in PAPER_RULES for labels in SEMI_LABELS
            for variant in ("wta_homeostasis", "wta")]
    lines = [_original_row(key, find(root, SEMI[key]), curves.get(key), _root_link(link, results), root)
             for key in keys]
    return ("Semi-supervised MNIST, test accuracy (%): ours beside the original code's runs (mean ± std over their "
            "seeds) after phase 1, after as many phase-2 epochs as ours ran, and at their end (the paper's Table 5); "
            "for a run of ours that went as far as theirs, also their end as the line through their seeds' "
            "(after phase 1, end) pairs puts it at our phase-1 accuracy, ± the spread of a new run about that line "
            "(`funcs.original_curves.end_given_phase_1`)."
            "\n\n" + _markdown(["run", "variant", "after phase 1: ours", "original", "phase-2 epochs (ours)", "ours",
                                "original, same epoch", "original, end", "original, end at our phase 1",
                                "original seeds", "our run"],
                               [line for line in lines if line is not None]))


def _over_seeds(values: list[float]) -> str:
    """Mean ± sample std of our seeds' values ('-' for none)."""
    return _number(*mean_and_std(values)) if len(values) > 1 else _number(values[0] if values else None)


def seeds_against_line(rec, curve: dict | None) -> list[tuple[float, float, float | None]]:
    """Each finished seed of a Table 5 seeds root (rec): its accuracy after phase 1, at the end, and the original's
    line through their seeds at that phase 1 (`end_given_phase_1`; None without a line of theirs)."""
    seeds = [read_run(rec.folder / f"S-{s}") for s in rec.seeds]
    fits = [original_curves.end_given_phase_1(curve, r.value("after_phase_1")) if curve else None for r in seeds]
    return [(r.value("after_phase_1"), r.value("test"), fit and fit[0]) for r, fit in zip(seeds, fits)]


def _seeds_row(key: str, rec, curve: dict | None, root_link: str, root: Path) -> list[str]:
    """One line of `original_seeds_table`: a Table 5 seeds root (rec) beside the original's line, seed by seed."""
    seeds = seeds_against_line(rec, curve)
    lines = [line for _, _, line in seeds if line is not None]
    gaps = [end - line for _, end, line in seeds if line is not None]
    rule, labels = key.split("/")
    return [f"{rule.upper()}, {labels} labels", str(len(seeds)),
            _over_seeds([p1 for p1, _, _ in seeds]), _number(*curve["after_phase_1"]) if curve else "-",
            _over_seeds([end for _, end, _ in seeds]),
            _number(curve["mean"][-1], curve["std"][-1]) if curve else "-", _over_seeds(lines),
            ", ".join(f"{gap:+.2f}" for gap in gaps) or "-",
            f"{sum(gap < 0 for gap in gaps)} of {len(gaps)}" if gaps else "-",
            f"[{', '.join(f'S-{s}' for s in rec.seeds)}]({root_link}{rec.folder.relative_to(root)})"]


def original_seeds_table(link: str, results=RESULTS, curves: dict | None = None) -> str:
    """Table 5's seeds (each its own labeled subset) against the original code's seeds: each seed's end beside the
    line through theirs at its own phase-1 accuracy (`end_given_phase_1`), so a cell short of the paper shows
    whether its phase 1 or its phase 2 falls short."""
    curves = original_curves.load() if curves is None else curves
    root = Path(results)
    recs = {key: read_run(root / src.path) for key, src in SEMI_SEEDS.items()}
    lines = [_seeds_row(key, rec, curves.get(semi_key(*key.split("/"), "wta_homeostasis")), _root_link(link, results),
                        root) for key, rec in recs.items() if rec is not None and rec.seeds]
    return ("Table 5's runs seed by seed against the original code's seeds, test accuracy (%), + WTA + homeostasis: "
            "after phase 1 and at the end, ours (mean ± sample std over our finished seeds) and theirs (mean ± std "
            "over theirs); the line through their seeds' (after phase 1, end) pairs at each of our seeds' phase-1 "
            "accuracy (mean over our seeds), and each seed's end less that line: a seed under it gained less in "
            "phase 2 than their seeds with its phase 1 did (`funcs.original_curves.end_given_phase_1`)."
            "\n\n" + _markdown(["run", "our seeds", "after phase 1: ours", "original", "end: ours", "original",
                                "original's line at our phase 1", "ours less the line, each seed", "under the line",
                                "our runs"], lines))


CODE_STEP = 50  # the original-code table's columns: every CODE_STEP-th phase-2 epoch (and the last planned)


def _code_epochs(planned: int) -> list[int]:
    return list(range(CODE_STEP, planned + 1, CODE_STEP)) + ([planned] if planned % CODE_STEP else [])


def _code_row(config: str, name: str, after_phase_1: float | None, accuracy: list[float], planned: int,
              epochs: list[int], curve: dict | None) -> list[str]:
    """One line of `original_code_table`: a run's accuracy at the table's epochs and, once it has run all
    `planned` phase-2 epochs, the original's line at its phase 1 and its end's distance from it in spreads."""
    line = (original_curves.end_given_phase_1(curve, after_phase_1)
            if curve and after_phase_1 is not None and len(accuracy) == planned else None)
    return [config, name, _number(after_phase_1),
            *(_number(accuracy[e - 1]) if e <= len(accuracy) else "-" for e in epochs),
            _number(*line) if line else "-", f"{(accuracy[-1] - line[0]) / line[1]:+.1f}" if line else "-"]


def original_code_table(link: str, results=RESULTS, curves: dict | None = None) -> str:
    """The runs by the original's own code (`bench.original_semi`), each beside the run of ours it started from
    and the original's mean curve moved to that run's phase 1: whether a gap to the paper is in our code."""
    curves = original_curves.load() if curves is None else curves
    root, root_link = Path(results), _root_link(link, results)
    runs = sorted((original_curves.read_code_run(folder, root) | {"folder": folder}
                   for folder in original_curves.code_runs(root)),
                  key=lambda run: (run["key"].split("/")[0], int(run["key"].split("/")[1]), run["source"]))
    epochs = _code_epochs(max((run["epochs"] for run in runs), default=0))
    lines = []
    for source in dict.fromkeys(run["source"] for run in runs):  # each run of ours once: by rule, labels
        group = sorted((run for run in runs if run["source"] == source), key=lambda run: run["whole"])
        ours, key = group[0]["ours"], group[0]["key"]
        rule, labels, _ = key.split("/")
        config, curve = f"{rule.upper()}, {labels} labels", curves.get(key)
        if ours is None:
            lines.append(_code_row(config, f"ours: {source} (not among these results)", None, [], 0, epochs, None))
        else:
            ours_p1 = original_curves.phase_1_accuracy(ours)
            lines.append(_code_row(config, f"ours: [{source}]({root_link}{ours.relative_to(root).as_posix()})",
                                   ours_p1, original_curves.phase_2_accuracy(ours), read_run(ours).config["epochs"],
                                   epochs, curve))
        for run in group:
            what = "both phases, that seed and labeled subset" if run["whole"] else "phase 2 from that network"
            lines.append(_code_row(config, f"the original's code, {what}: [{run['folder'].name}]({root_link}"
                                           f"{run['folder'].relative_to(root).as_posix()})",
                                   run["after_phase_1"], run["accuracy"], run["epochs"], epochs, curve))
        if ours is not None and curve:
            moved = [mean + ours_p1 - curve["after_phase_1"][0] for mean in curve["mean"]]
            lines.append(_code_row(config, f"the original's mean over its {curve['seeds']} seeds, moved by the "
                                           "difference in phase 1", ours_p1, moved, len(moved), epochs, None))
    return ("Phase 2 (or both phases) of one of our semi-supervised BP runs trained by the original repository's "
            "own code (`python -m bench.original_semi`: its loop, optimizers, schedules, target, loss and network; "
            "that run's config and labeled subset), test accuracy (%) after phase 1 and at phase-2 epochs, beside "
            "our run and beside the original's mean curve moved up or down by the difference in phase 1. The last "
            "two columns, for a run that went all the way: the line through the original's seeds' (after phase 1, "
            "end) pairs at the run's own phase 1 (± the spread of a new run about it), and the run's end less that "
            "line in those spreads (`funcs.original_curves.end_given_phase_1`)."
            "\n\n" + _markdown(["configuration", "run", "after phase 1", *(f"epoch {e}" for e in epochs),
                                "original's line at this phase 1", "end less the line (spreads)"], lines))


PRESETS_CNN = REPO / "configFile" / "unsupervised_bp" / "cnn"  # our CNN presets: the paper's Table 9


def _differences(recorded: dict, preset: dict) -> str:
    """The keys a config the original's runs recorded sets otherwise than our preset: '`lr` [..] (ours [..])'.
    Keys it does not have are left out; its fcLayers lead with the flattened convolutions (an older format)."""
    theirs, ours = ({**cfg, "fcLayers": list(cfg.get("fcLayers", []))[-1:]} for cfg in (recorded, preset))
    keys = [k for k in ours if k in theirs and k != "device" and theirs[k] != ours[k]]
    return "; ".join(f"`{k}` {json.dumps(theirs[k])} (ours {json.dumps(ours[k])})" for k in keys) or "none"


def original_cnn_table(link: str, results=RESULTS, readouts: dict | None = None) -> str:
    """The original's own CNN runs behind the paper's Table 4 (`funcs.original_curves.read_cnn_checkout`): their
    final read-outs' mean and population std beside the paper's number, and where the config they recorded differs
    from our presets."""
    readouts = original_curves.load_cnn() if readouts is None else readouts
    lines = []
    for name, d in readouts.items():
        final = np.array(d["final"])
        paper = TABLE4_PAPER.get(f"{name}/linear")
        preset = PRESETS_CNN / name / "config.json"
        differs = (_differences(d["config"], config_mod.read_json(preset)) if d["config"] and preset.is_file()
                   else "-")
        lines.append([name, _number(paper.mean, paper.std) if paper else "-",
                      f"{_number(float(final.mean()), float(final.std()))} ({len(final)} runs)",
                      f"{half_up(float(final.min()), 2)} to {half_up(float(final.max()), 2)}",
                      f"{', '.join(d['config_of']) or '-'}: {differs}"])
    return ("The original repository's own unsupervised CNN runs (`simuResults/unsupervised_cnn/<dataset>/bp-<n>/`, "
            "read by `python -m funcs.original_curves --cnn CHECKOUT` into `docs/original_cnn_readouts.json`): the "
            "test accuracy (%) after each run's final linear read-out, mean and population std over the runs, "
            "beside the paper's Table 4; and the keys in which the config that one of them recorded differs from "
            "our preset (`configFile/unsupervised_bp/cnn/<dataset>`, the paper's Table 9)."
            "\n\n" + _markdown(["dataset", "paper", "the original's runs", "range",
                                 "recorded config (run): where it differs from our preset"], lines))


def original_mlp_table(link: str, results=RESULTS, curves: dict | None = None) -> str:
    """Table 3's MLP runs of ours beside the original's own runs at the same epoch (their direct association per
    epoch, `funcs.original_curves.read_mlp_checkout`), and at their end: where a run of ours that stopped early
    (EP 784-2000-2000) stands on their way."""
    curves = original_curves.load_mlp() if curves is None else curves
    root, root_link = Path(results), _root_link(link, results)
    lines = []
    for key, curve in curves.items():
        if "mean" not in curve:  # an untrained network: no epochs
            continue
        rec = find(root, SEEDS.get(key, MLP[key]))
        epoch, end = (rec.epochs_run if rec else None), len(curve["mean"])
        theirs = original_curves.at_epoch(curve, epoch) if epoch else None
        ours = rec.value(METRICS["direct"]) if rec else None
        lines.append([MLP[key].label,
                      _number(ours, rec.std.get(METRICS["direct"]) if len(rec.seeds) > 1 else None) if rec else "-",
                      f"[{rec.describe(MLP[key].full_epochs)}]({root_link}{rec.folder.relative_to(root).as_posix()})"
                      if rec else "not run", _number(*theirs) if theirs else "-",
                      f"{_number(*original_curves.at_epoch(curve, end))} (epoch {end})", str(curve["seeds"])])
    return ("Direct association, test accuracy (%): our run of each of Table 3's MLPs at its last epoch, beside the "
            "original repository's own runs with all labels at that epoch and at their end (mean ± population std "
            "over their seeds; `docs/original_mlp_curves.json`, written by `python -m funcs.original_curves --mlp "
            "CHECKOUT`). Their end is the paper's Table 3."
            "\n\n" + _markdown(["network", "ours", "our run", "the original's runs at our last epoch",
                                 "the original's runs at their end", "their seeds"], lines))


def original_label_share_table(link: str, results=RESULTS, curves: dict | None = None) -> str:
    """Figures 4 and 5 as numbers: each network's read-outs of ours with a share of the labels beside the original
    repository's own runs of that network with the same share (`funcs.original_curves.read_mlp_checkout`)."""
    curves = original_curves.load_mlp() if curves is None else curves
    sources = {**REGISTRY["fig4_label_share_untrained"].sources, **REGISTRY["fig5_label_share_2layer"].sources}
    root, root_link = Path(results), _root_link(link, results)
    lines = []
    for net, network in LABEL_NETWORKS.items():
        theirs = curves.get(network.original, {}).get("shares", {})
        for share in SHARES:
            rec = find(root, sources[f"{net}/{share}"])
            ours = " / ".join(_number(rec.value(METRICS[m]) if rec else None) for m in ("direct", "linear"))
            folder = rec.folder.relative_to(root).as_posix() if rec else None
            their = theirs.get(str(share))
            lines.append([network.legend, f"{share} %", ours, f"[{folder}]({root_link}{folder})" if rec else "not run",
                          " / ".join(_number(*their[m]) for m in ("direct", "linear")) if their else "-",
                          str(their["seeds"]) if their else "-"])
    return ("Test accuracy (%) by share of the labels used to read a network out, direct association / linear "
            "classifier: ours (one read-out each) beside the original repository's own runs of that network with "
            "that share (mean ± population std over their seeds; `docs/original_mlp_curves.json`). With all labels "
            "their means are the paper's Table 3."
            "\n\n" + _markdown(["network", "labels", "ours", "our read-out", "the original's runs", "their seeds"],
                                 lines))


# The generated blocks beyond the paper's tables (TABLES), by name: each takes the page's `link` and the results.
BLOCKS = {"summary": summary_table, "original_semi": original_table, "original_seeds": original_seeds_table,
          "original_code": original_code_table, "original_cnn": original_cnn_table,
          "original_mlp": original_mlp_table, "original_label_share": original_label_share_table}


def block(name: str, link: str, results=RESULTS) -> str:
    """The generated text of a block named `name` in a page whose folder reaches the repository by `link`."""
    if name in BLOCKS:
        return BLOCKS[name](link, results)
    if name not in TABLES:
        raise KeyError(f"no generated block {name!r}: one of {', '.join([*BLOCKS, *TABLES])}")
    return markdown_table(name, link, results)


def render(text: str, link: str, results=RESULTS) -> str:
    """A markdown page with each of its blocks rewritten from the run folders under `results`."""
    return BLOCK.sub(lambda m: m[1] + block(m[2], link, results) + "\n" + m[3], text)


def pages() -> list[Path]:
    """The markdown pages that may hold blocks: README.md and docs/*.md."""
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def generated(results=RESULTS) -> dict[Path, str]:
    """Each page that holds a block, as `render` writes it now."""
    out = {}
    for page in pages():
        text = page.read_text()
        if BLOCK.search(text):
            link = os.path.relpath(REPO, page.parent).replace(os.sep, "/")
            out[page] = render(text, "" if link == "." else link + "/", results)
    return out


def write_docs(results=RESULTS) -> list[Path]:
    """Rewrite the pages whose blocks are stale; returns them."""
    written = []
    for page, text in generated(results).items():
        if page.read_text() != text:
            page.write_text(text)
            written.append(page)
    return written
