"""Convergence over seeds: each repeat's quality curve (repeats.runs[i].quality_curve, written by
bench.launch.repeats), the mean curve with its 95% band, and the steps each seed took to first reach the
task's target (task.target) — "QLoRA may need 20-30% more steps" is a ratio of those, with its interval.

Steps to target are read off the evaluation curve, so they are multiples of task.eval_every: the answer is
the first evaluation at or above the target, and a seed that never reaches it within the budget has no
value (the cell then has none either: "k of n seeds reached" is shown instead of a mean that would leave the
slowest seeds out). The interval is Student's t over the seeds (bench.stats.mean_interval); a ratio of two
cells' means is bench.stats.ratio (log scale, half-widths in quadrature).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from bench.report.cells import Cell, Table, model_header
from bench.report.groups import Group, method_sort_key, model_params
from bench.report.load import Rec, get, num
from bench.stats import Estimate, mean_interval, ratio

REFERENCE = "lora"  # steps-to-target ratios are taken against LoRA where the cell has one


def seed_curves(rec: Rec) -> list[list[tuple[int, float]]]:
    """Each successful seed's (step, main) curve: the repeats' own curves, else the record's one curve."""
    runs = get(rec.raw, "repeats", "runs")
    curves = []
    if isinstance(runs, list) and runs:
        for run in runs:
            if isinstance(run, dict) and run.get("status") == "success" and run.get("quality_curve"):
                curves.append([(int(s), float(v)) for s, v in run["quality_curve"] if s is not None and v is not None])
    if not curves and rec.ok:
        points = [(p.get("step"), num(p.get("main"))) for p in get(rec.raw, "quality", "curve") or []]
        curve = [(int(s), float(v)) for s, v in points if s is not None and v is not None]
        if curve:
            curves.append(curve)
    return curves


def band(rec: Rec) -> list[tuple[int, Estimate]]:
    """The mean curve over seeds with its 95% interval, at every step that every seed evaluated."""
    curves = seed_curves(rec)
    if not curves:
        return []
    at: dict[int, list[float]] = defaultdict(list)
    for curve in curves:
        for step, value in curve:
            at[step].append(value)
    return [(step, mean_interval(values)) for step, values in sorted(at.items()) if len(values) == len(curves)]


@dataclass(frozen=True)
class StepsToTarget:
    target: float
    steps: list[int | None]  # per seed; None: not reached within the budget
    estimate: Estimate | None  # None unless every seed reached it

    @property
    def reached(self) -> int:
        return sum(s is not None for s in self.steps)


def first_reach(curve: list[tuple[int, float]], target: float, higher_is_better: bool = True) -> int | None:
    for step, value in curve:
        if (value >= target) if higher_is_better else (value <= target):
            return step
    return None


def steps_to_target(rec: Rec) -> StepsToTarget | None:
    target = num(get(rec.raw, "quality", "target"))
    curves = seed_curves(rec)
    if target is None or not curves:
        return None
    higher = get(rec.raw, "quality", "higher_is_better") is not False
    steps = [first_reach(c, target, higher) for c in curves]
    est = mean_interval([float(s) for s in steps]) if all(s is not None for s in steps) else None
    return StepsToTarget(target, steps, est)


def _text(st: StepsToTarget) -> str:
    seeds = ", ".join("\u2014" if s is None else str(s) for s in st.steps)
    if st.estimate is None:
        return f"{st.reached} of {len(st.steps)} seeds reached ({seeds})"
    if not st.estimate.has_interval:
        return f"{st.estimate.value:.0f} (one seed)"
    return f"{st.estimate.value:.0f} \u00b1{(st.estimate.hi - st.estimate.lo) / 2:.0f} ({seeds})"


def _ratio_cell(st: StepsToTarget, ref: StepsToTarget | None, is_ref: bool) -> Cell:
    if is_ref:
        return Cell("(ref.)")
    if ref is None or st.estimate is None or ref.estimate is None:
        return Cell("not established (a seed did not reach the target, or no LoRA cell)")
    d = ratio(st.estimate, ref.estimate)
    if d.lo is None:
        return Cell(f"\u00d7{d.value:.2f} (no interval)")
    word = "" if d.established else f", {d.status}"
    return Cell(f"\u00d7{d.value:.2f} (\u00d7{d.lo:.2f}\u2013\u00d7{d.hi:.2f}{word})")


def table(group: Group) -> Table | None:
    """Steps to the target per task, model and method, with the ratio to LoRA; None without targets."""
    rows_by: dict[tuple[str, str], list[tuple[Rec, StepsToTarget]]] = defaultdict(list)
    for rec in group.records:
        st = steps_to_target(rec)
        if st is not None:
            rows_by[(rec["task"], rec["model"])].append((rec, st))
    if not rows_by:
        return None
    t = Table(f"steps-to-target-{group.slug}", "Steps to the quality target",
              "Training steps each seed took to first reach task.target on its evaluation curve (a multiple of "
              "task.eval_every), mean \u00b195% interval over seeds with each seed's value; the ratio to LoRA "
              "is bench.stats.ratio: n.s. = its interval includes \u00d71. A seed that never reached the "
              "target leaves the cell without a mean.",
              ["Task", "Model", "Method", "Target", "Steps to target", "vs LoRA"])
    for (task, model), items in sorted(rows_by.items(), key=lambda kv: (kv[0][0] or "",
                                                                        model_params(group.records, kv[0][1]))):
        items.sort(key=lambda it: method_sort_key(it[0]))
        ref = next((st for rec, st in items if rec["method"] == REFERENCE), None)
        for rec, st in items:
            t.rows.append([Cell(task), Cell(model_header(group.records, model)), Cell(rec["label"], rec["id"]),
                           Cell(f"{st.target:g}"), Cell(_text(st), rec["id"]),
                           _ratio_cell(st, ref, rec["method"] == REFERENCE and ref is st)])
    return t
