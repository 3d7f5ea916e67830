"""Figures of one hardware group (matplotlib, Agg, no pyplot state), each saved as PNG and SVG:
peak memory vs model size per method, steps/s per method and size, the estimated memory breakdown next to
the measured peak. The quality figures are in figures_quality.py. A figure with nothing to show is not
drawn; the report says why instead.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402

from bench.report.cells import GB, estimate_bytes, outcome  # noqa: E402
from bench.report.groups import Group, method_sort_key, model_params, workload, workload_title  # noqa: E402
from bench.report.load import Rec  # noqa: E402

RC = {"text.parse_math": False, "svg.hashsalt": "bench-report", "font.size": 9, "axes.grid": True,
      "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False}
BREAKDOWN = (("weights", "weights"), ("cast_copies", "cast copies"), ("gradients", "gradients"),
             ("optimizer", "optimizer states"), ("activations", "activations"), ("runtime", "runtime + allocator"))


@dataclass
class Fig:
    name: str  # file stem
    title: str
    caption: str
    png: Path | None = None
    svg: Path | None = None
    missing: str | None = None  # why it was not drawn


def colors(group: Group) -> dict[str, tuple]:
    import matplotlib as mpl

    labels = list(dict.fromkeys(r["label"] for r in sorted(group.records, key=method_sort_key)))
    cmap = mpl.colormaps["tab10" if len(labels) <= 10 else "tab20"]
    return {label: cmap(i % cmap.N) for i, label in enumerate(labels)}


def save(fig: Figure, out_dir: Path, stem: str) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    png, svg = out_dir / f"{stem}.png", out_dir / f"{stem}.svg"
    fig.savefig(png, dpi=110, bbox_inches="tight", metadata={"Software": None})
    fig.savefig(svg, bbox_inches="tight", metadata={"Date": None})
    return png, svg


def draw(spec: Fig, out_dir: Path, group: Group, painter: Callable[[Figure], str | None],
         size: tuple[float, float]) -> Fig:
    """Run a painter inside the report's rc settings; it returns None when it drew, else why not."""
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=size, layout="constrained")
        missing = painter(fig)
        if missing:
            spec.missing = missing
            return spec
        spec.png, spec.svg = save(fig, out_dir, f"{group.slug}-{spec.name}")
    return spec


def plain_ticks(axis) -> None:
    """Tick labels as plain numbers (math text is off, so log axes can't use their 10^n labels)."""
    from matplotlib.ticker import FuncFormatter

    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(FuncFormatter(lambda v, _: ""))


def size_axis(ax, group: Group, scale: float) -> None:
    """x = parameters; a tick at each model, labelled with its nominal size (or name)."""
    sizes = {r["model"]: model_params(group.records, r["model"]) for r in group.records if r["params_total"]}
    if sizes and max(sizes.values()) / min(sizes.values()) > 8:
        ax.set_xscale("log")
        plain_ticks(ax.xaxis)
    ticks: dict[float, str] = {}
    for model, size in sizes.items():
        nominal = next((r["model_nominal_size"] for r in group.records if r["model"] == model), None)
        ticks[size / scale] = nominal or model
    ax.set_xticks(list(ticks), list(ticks.values()))
    ax.set_xlabel("model size (parameters, log scale)" if ax.get_xscale() == "log" else "model size (parameters)")


def _scale(records: list[Rec]) -> float:
    sizes = [r["params_total"] for r in records if r["params_total"]]
    return 1e9 if sizes and max(sizes) >= 1e9 else 1e6


def memory_vs_size(group: Group, out_dir: Path) -> Fig:
    spec = Fig("memory-vs-size", "Peak memory vs model size",
               "Measured peak per method (filled, solid); not measured: the record's preflight estimate (hollow, "
               "labelled with the outcome and record). Lower is better.")
    palette, scale = colors(group), _scale(group.records)
    series: dict[tuple, list[Rec]] = {}
    for r in sorted(group.records, key=lambda r: r["params_total"] or 0):
        if r["params_total"]:
            series.setdefault((r["label"], workload(r)), []).append(r)
    several = len({wl for _, wl in series}) > 1

    sizes = {r["model"]: model_params(group.records, r["model"]) / scale for r in group.records if r["params_total"]}

    def paint(fig: Figure) -> str | None:
        ax = fig.subplots()
        if len(set(sizes.values())) == 1:
            return _memory_bars(ax, group, palette)
        drawn = False
        for (label, wl), recs in series.items():
            name = f"{label} \u00b7 {workload_title(wl)}" if several else label
            ok = [r for r in recs if r.ok and r["peak_bytes"]]
            style = "o-" if not several or wl[0] == "synthetic" else "s--"
            if ok:
                ax.plot([sizes[r["model"]] for r in ok], [r["peak_bytes"] / GB for r in ok], style,
                        color=palette[label], label=name)
                drawn = True
            for r in recs:
                est = estimate_bytes(r)
                if not r.ok and est:
                    x, y = sizes[r["model"]], est / GB
                    ax.plot([x], [y], style[0], mfc="none", color=palette[label], label=None if ok else name)
                    ax.annotate(f"{outcome(r)} #{r['id']}", (x, y), textcoords="offset points", xytext=(4, 4),
                                fontsize=7, color=palette[label])
                    drawn = True
        if not drawn:
            return "no record with a measured peak or an estimate"
        if any(not r.ok for r in group.records):
            ax.plot([], [], "o", mfc="none", color="grey", label="hollow: estimate, not measured")
        size_axis(ax, group, scale)
        values = [v for line in ax.get_lines() for v in line.get_ydata() if v > 0]
        if values and max(values) / min(values) > 20:  # e.g. a 5M model beside a 13B estimate
            ax.set_yscale("log")
            plain_ticks(ax.yaxis)
        else:
            ax.set_ylim(bottom=0)
        ax.set_ylabel("peak memory (GB)" + (", log scale" if ax.get_yscale() == "log" else "")
                      + "  \u2193 lower is better")
        _dedupe_legend(ax)
        return None

    return draw(spec, out_dir, group, paint, (7.5, 4.5))


def tick_label(rec: Rec, second: str) -> str:
    """'#id label' over a second line, long labels wrapped so neighbouring ticks don't overlap."""
    import textwrap

    return "\n".join(textwrap.wrap(f"#{rec['id']} {rec['label']}", 16) + textwrap.wrap(second, 16))


def _memory_bars(ax, group: Group, palette: dict[str, tuple]) -> str | None:
    """One model size in the records: a bar per cell (hatched where it is an estimate) instead of a line."""
    recs = [r for r in group.records if (r.ok and r["peak_bytes"]) or (not r.ok and estimate_bytes(r))]
    if not recs:
        return "no record with a measured peak or an estimate"
    for i, r in enumerate(recs):
        value = (r["peak_bytes"] if r.ok else estimate_bytes(r)) / GB
        ax.bar(i, value, 0.7, color=palette[r["label"]] if r.ok else "none", edgecolor=palette[r["label"]],
               hatch=None if r.ok else "//")
        ax.annotate(f"{value:.2f}" if r.ok else f"{outcome(r)} (est.)", (i, value), textcoords="offset points",
                    xytext=(0, 3), ha="center", fontsize=7)
    ax.set_xticks(range(len(recs)), [tick_label(r, f"{r['model']} {r['task']}") for r in recs], fontsize=7)
    ax.grid(axis="x", visible=False)
    ax.set_ylabel("peak memory (GB)  \u2193 lower is better")
    ax.set_title("one model size in these records: peak per cell", fontsize=9)
    return None


def _dedupe_legend(ax) -> None:
    handles, labels = ax.get_legend_handles_labels()
    seen = dict(zip(labels, handles))
    if seen:
        ax.legend(seen.values(), seen.keys(), fontsize=7, loc="best")


def speed_bars(group: Group, out_dir: Path) -> Fig:
    spec = Fig("speed", "Steps/s per method and model size",
               "Optimizer steps per second (higher is better); error bars: 95% CI over repeats where the record "
               "has them. Cells without a measurement are labelled with their outcome. Black dash on a GaLore bar: "
               "its steps/s with the projection refresh (every update_proj_gap steps) amortised; the bar is the "
               "speed between refreshes.")
    palette = colors(group)
    models = sorted({r["model"] for r in group.records}, key=lambda m: (model_params(group.records, m), m))

    def paint(fig: Figure) -> str | None:
        if not any(r.ok and r["steps_per_s"] for r in group.records):
            return "no successful record with steps/s"
        ax = fig.subplots()
        labels = list(palette)
        width = 0.8 / max(len(labels), 1)
        top = max(r["steps_per_s_mean"] or r["steps_per_s"] or 0 for r in group.records)
        for i, label in enumerate(labels):
            for j, model in enumerate(models):
                recs = [r for r in group.records if r["label"] == label and r["model"] == model]
                for r in recs[:1]:  # the tables list every record of a cell; the bar shows the first
                    x = j + (i - (len(labels) - 1) / 2) * width
                    if r.ok and r["steps_per_s"]:
                        mean = r["steps_per_s_mean"] if (r["repeats_succeeded"] or 0) > 1 else None
                        value = mean or r["steps_per_s"]
                        err = None
                        if mean and r["steps_per_s_ci95_hi"] is not None:
                            err = [[value - r["steps_per_s_ci95_lo"]], [r["steps_per_s_ci95_hi"] - value]]
                        ax.bar(x, value, width * 0.95, color=palette[label], yerr=err, capsize=2, label=label)
                        if r["steps_per_s_amortised"] is not None:
                            ax.plot(x, r["steps_per_s_amortised"], "_", color="black", markersize=14, mew=2,
                                    label="GaLore, projection refresh amortised")
                    else:
                        ax.text(x, top * 0.02, outcome(r), rotation=90, ha="center", va="bottom", fontsize=7,
                                color=palette[label])
        ax.set_xticks(range(len(models)), models)
        ax.grid(axis="x", visible=False)
        ax.set_ylabel("steps/s  \u2191 higher is better")
        _dedupe_legend(ax)
        return None

    return draw(spec, out_dir, group, paint, (max(6.0, 1.2 * len(models) + 4), 4.2))


def breakdown_bars(group: Group, out_dir: Path) -> Fig:
    spec = Fig("memory-breakdown", "Memory breakdown (estimate) and measured peak",
               "Stacked: bench.estimate's breakdown at the predicted peak, as stored in each record's preflight "
               "(an estimate, not a measurement). Black diamond: the measured peak where the cell ran; on a CPU "
               "that is the whole process's resident set, Python and libraries included.")
    recs = [r for r in group.records if any(r[f"est_{k}_bytes"] for k, _ in BREAKDOWN)]

    def paint(fig: Figure) -> str | None:
        if not recs:
            return "no record stores a preflight breakdown"
        ax = fig.subplots()
        bottoms = [0.0] * len(recs)
        cmap = matplotlib.colormaps["Set2"]
        for n, (key, name) in enumerate(BREAKDOWN):
            values = [(r[f"est_{key}_bytes"] or 0) / GB for r in recs]
            ax.bar(range(len(recs)), values, 0.7, bottom=bottoms, color=cmap(n), label=name)
            bottoms = [b + v for b, v in zip(bottoms, values)]
        measured = [(i, r["peak_bytes"] / GB) for i, r in enumerate(recs) if r.ok and r["peak_bytes"]]
        if measured:
            ax.plot(*zip(*measured), "D", color="black", label="measured peak")
        ax.set_xticks(range(len(recs)), [tick_label(r, r["model"]) for r in recs],
                      rotation=30 if len(recs) > 6 else 0, ha="right" if len(recs) > 6 else "center", fontsize=7)
        ax.set_ylabel("memory (GB)")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))  # beside the bars, never over them
        return None

    return draw(spec, out_dir, group, paint, (max(6.0, 0.75 * len(recs) + 3), 4.5))
