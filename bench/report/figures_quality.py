"""Quality figures of one hardware group: quality vs memory with the Pareto frontier, convergence curves
(metric vs step and vs training seconds; the training loss where no record evaluated along the way), and
the rank sweep (quality and memory vs rank). A cell run with several seeds is drawn as the mean of its seeds
with a 95% interval bar and each seed's score as a small mark (quality_tables.quality_estimate); its curve is
the record's representative seed, the seeds' final scores marked at its last step."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from matplotlib.figure import Figure

from bench.report.convergence import band as seeds_band_of
from bench.report.cells import GB
from bench.report.figure_cells import cell_point, cells_of, left_out, median_interval, shown_labels
from bench.report.figures import Fig, colors, draw, plain_ticks
from bench.report.groups import Group, method_base, workload
from bench.report.load import Rec, get, num, quality_score
from bench.report.quality_tables import quality_estimate, seed_scores
from bench.stats import Estimate

MAX_CURVES = 16  # curves in the convergence figure: past this, the method labels with most records


def _error_bar(ax, x: float, est: Estimate, seeds: list[float], color, label: str | None = None) -> None:
    """The mean as a dot, its 95% interval as a bar, each seed as a small cross (one seed: a dot alone)."""
    if est.has_interval:
        ax.errorbar([x], [est.value], yerr=[[est.value - est.lo], [est.hi - est.value]], fmt="o", color=color,
                    capsize=3, label=label)
        ax.plot([x] * len(seeds), seeds, "x", ms=4, color=color, alpha=0.6)
    else:
        ax.plot(x, est.value, "o", color=color, label=label)


def pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both axes (less memory, higher quality), by memory."""
    frontier: list[tuple[float, float]] = []
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if not frontier or y > frontier[-1][1]:
            frontier.append((x, y))
    return frontier


def quality_vs_memory(group: Group, out_dir: Path) -> Fig:
    spec = Fig("quality-vs-memory", "Quality vs peak memory",
               "Each point a successful cell (#id). Up and to the left is better; the line joins the Pareto "
               "frontier: cells that no other cell beats on both memory and quality (on the seeds' means). A cell "
               "with several seeds: the mean, a bar for its 95% interval, a cross per seed. Several records of one "
               "method label and model (xN): their medians, the bar the median's interval, a cross per record.")
    recs = [r for r in group.records if r.ok and quality_estimate(r) is not None and r["peak_bytes"]]
    tasks = sorted({r["task"] for r in recs})
    palette = colors(group)

    def paint(fig: Figure) -> str | None:
        if not recs:
            return "no successful record with both a quality score and a peak"
        axes = fig.subplots(1, len(tasks[:4]), squeeze=False)[0]
        for ax, task in zip(axes, tasks[:4]):
            mine = [r for r in recs if r["task"] == task]
            points = []  # one per (label, model): a record's own, or several records' medians
            for cell in cells_of(mine, shown_labels(mine), lambda r: (r["label"], r["model"])).values():
                est = cell_point([quality_estimate(r) for r in cell])
                x = median_interval([r["peak_bytes"] / GB for r in cell])[0]
                seeds = seed_scores(cell[0]) if len(cell) == 1 else [quality_estimate(r).value for r in cell]
                _error_bar(ax, x, est, seeds, palette[cell[0]["label"]], cell[0]["label"])
                ax.annotate(f"#{cell[0]['id']}" if len(cell) == 1 else f"x{len(cell)}", (x, est.value),
                            textcoords="offset points", xytext=(4, 3), fontsize=7)
                points.append((x, est.value))
            front = pareto(points)
            if len(front) > 1:
                ax.plot(*zip(*front), "-", color="grey", lw=1, zorder=0, label="Pareto frontier")
            ax.set_title(str(task), fontsize=9)
            ax.set_xlabel("peak memory (GB)  \u2190 better")
            ax.set_ylabel(f"{mine[0]['quality_metric'] or 'score'} (0-100)  \u2191 better")
            handles, labels = ax.get_legend_handles_labels()
            ax.legend(dict(zip(labels, handles)).values(), dict(zip(labels, handles)).keys(), fontsize=7)
        return None

    return draw(spec, out_dir, group, paint, (max(6.0, 4.2 * len(tasks[:4])), 4.2))


def _curve(rec: Rec) -> list[tuple[float, float, float]]:
    """(step, training seconds, score 0-100) of each evaluation."""
    points = []
    for p in get(rec.raw, "quality", "curve") or []:
        step, seconds, main = num(get(p, "step")), num(get(p, "train_seconds")), num(get(p, "main"))
        if step is not None and seconds is not None and main is not None:
            points.append((step, seconds, quality_score(rec["task"], main)))
    return points


def _loss_curve(rec: Rec) -> list[tuple[float, float, float]]:
    """(step, seconds of measured steps so far, loss) over the timed steps; warm-up steps have no time."""
    losses = rec.raw.get("losses") if isinstance(rec.raw.get("losses"), list) else []
    times = get(rec.raw, "timing", "step_times_s") or []
    warm = int(num(get(rec.raw, "timing", "warmup_steps")) or 0)
    out, clock = [], 0.0
    for i, t in enumerate(times):
        loss = num(losses[warm + i]) if warm + i < len(losses) else None
        clock += num(t) or 0.0
        if loss is not None:
            out.append((warm + i + 1, clock, loss))
    return out


def _median_curve(curves: list[list[tuple[float, float, float]]]) -> list[tuple[float, float, float]]:
    """Several records' curves as one: at each step that at least half of them reached, the median of their
    seconds and of their values (one curve: itself)."""
    if len(curves) == 1:
        return curves[0]
    at: dict[float, list[tuple[float, float]]] = defaultdict(list)
    for points in curves:
        for step, seconds, value in points:
            at[step].append((seconds, value))
    return [(step, median_interval([s for s, _ in pts])[0], median_interval([v for _, v in pts])[0])
            for step, pts in sorted(at.items()) if 2 * len(pts) >= len(curves)]


def convergence(group: Group, out_dir: Path) -> Fig:
    curves = {r["id"]: _curve(r) for r in group.records if r.ok}
    curves = {k: v for k, v in curves.items() if len(v) > 1}
    use_loss = not curves
    if use_loss:
        curves = {r["id"]: _loss_curve(r) for r in group.records if r.ok}
        curves = {k: v for k, v in curves.items() if len(v) > 1}
    what = "training loss  \u2193 better" if use_loss else "score (0-100)  \u2191 better"
    caption = ("Training loss (lower is better) vs optimizer step and vs seconds of measured training (warm-up "
               "steps are not timed). No record evaluated more than once (task.eval_every), so the training loss "
               "stands in for the evaluation score." if use_loss else
               "Evaluation score, 0-100 (higher is better), vs optimizer step and vs training seconds (evaluation "
               "time excluded). A repeated cell's curve is its representative seed; where every seed's curve was kept, "
               "the dashed line vs step is the seeds' mean and the shaded band its 95% interval; at the last step "
               "the bar is the seeds' mean with its 95% interval and the crosses each seed's final score.")
    spec = Fig("convergence", "Convergence", caption + " Several records of one cell (method label, model, task) "
               "are drawn as one curve, the median at each step, its final score's bar their median's interval.")
    with_curve = [r for r in group.records if r["id"] in curves]
    labels = shown_labels(with_curve, max_cells=MAX_CURVES)
    cells = cells_of(with_curve, labels, lambda r: (labels.index(r["label"]), r["model"], str(r["task"])))
    palette = colors(group, labels)

    def paint(fig: Figure) -> str | None:
        if not curves:
            return "no record with a curve (evaluate along the way with task.eval_every=N)"
        ax_step, ax_time = fig.subplots(1, 2)
        for recs in sorted(cells.values(), key=lambda recs: recs[0]["id"]):
            rec, color = recs[0], palette[recs[0]["label"]]
            first = f"#{rec['id']} {rec['label']}" if len(recs) == 1 else f"{rec['label']}, {len(recs)} records"
            steps, seconds, values = zip(*_median_curve([curves[r["id"]] for r in recs]))
            style = "o-" if len(steps) < 30 else "-"
            seeds_band = [] if use_loss or len(recs) > 1 else [(x, e) for x, e in seeds_band_of(rec) if e.has_interval]
            if len(seeds_band) > 1:  # every seed's curve kept: their mean with its 95% band, vs step
                xs = [x for x, _ in seeds_band]
                score = [(quality_score(rec["task"], e.value), quality_score(rec["task"], e.lo),
                          quality_score(rec["task"], e.hi)) for _, e in seeds_band]
                ax_step.fill_between(xs, [lo for _, lo, _ in score], [hi for _, _, hi in score], color=color,
                                     alpha=0.15, linewidth=0)
                ax_step.plot(xs, [m for m, _, _ in score], "--", lw=1, color=color)
            ax_step.plot(steps, values, style, ms=3, color=color, label=f"{first} \u00b7 {rec['model']} \u00b7 "
                         f"{rec['task']}")
            ax_time.plot(seconds, values, style, ms=3, color=color)
            ests = [] if use_loss else [e for e in map(quality_estimate, recs) if e is not None]
            est = cell_point(ests) if ests else None
            seeds = seed_scores(rec) if len(recs) == 1 else [e.value for e in ests]
            if est is not None and est.has_interval:
                _error_bar(ax_step, steps[-1], est, seeds, color)
                _error_bar(ax_time, seconds[-1], est, seeds, color)
        ax_step.set_xlabel("optimizer step")
        ax_time.set_xlabel("training seconds")
        for ax in (ax_step, ax_time):
            ax.set_ylabel(what)
        ax_step.legend(fontsize=7, loc="best")
        left_out(ax_step, labels, with_curve)
        return None

    return draw(spec, out_dir, group, paint, (11, 4.2))


def rank_sweep(group: Group, out_dir: Path) -> Fig:
    spec = Fig("rank-sweep", "Rank sweep", "Quality (0-100, higher is better) and peak memory (GB, lower is "
               "better) vs adapter / projection rank, per method, model and workload; successful cells only. Several "
               "records at one rank: their median (quality: with its interval, as in the other figures).")
    series: dict[tuple, list[Rec]] = defaultdict(list)
    for r in group.records:
        if r.ok and r["rank"] is not None:
            series[(method_base(r), r["model"], workload(r))].append(r)
    series = {k: sorted(v, key=lambda r: r["rank"]) for k, v in series.items() if len({r["rank"] for r in v}) > 1}

    def paint(fig: Figure) -> str | None:
        if not series:
            return "no method was run at more than one rank on the same model and workload"
        ax_q, ax_m = fig.subplots(1, 2)
        for (base, model, wl), recs in series.items():
            name = f"{base} \u00b7 {model} \u00b7 {wl[0]}"
            by_rank: dict[int, list[Rec]] = defaultdict(list)  # several records at one rank: their median
            for r in recs:
                by_rank[r["rank"]].append(r)
            scored = [(rank, [e for e in map(quality_estimate, rs) if e is not None], rs)
                      for rank, rs in by_rank.items()]
            scored = [(rank, cell_point(ests), seed_scores(rs[0]) if len(ests) == 1 else [e.value for e in ests])
                      for rank, ests, rs in scored if ests]
            if scored:
                line, = ax_q.plot([x for x, _, _ in scored], [e.value for _, e, _ in scored], "o-", label=name)
                for x, est, seeds in scored:
                    _error_bar(ax_q, x, est, seeds, line.get_color())
            peaks = [(rank, median_interval(ps)[0] / GB) for rank, rs in by_rank.items()
                     if (ps := [float(r["peak_bytes"]) for r in rs if r["peak_bytes"]])]
            if peaks:
                ax_m.plot(*zip(*peaks), "o-", label=name)
        for ax in (ax_q, ax_m):
            ax.set_xscale("log", base=2)
            plain_ticks(ax.xaxis)
            ax.set_xlabel("rank")
        ax_m.set_ylim(bottom=0)
        ax_q.set_ylabel("quality (0-100)  \u2191 better")
        ax_m.set_ylabel("peak memory (GB)  \u2193 better")
        ax_m.legend(fontsize=7)
        return None

    return draw(spec, out_dir, group, paint, (11, 4.2))
