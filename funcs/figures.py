"""The paper's figures redrawn from our own run folders, and the command line of `make figures` and the notebook.

The registry (`funcs.figures_registry.REGISTRY`) says which folders each figure
reads, the commands that write them and the paper's numbers; `funcs.records`
reads a folder back and `funcs.tables` makes the tables. Here each figure is
drawn into `<out>/<name>.png`, and `main` is `python -m funcs.figures`.

Nothing here trains. A run that is missing is left out of its figure and its
command is printed (a figure with no data at all becomes a PNG that says which
commands produce it); a shortened or unfinished run is labelled from what its
own folder says ("108 of 200 epochs (unfinished), 1 seed"). A damaged
extracted array counts as missing, in one line. The paper's numbers only ever
appear as reference markers or columns marked "paper".

    python -m funcs.figures draw --results simuResults --out figuresPlot
    python -m funcs.figures tables --results simuResults
    python -m funcs.figures readme                     # the results tables of README.md and docs/, regenerated
    python -m funcs.figures commands --missing         # what to run for the missing data
    python -m funcs.figures extract max_activation simuResults/unsupervised_bp_1layer --data_dir data
    python -m funcs.figures notebook                   # reproduce_figures.ipynb, headless
"""
from __future__ import annotations

import math
import re
import shlex
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from funcs import original_curves, plots, tables
from funcs.errors import OneLineParser, UserError, one_line_errors
from funcs.figures_registry import (LABEL_NETWORKS, METRICS, N_OUT, PAPER_RULES, REGISTRY, REPO, SEMI_LABELS,
                                    SEMI_METRIC, SEMI_VARIANTS, SHARES, Entry, semi_key)
from funcs.records import NPZ_ERRORS, Record, find, find_file, read_npz

NOTEBOOK = REPO / "reproduce_figures.ipynb"


# --- what a drawing returns -------------------------------------------------------------------

@dataclass
class Point:
    """One plotted value and where it comes from."""
    x: float | str
    y: float
    std: float
    folder: Path
    metric: str


@dataclass
class Drawn:
    """A drawn figure: its PNG (None if nothing could be drawn), the plotted series, what is missing."""
    name: str
    path: Path | None
    series: dict[str, list[Point]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # commands that would produce the missing data
    notes: list[str] = field(default_factory=list)  # which run folders, and how shortened
    remarks: list[str] = field(default_factory=list)  # about the missing ones

    @property
    def has_data(self) -> bool:
        return any(self.series.values())

    def report(self) -> str:
        n = sum(len(v) for v in self.series.values())
        lines = [f"{self.name}: {n} values plotted from {len({p.folder for v in self.series.values() for p in v})} "
                 f"folders -> {self.path}"]
        lines += [f"  {note}" for note in self.notes]
        if self.missing:
            lines.append(f"  missing ({len(self.missing)}), produced by:")
            lines += [f"    {cmd}" for cmd in self.missing]
            lines += [f"  note: {remark}" for remark in self.remarks]
        return "\n".join(lines)


def _save(fig, path: Path, footnotes: list[str]) -> Path:
    """plots.save, with the footnotes (notes on the run folders) under the plot."""
    if not footnotes:
        return plots.save(fig, path)
    text = "\n".join(footnotes[:12]) + (f"\n... and {len(footnotes) - 12} more" if len(footnotes) > 12 else "")
    fig.text(0.01, 0.005, text, fontsize=6.5, va="bottom", ha="left", family="monospace")
    return plots.save(fig, path, rect=(0, min(0.45, 0.03 + 0.022 * min(len(footnotes) + 1, 14)), 1, 1))


def _placeholder(entry: Entry, out: Path, missing: list[str]) -> Path:
    """The PNG of a figure without any data: its title and the commands that produce the data."""
    plt = plots.pyplot()
    fig = plt.figure(figsize=(11, 1 + 0.15 * min(len(missing), 25)))
    lines = [entry.title, "", "No data yet. Produced by:"] + [f"  {c}" for c in missing[:24]]
    if len(missing) > 24:
        lines.append(f"  ... and {len(missing) - 24} more (python -m funcs.figures commands --missing)")
    fig.text(0.01, 0.98, "\n".join(lines), va="top", ha="left", fontsize=7, family="monospace")
    return _save(fig, out / f"{entry.name}.png", [])


class _Collector:
    """Reads an entry's sources under a root; remembers what is missing and how each run was shortened."""

    def __init__(self, entry: Entry, root: Path):
        self.entry, self.root = entry, Path(root)
        self.missing: list[str] = []
        self.notes: list[str] = []
        self.remarks: list[str] = []  # about missing runs: printed, not drawn
        self._seen: set[Path] = set()

    def _missing(self, command: str) -> None:
        if command not in self.missing:
            self.missing.append(command)

    def record(self, key: str) -> Record | None:
        src = self.entry.sources[key]
        rec = find(self.root, src)
        if rec is None:
            self._missing(src.produce(self.root))
            if src.file:
                self._missing(src.extract_command(self.root))
            if src.note and f"{src.path}: {src.note}" not in self.remarks:
                self.remarks.append(f"{src.path}: {src.note}")
            return None
        if rec.folder not in self._seen:
            self._seen.add(rec.folder)
            self.notes.append(f"{rec.folder.relative_to(self.root)}: {rec.describe(src.full_epochs)}")
        return rec

    def value(self, key: str, metric: str, x) -> Point | None:
        rec = self.record(key)
        if rec is None:
            return None
        y = rec.value(metric)
        if y is None:
            self.notes.append(f"{rec.folder.relative_to(self.root)}: no {metric} yet")
            return None
        return Point(x, y, rec.std.get(metric, 0.0), rec.folder, metric)

    def file(self, key: str, names: tuple[str, ...]) -> tuple[Record, Path, dict[str, np.ndarray]] | None:
        """The source's extracted arrays (which must hold `names`) with its record and file.

        None when the run or the file is missing, or the file is damaged (an
        interrupted extraction of older code, a foreign file): the source is then
        left out, its extract command listed as missing and, if damaged, one
        remark names the file and the error.
        """
        src = self.entry.sources[key]
        rec = self.record(key)
        if rec is None:
            return None
        path = find_file(rec, src.file)
        if path is None:
            self._missing(src.extract_command(self.root))
            return None
        try:
            return rec, path, read_npz(path, names)
        except NPZ_ERRORS as err:
            self._missing(src.extract_command(self.root))
            self.remarks.append(f"{path}: damaged ({err.__class__.__name__}: {err}); left out, rewrite it with "
                                f"{src.extract_command(self.root)}")
            return None


def _figure(entry: Entry, c: _Collector, series: dict[str, list[Point]], out: Path, plot: Callable,
            footnotes: bool = True) -> Drawn:
    """What every figure returns: `plot(plt)` draws the series into a matplotlib figure, saved as
    `<out>/<name>.png` (with the collector's notes on its folders as footnotes); without a single point,
    the placeholder PNG listing the commands that produce the data."""
    drawn = Drawn(entry.name, None, series, c.missing, c.notes, c.remarks)
    if drawn.has_data:
        drawn.path = _save(plot(plots.pyplot()), out / f"{entry.name}.png", c.notes if footnotes else [])
    else:
        drawn.path = _placeholder(entry, out, c.missing)
    return drawn


# --- the figures ----------------------------------------------------------------------------

def draw_fig2(entry: Entry, root: Path, out: Path) -> Drawn:
    """Grouped bars: direct association and linear classifier of each network; the paper's as markers."""
    c = _Collector(entry, root)
    groups = [k for k in entry.sources if not k.startswith("supervised")]
    series: dict[str, list[Point]] = {"direct association": [], "linear classifier": [], "supervised": []}
    for key in groups:
        for method, name in (("direct", "direct association"), ("linear", "linear classifier")):
            p = c.value(key, METRICS[method], entry.sources[key].label)
            if p:
                series[name].append(p)
        sup = f"supervised_{key}"
        if sup in entry.sources:
            p = c.value(sup, "test", entry.sources[key].label)
            if p:
                series["supervised"].append(p)

    def plot(plt):
        fig, ax = plt.subplots(figsize=(11, 5))
        labels = [entry.sources[k].label for k in groups]
        xs = {label: i for i, label in enumerate(labels)}
        width = 0.27
        for j, (name, points) in enumerate(series.items()):
            if points:
                ax.bar([xs[p.x] + (j - 1) * width for p in points], [p.y for p in points], width,
                       yerr=[p.std for p in points], label=f"ours: {name}", capsize=2)
        for j, method in enumerate(("direct", "linear", "supervised")):
            refs = [(xs[entry.sources[k].label], entry.paper.get(f"{k}/{method}")) for k in groups]
            refs = [(x, p) for x, p in refs if p is not None]
            ax.plot([x + (j - 1) * width for x, _ in refs], [p.mean for _, p in refs], "k_", markersize=18,
                    markeredgewidth=2, label="paper (Tables 3, 4), at its bar's place" if j == 0 else None)
        ax.set_xticks(range(len(labels)), labels, rotation=15, fontsize=8)
        values = [p.y for v in series.values() for p in v]
        ax.set_ylim(max(0, min(values + [90]) - 5), 100)
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(entry.title)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        return fig
    return _figure(entry, c, series, out, plot)


def draw_label_share(entry: Entry, root: Path, out: Path, originals: dict | None = None) -> Drawn:
    """Figures 4 and 5: accuracy against the share of labels (1, 5, 50, 100 %), direct association and linear
    classifier, one line per network of LABEL_NETWORKS, each beside the original repository's own runs of that
    network (`originals`: funcs.original_curves.load_mlp(); their mean ± std, a bar in the network's colour)."""
    originals = original_curves.load_mlp() if originals is None else originals
    c = _Collector(entry, root)
    networks = list(dict.fromkeys(k.rsplit("/", 1)[0] for k in entry.sources))
    series = {}
    for method in ("direct", "linear"):
        for net in networks:
            points = [c.value(f"{net}/{s}", METRICS[method], s) for s in SHARES]
            series[f"{method}: {LABEL_NETWORKS[net].legend}"] = [p for p in points if p]

    def plot(plt):
        fig, axes = plt.subplots(1, 2, figsize=(12, 5))
        pos = {s: i for i, s in enumerate(SHARES)}
        for ax, method, title in zip(axes, ("direct", "linear"),
                                     ("(A) direct association", "(B) linear classifier")):
            drawn_theirs = drawn_paper = False
            for net in networks:
                points = series[f"{method}: {LABEL_NETWORKS[net].legend}"]
                if points:
                    ax.errorbar([pos[p.x] for p in points], [p.y for p in points], yerr=[p.std for p in points],
                                fmt=LABEL_NETWORKS[net].style, capsize=3, label=f"ours: {LABEL_NETWORKS[net].legend}")
                theirs = originals.get(LABEL_NETWORKS[net].original, {}).get("shares", {})
                shares = [s for s in SHARES if str(s) in theirs]
                if shares:
                    ax.errorbar([pos[s] - 0.1 for s in shares], [theirs[str(s)][method][0] for s in shares],
                                yerr=[theirs[str(s)][method][1] for s in shares],  # beside ours
                                fmt=LABEL_NETWORKS[net].style[:-1] + "_", alpha=0.5, markersize=14,
                                markeredgewidth=2, capsize=3)  # the network's colour and line, a bar for a marker
                    drawn_theirs = True
                elif (ref := entry.paper.get(f"{net}/100/{method}")) is not None:  # no record: the paper's alone
                    ax.plot([pos[100]], [ref.mean], "k_", markersize=14, markeredgewidth=2)
                    drawn_paper = True
            if drawn_theirs:
                ax.plot([], [], "k:_", alpha=0.5, markersize=14, markeredgewidth=2,
                        label="the original's runs of each, mean ± std (all labels: the paper's Table 3 means)")
            if drawn_paper:
                ax.plot([], [], "k_", markersize=14, markeredgewidth=2, label="paper, all labels (Table 3)")
            ax.set_xticks(range(len(SHARES)), [str(s) for s in SHARES])
            ax.set(xlabel="labels used for class association (%)", ylabel="test accuracy (%)", title=title)
            ax.legend(fontsize=7)
        fig.suptitle(entry.title)
        return fig
    return _figure(entry, c, series, out, plot)


def _image(row: np.ndarray) -> np.ndarray:
    """A flat or (C, H, W) image as something imshow draws: (H, W) or (H, W, C)."""
    row = np.asarray(row, dtype=np.float32)
    if row.ndim == 1:
        side = int(round(math.sqrt(row.size)))
        return row.reshape(side, side)
    return row[0] if row.shape[0] == 1 else np.moveaxis(row, 0, -1)


ROW_GAP = 5  # pixels between rows of a montage: room for the neurons' labels


def montage(images: np.ndarray, columns: int = 10, signed: bool = False) -> np.ndarray:
    """Images tiled into one array, `columns` per row, NaN pixels between them (drawn as background).

    signed: each image divided by its largest |value| (weights, drawn in [-1, 1]); else drawn as they are.
    """
    tiles = [_image(img) for img in images]
    h, w = tiles[0].shape[:2]
    rows = math.ceil(len(tiles) / columns)
    sheet = np.full((rows * (h + ROW_GAP) - ROW_GAP, columns * (w + 1) - 1, *tiles[0].shape[2:]), np.nan,
                    dtype=np.float32)
    for i, tile in enumerate(tiles):
        r, col = divmod(i, columns)
        if signed:
            tile = tile / (float(np.abs(tile).max()) or 1.0)
        sheet[r * (h + ROW_GAP):r * (h + ROW_GAP) + h, col * (w + 1):col * (w + 1) + w] = tile
    return sheet


def _image_panels(entry: Entry, root: Path, out: Path, array: str, titles: dict[str, str], signed: bool) -> Drawn:
    """One panel of 20 images (2 x 10) per source, from its extracted NPZ; the series: neuron, mean |pixel|."""
    c = _Collector(entry, root)
    found = {k: hit for k in entry.sources if (hit := c.file(k, (array, "neurons")))}
    series = {key: [Point(int(n), float(np.abs(img.astype(np.float32)).mean()), 0.0, rec.folder, path.name)
                    for n, img in zip(z["neurons"], z[array])] for key, (rec, path, z) in found.items()}

    def plot(plt):
        fig, axes = plt.subplots(len(found), 1, figsize=(12, 2.9 * len(found) + 0.6), squeeze=False)
        for ax, (key, (rec, _, z)) in zip(axes[:, 0], found.items()):
            ax.imshow(montage(z[array], signed=signed), cmap="bwr" if signed else "gray",
                      vmin=-1 if signed else 0, vmax=1, interpolation="nearest")
            ax.axis("off")
            ax.set_title(f"{titles[key]}: {rec.describe(entry.sources[key].full_epochs)}", fontsize=9, pad=12)
            h, w = _image(z[array][0]).shape[:2]
            for i, neuron in enumerate(z["neurons"]):
                label = f"n{neuron}" + (f" class {z['classes'][i]}" if "classes" in z else "")
                ax.text((i % 10) * (w + 1), (i // 10) * (h + ROW_GAP) - 0.6, label, fontsize=6, va="bottom")
        fig.suptitle(entry.title + ("\nweights of each neuron scaled to its largest |w|; red > 0, blue < 0"
                                    if signed else ""), fontsize=10)
        return fig
    return _figure(entry, c, series, out, plot, footnotes=False)  # each panel's title says its run


def draw_panels_by_label(array: str, signed: bool) -> Callable[[Entry, Path, Path], Drawn]:
    """A drawer of `_image_panels`: panels (A), (B), ... in the registry's order, each titled by its run's label."""
    def draw_panels(entry: Entry, root: Path, out: Path) -> Drawn:
        return _image_panels(entry, root, out, array, {
            key: f"({chr(65 + i)}) {src.label}" for i, (key, src) in enumerate(entry.sources.items())}, signed=signed)
    return draw_panels


def draw_fig11(entry: Entry, root: Path, out: Path) -> Drawn:
    return _image_panels(entry, root, out, "weights", {
        "supervised_1layer": "(A) supervised one-layer", "unsupervised_1layer": "(B) unsupervised one-layer",
        "supervised_2layer": "(C) supervised two-layer", "unsupervised_2layer": "(D) unsupervised two-layer"},
        signed=True)


def draw_fig9(entry: Entry, root: Path, out: Path) -> Drawn:
    """Bars by number of labels: supervised only, + WTA, + WTA + homeostasis; a panel per rule."""
    c = _Collector(entry, root)
    series = {}
    for rule in PAPER_RULES:
        for variant, name in SEMI_VARIANTS.items():
            points = [c.value(semi_key(rule, n, variant), SEMI_METRIC[variant], n) for n in SEMI_LABELS]
            series[f"{rule.upper()} {name}"] = [p for p in points if p]

    def plot(plt):
        fig, axes = plt.subplots(1, 2, figsize=(12, 5))
        pos = {n: i for i, n in enumerate(SEMI_LABELS)}
        width = 0.27
        for ax, letter, rule in zip(axes, "AB", PAPER_RULES):
            for j, (variant, name) in enumerate(SEMI_VARIANTS.items()):
                points = series[f"{rule.upper()} {name}"]
                if points:
                    ax.bar([pos[p.x] + (j - 1) * width for p in points], [p.y for p in points], width,
                           yerr=[p.std for p in points], capsize=2, label=f"ours: {name}",
                           color=f"C{j}")  # one colour per variant in both panels
            refs = [(pos[n], entry.paper.get(f"{rule}/{n}/wta_homeostasis")) for n in SEMI_LABELS]
            refs = [(x, p) for x, p in refs if p]
            ax.plot([x + width for x, _ in refs], [p.mean for _, p in refs], "k_", markersize=16, markeredgewidth=2,
                    label="paper: + WTA + homeostasis (Table 5)")
            values = [p.y for k, v in series.items() if k.startswith(rule.upper()) for p in v]
            low = max(0, min(values + [85]) - 3)
            ax.set_ylim(low, 100 + 0.3 * (100 - low))  # a band above 100 % for the legend, clear of the bars
            ax.set_yticks([t for t in ax.get_yticks() if low <= t <= 100])
            ax.set_xticks(range(len(SEMI_LABELS)), [str(n) for n in SEMI_LABELS])
            ax.set(xlabel="labeled examples", ylabel="test accuracy (%)",
                   title=f"({letter}) semi-supervised {rule.upper()}")
            ax.legend(fontsize=7, loc="upper center", ncol=2)
        fig.suptitle(entry.title)
        return fig
    return _figure(entry, c, series, out, plot)


def draw_fig10(entry: Entry, root: Path, out: Path) -> Drawn:
    """Three scatter plots of the 2-D UMAP embedding of the test outputs, coloured by class."""
    c = _Collector(entry, root)
    found = {k: hit for k in entry.sources if (hit := c.file(k, ("embedding", "labels")))}
    series = {key: [Point(float(a), float(b), 0.0, rec.folder, path.name) for a, b in
                    z["embedding"].astype(np.float32)] for key, (rec, path, z) in found.items()}

    def plot(plt):
        # the colour bar in its own narrow column, so that tight_layout places it like the panels
        fig, axes = plt.subplots(1, 4, figsize=(15, 5), gridspec_kw={"width_ratios": (1, 1, 1, 0.04)})
        for ax, (key, name), letter in zip(axes, SEMI_VARIANTS.items(), "ABC"):
            ax.set_title(f"({letter}) {name}", fontsize=9)
            ax.set_xticks([]), ax.set_yticks([])
            if key not in found:
                ax.text(0.5, 0.5, "no data yet", ha="center", transform=ax.transAxes)
                continue
            rec, _, z = found[key]
            sc = ax.scatter(z["embedding"][:, 0], z["embedding"][:, 1], c=z["labels"], cmap="tab10", s=1,
                            vmin=-0.5, vmax=9.5)
            ax.set_xlabel(textwrap.fill(rec.describe(entry.sources[key].full_epochs), 70), fontsize=7)
        fig.colorbar(sc, cax=axes[3], ticks=range(10), label="class")
        fig.suptitle(entry.title)
        return fig
    return _figure(entry, c, series, out, plot, footnotes=False)  # each panel's label says its run


def draw_fig12(entry: Entry, root: Path, out: Path) -> Drawn:
    """Test error rate (%) of direct association per epoch, batch against sequential, a panel per rule."""
    c = _Collector(entry, root)
    series = {}
    for key in entry.sources:
        rec = c.record(key)
        if rec is None:
            continue
        folder = rec.folder / f"S-{rec.seeds[0]}" if (rec.folder / f"S-{rec.seeds[0]}").is_dir() else rec.folder
        curves = plots.curves(folder)
        name = plots.ACCURACY_NAMES["error_mean"]
        if curves and name in curves:
            series[key] = [Point(int(e), 100 - float(a), 0.0, folder, "error_mean")
                           for e, a in zip(curves["epoch"], curves[name])]

    def plot(plt):
        from matplotlib import ticker
        fig, axes = plt.subplots(1, 2, figsize=(12, 5))
        for ax, letter, rule in zip(axes, "AB", PAPER_RULES):
            for key, points in series.items():
                if key.startswith(rule):
                    _, layers, mode = key.split("/")
                    ax.plot([p.x for p in points], [p.y for p in points], "-" if mode == "sequential" else "--",
                            color="C0" if layers == "1layer" else "C3", label=entry.sources[key].label)
            ax.set(xlabel="epoch", ylabel="test error rate (%), direct association", yscale="log",
                   title=f"({letter}) unsupervised {rule.upper()}")
            ax.yaxis.set_major_formatter(ticker.ScalarFormatter())  # plain numbers on the log axis
            ax.yaxis.set_minor_formatter(ticker.ScalarFormatter())
            ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
            if ax.lines:
                ax.legend(fontsize=7)
        fig.suptitle(entry.title + "\n" + entry.note, fontsize=9)
        return fig
    return _figure(entry, c, series, out, plot)


def draw_fig13(entry: Entry, root: Path, out: Path) -> Drawn:
    """Direct association (2% of labels) against the number of output neurons, by rule."""
    c = _Collector(entry, root)
    series = {}
    for rule in PAPER_RULES:
        points = [c.value(f"{rule}/{n}", METRICS["direct"], n) for n in N_OUT]
        series[rule.upper()] = [p for p in points if p]

    def plot(plt):
        fig, ax = plt.subplots(figsize=(7, 5))
        for rule, color in zip(PAPER_RULES, "gb"):
            points = series[rule.upper()]
            if points:
                ax.errorbar([p.x for p in points], [p.y for p in points], yerr=[p.std for p in points],
                            fmt=f"{color}-o", capsize=3, label=f"ours: {rule.upper()}")
            refs = [(n, entry.paper.get(f"{rule}/{n}")) for n in N_OUT]
            refs = [(n, p) for n, p in refs if p]
            ax.plot([n for n, _ in refs], [p.mean for _, p in refs], f"{color}x", markersize=9,
                    label=f"paper: {rule.upper()} (section 6.3; 10 outputs 'about 60')")
        ax.set(xscale="log", xlabel="output neurons", ylabel="test accuracy (%)\ndirect association, 2% of labels")
        ax.set_title(entry.title, fontsize=9)
        ax.legend(fontsize=7)
        return fig
    return _figure(entry, c, series, out, plot)


DRAW: dict[str, Callable[[Entry, Path, Path], Drawn]] = {
    "fig2_accuracies": draw_fig2,
    "fig4_label_share_untrained": draw_label_share,
    "fig5_label_share_2layer": draw_label_share,
    "fig6_max_activation": draw_panels_by_label("images", signed=False),
    "fig9_semi_supervised": draw_fig9,
    "fig10_umap": draw_fig10,
    "fig11_first_layer_weights": draw_fig11,
    "fig11_rules_first_layer_weights": draw_panels_by_label("weights", signed=True),
    "fig12_homeostasis_mode": draw_fig12,
    "fig13_n_out": draw_fig13,
}


def draw(name: str, results="simuResults", out="figuresPlot") -> Drawn:
    """Draw one figure of the registry from the run folders under `results` into `<out>/<name>.png` (plots.save
    makes `out`)."""
    return DRAW[name](REGISTRY[name], Path(results), Path(out))


def draw_all(results="simuResults", out="figuresPlot", echo: bool = True) -> dict[str, Drawn]:
    """Every figure of the registry; prints, per figure, its folders and the commands for what is missing."""
    drawn = {}
    for name in DRAW:
        drawn[name] = draw(name, results, out)
        if echo:
            print(drawn[name].report() + "\n")
    return drawn


# --- commands and the notebook ------------------------------------------------------------------

def commands(results="simuResults", missing_only: bool = False) -> list[str]:
    """Every command the registry names (runs, then extractions), once; only the missing ones if asked: a source
    whose own folder is absent (a stand-in of `also` draws its figure but is not it), and a seeds folder with
    seeds still to come, which `funcs.reproduce` finishes (it skips, resumes or starts each seed)."""
    root = Path(results)
    out = []
    for entry in REGISTRY.values():
        for src in entry.sources.values():
            rec = find(root, src)
            if rec is None or not missing_only or rec.folder != root / src.path:
                out.append(src.produce(root, shortened=not ran_in_full(rec, src)))
            elif seeds_to_come(rec, root, src):
                out.append(f"python -m funcs.reproduce --root {root} --only {shlex.quote(src.path + '/*')}")
            if src.file and (rec is None or find_file(rec, src.file) is None or not missing_only):
                out.append(src.extract_command(root))
    return list(dict.fromkeys(out))


def seeds_to_come(rec: Record, root: Path, src) -> bool:
    """Whether a seeds source's own folder is there with fewer finished seeds than it plans."""
    return src.seeds > 1 and rec.folder == root / src.path and len(rec.seeds) < src.seeds


def ran_in_full(rec: Record | None, src) -> bool:
    """Whether a source's folder asks for the paper's whole schedule, finished or not (its command then leaves out
    the shortening that the others of its kind ran with): read from the folder's own config."""
    return rec is not None and None not in (rec.epochs_planned, src.full_epochs) and not rec.is_shortened(
        src.full_epochs)


def show(drawn: dict[str, Drawn]) -> None:
    """Display the drawn PNGs in a notebook."""
    from IPython.display import Image, display
    for d in drawn.values():
        if d.path is not None:
            display(Image(filename=str(d.path)))


def execute_notebook(path=NOTEBOOK, results: str | None = None, out: str | None = None,
                     save: Path | None = None, timeout: int = 600):
    """Run the notebook headless (nbclient) from the repository root; `results`/`out` replace its first cell's.

    Returns the executed notebook; raises nbclient's CellExecutionError if a cell fails.
    """
    import nbclient
    import nbformat
    nb = nbformat.read(str(path), as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code")
    for var, value in (("RESULTS", results), ("OUT", out)):
        if value is not None:
            cell.source, n = re.subn(rf"^{var} = .*$", f"{var} = {str(value)!r}", cell.source, flags=re.M)
            assert n == 1, f"the notebook's first code cell must assign {var} once"
    nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(REPO)}}).execute()
    if save is not None:
        nbformat.write(nb, str(save))
    return nb


def _print_outputs(nb) -> None:
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("name") == "stdout":
                print(output["text"], end="")


@one_line_errors
def main(argv=None) -> int:
    p = OneLineParser(prog="python -m funcs.figures", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("draw", help="draw every figure (or --only NAME ...) into --out")
    d.add_argument("--results", default="simuResults")
    d.add_argument("--out", default="figuresPlot")
    d.add_argument("--only", nargs="*", choices=list(DRAW))
    t = sub.add_parser("tables", help="print tables 3, 4 and 5 and ours beyond them, paper beside ours")
    t.add_argument("--results", default="simuResults")
    sub.add_parser("readme", help="rewrite the results tables of README.md and docs/*.md from simuResults/")
    c = sub.add_parser("commands", help="the commands that produce every folder and extracted file")
    c.add_argument("--results", default="simuResults")
    c.add_argument("--missing", action="store_true", help="only those whose output is not there yet "
                   "(and how to finish a seeds folder with seeds to come)")
    n = sub.add_parser("notebook", help="execute reproduce_figures.ipynb headless and print its output")
    n.add_argument("--results")
    n.add_argument("--out")
    n.add_argument("--save", help="also write the executed notebook here")
    e = sub.add_parser("extract", help="write a figure's small arrays beside a trained run (figures 6, 10, 11)")
    e.add_argument("kind", choices=("max_activation", "weights", "umap"))
    e.add_argument("run_dir")
    e.add_argument("--data_dir", help="where the dataset is (default: the run's data_dir)")
    e.add_argument("--pretrained", action="store_true", help="umap: the phase-1 network (pretrained.pt)")
    args = p.parse_args(argv)
    results = getattr(args, "results", None)
    if results is not None and not results.strip():
        raise UserError("--results: an empty path; give the results folder")
    if results and Path(results).exists() and not Path(results).is_dir():
        raise UserError(f"--results {results}: a file, not a results folder")
    if args.command == "draw":
        for name in args.only or DRAW:
            print(draw(name, args.results, args.out).report() + "\n")
    elif args.command == "tables":
        tables.print_tables(args.results)
    elif args.command == "readme":
        written = tables.write_docs()
        print("\n".join(f"rewrote {page.relative_to(REPO)}" for page in written) or "up to date")
    elif args.command == "commands":
        print("\n".join(commands(args.results, args.missing)))
    elif args.command == "notebook":
        _print_outputs(execute_notebook(NOTEBOOK, args.results, args.out, Path(args.save) if args.save else None))
    else:
        from funcs import extract  # torch and the rules: only for an extraction
        print(extract.main(args.kind, Path(args.run_dir), args.data_dir, args.pretrained))
    return 0


if __name__ == "__main__":
    sys.exit(main())
