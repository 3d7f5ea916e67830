"""Figures of one hardware group (matplotlib, Agg, no pyplot state), each drawn once (layout and pixels in
one Agg pass; no SVG, no bbox_inches="tight": each was another full draw) as the PNG the report shows: peak
memory vs model size per method, steps/s per method and size, the estimated memory breakdown next to the
measured peak. The quality figures are in figures_quality.py. A figure with nothing to show is not drawn; the
report says why instead.

Figures aggregate, so they stay legible (and cheap) at thousands of records: one marker or bar per (method
label, model), at the median of its records with a 95% interval (cell_point), never one artist per record;
a legend entry per label, with its record count where a cell holds several; past MAX_LABELS labels, each
method's label with most records and then the largest others are drawn, the figure saying how many it left out.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image  # noqa: E402  (matplotlib's own dependency)

from bench.report.cells import GB, estimate_bytes, outcome  # noqa: E402
from bench.report.groups import Group, method_sort_key, model_params, workload, workload_title  # noqa: E402
from bench.report.figure_cells import (AGGREGATE, cell_point, cells_of, gb, left_out, legend_name,  # noqa: E402
                                       median_interval, peak_estimate, shown_labels, yerr)
from bench.report.load import Rec  # noqa: E402
from bench.stats import Estimate  # noqa: E402

RC = {"text.parse_math": False, "font.size": 9, "axes.grid": True,
      "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False}
BREAKDOWN = (("weights", "weights"), ("cast_copies", "cast copies"), ("gradients", "gradients"),
             ("optimizer", "optimizer states"), ("activations", "activations"), ("runtime", "runtime + allocator"))
MAX_BARS = 24  # bars in the memory-breakdown figure
DPI = 110

@dataclass
class Fig:
    name: str  # file stem
    title: str
    caption: str
    png: Path | None = None
    missing: str | None = None  # why it was not drawn


def colors(group: Group, labels: list[str] | None = None) -> dict[str, tuple]:
    import matplotlib as mpl

    labels = labels or list(dict.fromkeys(r["label"] for r in sorted(group.records, key=method_sort_key)))
    cmap = mpl.colormaps["tab10" if len(labels) <= 10 else "tab20"]
    return {label: cmap(i % cmap.N) for i, label in enumerate(labels)}


def save(fig: Figure, out_dir: Path, stem: str) -> Path:
    """The figure's one draw (layout and pixels together), written as a palette PNG: a plot's few flat colours
    fit 256 (fast octree, no dither), a third of the RGBA file's bytes for the same picture."""
    out_dir.mkdir(parents=True, exist_ok=True)
    png, canvas = out_dir / f"{stem}.png", FigureCanvasAgg(fig)
    canvas.draw()
    image = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
    image.convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(png)
    return png


def draw(spec: Fig, out_dir: Path, group: Group, painter: Callable[[Figure], str | None],
         size: tuple[float, float]) -> Fig:
    """Run a painter inside the report's rc settings; it returns None when it drew, else why not."""
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=size, dpi=DPI, layout="constrained")
        missing = painter(fig)
        if missing:
            spec.missing = missing
            return spec
        spec.png = save(fig, out_dir, f"{group.slug}-{spec.name}")
    return spec


def plain_ticks(axis) -> None:
    """Plain-number tick labels on a log axis (math text is off: no 10^n); unlabelled minor ticks at 2x and 5x
    only (each tick is several artists to lay out and draw; the default 8 a decade cost more than the rest)."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    if axis.get_scale() == "log" and axis.get_transform().base == 10:
        axis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))


def size_axis(ax, group: Group, scale: float) -> None:
    """x = parameters; a tick at each model, labelled with its nominal size (or name)."""
    sizes = {r["model"]: model_params(group.records, r["model"]) for r in group.records if r["params_total"]}
    if sizes and max(sizes.values()) / min(sizes.values()) > 8:
        ax.set_xscale("log")
        plain_ticks(ax.xaxis)
    nominal = {r["model"]: r["model_nominal_size"] for r in group.records}
    ticks = {size / scale: nominal.get(model) or model for model, size in sizes.items()}
    ax.set_xticks(list(ticks), list(ticks.values()))
    ax.set_xlabel("model size (parameters, log scale)" if ax.get_xscale() == "log" else "model size (parameters)")


def _scale(records: list[Rec]) -> float:
    sizes = [r["params_total"] for r in records if r["params_total"]]
    return 1e9 if sizes and max(sizes) >= 1e9 else 1e6


def _not_run(ax, x: float, recs: list[Rec], estimates: list[float], style: str, color) -> float:
    """One hollow marker at the median preflight estimate of a cell that never ran; its outcome and record."""
    y = median_interval(estimates)[0] / GB
    ax.plot([x], [y], style, mfc="none", color=color)
    what = Counter(outcome(r) for r in recs).most_common(1)[0][0]
    ax.annotate(f"{what} #{recs[0]['id']}" if len(recs) == 1 else f"{what} x{len(recs)}", (x, y),
                textcoords="offset points", xytext=(4, 4), fontsize=7, color=color)
    return y


def memory_vs_size(group: Group, out_dir: Path) -> Fig:
    spec = Fig("memory-vs-size", "Peak memory vs model size",
               "Measured peak per method (filled, solid); not measured: the record's preflight estimate (hollow, "
               "labelled with the outcome and record). Lower is better. " + AGGREGATE)
    scale, recs = _scale(group.records), [r for r in group.records if r["params_total"]]
    labels = shown_labels(recs)
    palette = colors(group, labels)
    series = cells_of(recs, labels, lambda r: (r["label"], workload(r)))
    several = len({wl for _, wl in series}) > 1
    sizes = {r["model"]: model_params(group.records, r["model"]) / scale for r in recs}

    def paint(fig: Figure) -> str | None:
        ax = fig.subplots()
        if len(set(sizes.values())) == 1:
            return _memory_bars(ax, group)
        values: list[float] = []
        for (label, wl), mine in sorted(series.items(), key=lambda kv: labels.index(kv[0][0])):
            name = legend_name(label, recs) + (f" \u00b7 {workload_title(wl)}" if several else "")
            style = "o-" if not several or wl[0] == "synthetic" else "s--"
            by_model: dict[str, list[Rec]] = defaultdict(list)
            for r in sorted(mine, key=lambda r: sizes[r["model"]]):
                by_model[r["model"]].append(r)
            xs, points = [], []
            for model, cell in by_model.items():
                ests = [e for e in map(peak_estimate, cell) if e is not None]
                if ests:
                    xs.append(sizes[model])
                    points.append(gb(cell_point(ests)))
                elif est := [float(b) for b in map(estimate_bytes, cell) if b]:
                    values.append(_not_run(ax, sizes[model], cell, est, style[0], palette[label]))
            if points:
                ax.errorbar(xs, [p.value for p in points], yerr=yerr(points), fmt=style, color=palette[label],
                            capsize=2, label=name)
                values += [p.value for p in points]
            elif any(estimate_bytes(r) for r in mine):
                ax.plot([], [], style[0], mfc="none", color=palette[label], label=name)
        if not values:
            return "no record with a measured peak or an estimate"
        if any(not r.ok for r in recs):
            ax.plot([], [], "o", mfc="none", color="grey", label="hollow: estimate, not measured")
        size_axis(ax, group, scale)
        positive = [v for v in values if v > 0]
        if positive and max(positive) / min(positive) > 20:  # e.g. a 5M model beside a 13B estimate
            ax.set_yscale("log")
            plain_ticks(ax.yaxis)
        else:
            ax.set_ylim(bottom=0)
        ax.set_ylabel("peak memory (GB)" + (", log scale" if ax.get_yscale() == "log" else "")
                      + "  \u2193 lower is better")
        left_out(ax, labels, recs)
        _dedupe_legend(ax)
        return None

    return draw(spec, out_dir, group, paint, (7.5, 4.5))


def tick_label(recs: list[Rec], second: str) -> str:
    """'#id label' (or 'label xN' for N records) over a second line, wrapped so neighbouring ticks don't overlap."""
    import textwrap

    first = f"#{recs[0]['id']} {recs[0]['label']}" if len(recs) == 1 else f"{recs[0]['label']} x{len(recs)}"
    return "\n".join(textwrap.wrap(first, 16) + textwrap.wrap(second, 16))


def _memory_bars(ax, group: Group) -> str | None:
    """One model size in the records: a bar per cell (hatched where it is an estimate) instead of a line."""
    recs = [r for r in group.records if (r.ok and r["peak_bytes"]) or (not r.ok and estimate_bytes(r))]
    labels = shown_labels(recs)
    palette = colors(group, labels)
    cells = list(cells_of(recs, labels, lambda r: (labels.index(r["label"]), r["model"], str(r["task"]))).items())
    if not cells:
        return "no record with a measured peak or an estimate"
    cells.sort(key=lambda kv: kv[0])
    for i, (_, cell) in enumerate(cells):
        ests = [e for e in map(peak_estimate, cell) if e is not None]
        color = palette[cell[0]["label"]]
        if ests:
            p = gb(cell_point(ests))
            ax.bar(i, p.value, 0.7, color=color, yerr=yerr([p]) if len(ests) > 1 else None, capsize=2)
            text = f"{p.value:.2f}"
        else:
            p = Estimate(median_interval([float(estimate_bytes(r)) for r in cell])[0] / GB)
            ax.bar(i, p.value, 0.7, color="none", edgecolor=color, hatch="//")
            text = f"{outcome(cell[0])} (est.)"
        ax.annotate(text, (i, p.value), textcoords="offset points", xytext=(0, 3), ha="center", fontsize=7)
    ax.set_xticks(range(len(cells)), [tick_label(c, f"{c[0]['model']} {c[0]['task']}") for _, c in cells], fontsize=7)
    ax.grid(axis="x", visible=False)
    ax.set_ylabel("peak memory (GB)  \u2193 lower is better")
    ax.set_title("one model size in these records: peak per cell", fontsize=9)
    left_out(ax, labels, recs)
    return None


def _dedupe_legend(ax, **kwargs) -> None:
    handles, labels = ax.get_legend_handles_labels()
    seen = dict(sorted(zip(labels, handles), key=lambda kv: kv[0].startswith("hollow")))  # the key last
    if seen:
        ax.legend(seen.values(), seen.keys(), **({"fontsize": 7, "loc": "best"} | kwargs))


def speed_bars(group: Group, out_dir: Path) -> Fig:
    spec = Fig("speed", "Steps/s per method and model size",
               "Optimizer steps per second (higher is better); error bars: each record's 95% interval (over its "
               "repeats, else over its own steps). " + AGGREGATE + " Cells without a measurement are labelled "
               "with their outcome. Black dash on a GaLore bar: its steps/s with the projection refresh (every "
               "update_proj_gap steps) amortised; the bar is the speed between refreshes.")
    labels = shown_labels(group.records)
    palette = colors(group, labels)
    models = sorted({r["model"] for r in group.records}, key=lambda m: (model_params(group.records, m), m))
    cells = cells_of(group.records, labels, lambda r: (r["label"], r["model"]))

    def paint(fig: Figure) -> str | None:
        speed = {k: [e for r in c if r.ok and (e := r.est.get("steps")) is not None] for k, c in cells.items()}
        if not any(speed.values()):
            return "no successful record with steps/s"
        ax = fig.subplots()
        width = 0.8 / max(len(labels), 1)
        top = max(e.value for ests in speed.values() for e in ests)
        for i, label in enumerate(labels):
            xs, points = [], []
            for j, model in enumerate(models):
                x = j + (i - (len(labels) - 1) / 2) * width
                if speed.get((label, model)):
                    xs.append(x)
                    points.append(cell_point(speed[(label, model)]))
                    amortised = [r["steps_per_s_amortised"] for r in cells[(label, model)]
                                 if r.ok and r["steps_per_s_amortised"] is not None]
                    if amortised:
                        ax.plot(x, median_interval(amortised)[0], "_", color="black", markersize=14, mew=2,
                                label="GaLore, projection refresh amortised")
                elif cells.get((label, model)):
                    ax.text(x, top * 0.02, outcome(cells[(label, model)][0]), rotation=90, ha="center",
                            va="bottom", fontsize=7, color=palette[label])
            if points:
                ax.bar(xs, [p.value for p in points], width * 0.95, color=palette[label], yerr=yerr(points),
                       capsize=2, label=legend_name(label, group.records))
        ax.set_xticks(range(len(models)), models)
        ax.grid(axis="x", visible=False)
        ax.set_ylabel("steps/s  \u2191 higher is better")
        left_out(ax, labels, group.records)
        _dedupe_legend(ax)
        return None

    return draw(spec, out_dir, group, paint, (max(6.0, 1.2 * len(models) + 4), 4.2))


def breakdown_bars(group: Group, out_dir: Path) -> Fig:
    spec = Fig("memory-breakdown", "Memory breakdown (estimate) and measured peak",
               "Stacked: bench.estimate's breakdown at the predicted peak, as stored in each record's preflight "
               "(an estimate, not a measurement). Black diamond: the measured peak where the cell ran; on a CPU "
               "that is the whole process's resident set, Python and libraries included. A cell with several "
               "records: the median of each part, the diamond's bar the peak's interval (see the other figures).")
    recs = [r for r in group.records if any(r[f"est_{k}_bytes"] for k, _ in BREAKDOWN)]
    labels = shown_labels(recs, max_cells=MAX_BARS)
    sizes = {r["model"]: model_params(group.records, r["model"]) for r in recs}
    cells = sorted(cells_of(recs, labels, lambda r: (sizes[r["model"]], r["model"], labels.index(r["label"]))).items())

    def paint(fig: Figure) -> str | None:
        if not cells:
            return "no record stores a preflight breakdown"
        ax = fig.subplots()
        bottoms = [0.0] * len(cells)
        cmap = matplotlib.colormaps["Set2"]
        for n, (key, name) in enumerate(BREAKDOWN):
            values = [median_interval([float(r[f"est_{key}_bytes"] or 0) for r in c])[0] / GB for _, c in cells]
            ax.bar(range(len(cells)), values, 0.7, bottom=bottoms, color=cmap(n), label=name)
            bottoms = [b + v for b, v in zip(bottoms, values)]
        measured = [(i, gb(cell_point(ests))) for i, (_, c) in enumerate(cells)
                    if (ests := [e for e in map(peak_estimate, c) if e is not None])]
        if measured:
            ax.errorbar([i for i, _ in measured], [p.value for _, p in measured], yerr=yerr([p for _, p in measured]),
                        fmt="D", color="black", capsize=2, label="measured peak")
        many = len(cells) > 6
        ax.set_xticks(range(len(cells)), [tick_label(c, c[0]["model"]) for _, c in cells], fontsize=7,
                      rotation=(90 if len(cells) > 21 else 30) if many else 0, ha="right" if many else "center",
                      rotation_mode="anchor" if many else "default")
        ax.set_ylabel("memory (GB)")
        left_out(ax, labels, recs)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))  # beside the bars, never over them
        return None

    return draw(spec, out_dir, group, paint, (max(6.0, 0.75 * len(cells) + 3), 4.5))
