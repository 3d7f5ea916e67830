"""Quality figures of one hardware group: quality vs memory with the Pareto frontier, convergence curves
(metric vs step and vs training seconds; the training loss where no record evaluated along the way), and
the rank sweep (quality and memory vs rank)."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from matplotlib.figure import Figure

from bench.report.cells import GB
from bench.report.figures import Fig, colors, draw, plain_ticks
from bench.report.groups import Group, method_base, workload
from bench.report.load import Rec, get, num, quality_score


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
               "frontier: cells that no other cell beats on both memory and quality.")
    recs = [r for r in group.records if r.ok and r["quality_score"] is not None and r["peak_bytes"]]
    tasks = sorted({r["task"] for r in recs})
    palette = colors(group)

    def paint(fig: Figure) -> str | None:
        if not recs:
            return "no successful record with both a quality score and a peak"
        axes = fig.subplots(1, len(tasks[:4]), squeeze=False)[0]
        for ax, task in zip(axes, tasks[:4]):
            mine = [r for r in recs if r["task"] == task]
            for r in mine:
                ax.plot(r["peak_bytes"] / GB, r["quality_score"], "o", color=palette[r["label"]], label=r["label"])
                ax.annotate(f"#{r['id']}", (r["peak_bytes"] / GB, r["quality_score"]), textcoords="offset points",
                            xytext=(4, 3), fontsize=7)
            front = pareto([(r["peak_bytes"] / GB, r["quality_score"]) for r in mine])
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
               "time excluded).")
    spec = Fig("convergence", "Convergence", caption)
    by_id = {r["id"]: r for r in group.records}
    palette = colors(group)

    def paint(fig: Figure) -> str | None:
        if not curves:
            return "no record with a curve (evaluate along the way with task.eval_every=N)"
        ax_step, ax_time = fig.subplots(1, 2)
        for rid, points in curves.items():
            rec = by_id[rid]
            label = f"#{rid} {rec['label']} \u00b7 {rec['model']} \u00b7 {rec['task']}"
            steps, seconds, values = zip(*points)
            ax_step.plot(steps, values, "o-" if len(points) < 30 else "-", ms=3, color=palette[rec["label"]],
                         label=label)
            ax_time.plot(seconds, values, "o-" if len(points) < 30 else "-", ms=3, color=palette[rec["label"]])
        ax_step.set_xlabel("optimizer step")
        ax_time.set_xlabel("training seconds")
        for ax in (ax_step, ax_time):
            ax.set_ylabel(what)
        ax_step.legend(fontsize=7, loc="best")
        return None

    return draw(spec, out_dir, group, paint, (11, 4.2))


def rank_sweep(group: Group, out_dir: Path) -> Fig:
    spec = Fig("rank-sweep", "Rank sweep", "Quality (0-100, higher is better) and peak memory (GB, lower is "
               "better) vs adapter / projection rank, per method, model and workload; successful cells only.")
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
            scored = [(r["rank"], r["quality_score"]) for r in recs if r["quality_score"] is not None]
            if scored:
                ax_q.plot(*zip(*scored), "o-", label=name)
            peaks = [(r["rank"], r["peak_bytes"] / GB) for r in recs if r["peak_bytes"]]
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
