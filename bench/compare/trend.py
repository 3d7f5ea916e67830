"""Per-metric trends over commits from the history store, with regressions marked.

Each run of a cell is judged against the run before it with the gate's own rule (verdict.judge: direction,
tolerance, noise band from the stored repeats' spread), so a step change is marked on the commit that
brought it. An overview gives every cell and metric's first and last value, the change between them (slow
drift that no single step shows) and a sparkline; then one table per cell lists the runs, with the
package versions that changed since the run before, the usual cause of a regression.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any

from bench.compare.history import entry_measure
from bench.compare.summary import fmt_change, fmt_limit, fmt_value
from bench.compare.verdict import METRICS, Judgement, Metric, judge

BARS = "▁▂▃▄▅▆▇█"


def series(entries: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Entries grouped by (hardware, cell key), oldest first."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for entry in entries:
        groups[(entry.get("hardware") or "?", entry["key"])].append(entry)
    for runs in groups.values():
        runs.sort(key=lambda e: (e.get("date") or "", e.get("run") or ""))
    return dict(sorted(groups.items(), key=lambda kv: (kv[0][0], kv[1][-1].get("cell") or "")))


def steps(runs: list[dict[str, Any]], metric: Metric, tolerance: float) -> list[Judgement | None]:
    """Each run judged against the previous run that has the metric (None for the first)."""
    out: list[Judgement | None] = []
    previous = None
    for entry in runs:
        current = entry_measure(entry, metric.name)
        out.append(judge(metric, previous, current, tolerance) if previous is not None and current else None)
        previous = current or previous
    return out


def sparkline(values: list[float]) -> str:
    if not values:
        return ""
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    return "".join(BARS[round((v - lo) / span * (len(BARS) - 1))] for v in values)


def package_delta(before: dict[str, Any] | None, after: dict[str, Any]) -> str:
    if before is None:
        return ""
    b, a = before.get("packages") or {}, after.get("packages") or {}
    return ", ".join(f"{p} {b.get(p)} → {a.get(p)}" for p in sorted(set(a) | set(b)) if a.get(p) != b.get(p))


def cell_table(runs: list[dict[str, Any]], tolerance: dict[str, float]) -> list[str]:
    judged = {m.name: steps(runs, m, tolerance[m.name]) for m in METRICS}
    shown = [m for m in METRICS if any(entry_measure(e, m.name) for e in runs)]
    lines = ["| date | commit | status | " + " | ".join(m.label for m in shown) + " | packages changed |",
             "|---|---|---|" + "---|" * len(shown) + "---|"]
    for i, entry in enumerate(runs):
        cols = [(entry.get("date") or "")[:10], (entry.get("sha") or "?")[:10] + ("+" if entry.get("dirty") else ""),
                entry.get("status") or "?"]
        for metric in shown:
            m, j = entry_measure(entry, metric.name), judged[metric.name][i]
            text = fmt_value(metric, m)
            if j is not None and j.change is not None:
                text += f" ({fmt_change(metric, j.change, j.difference)})"
                if j.verdict == "regressed":
                    text += f" **regressed** (limit {fmt_limit(metric, j.threshold or 0.0)})"
                elif j.verdict == "improved":
                    text += " improved"
            cols.append(text)
        cols.append(package_delta(runs[i - 1] if i else None, entry))
        lines.append("| " + " | ".join(cols) + " |")
    return lines


def overview(groups: dict[tuple[str, str], list[dict[str, Any]]], tolerance: dict[str, float]) -> list[str]:
    lines = ["| cell | hardware | metric | runs | first | last | change | trend | regressions at |",
             "|---|---|---|---|---|---|---|---|---|"]
    for (hardware, _), runs in groups.items():
        for metric in METRICS:
            values = [(e, m) for e in runs if (m := entry_measure(e, metric.name)) is not None]
            if not values:
                continue
            first, last = values[0][1], values[-1][1]
            total = judge(metric, first, last, 0.0)
            judged = steps(runs, metric, tolerance[metric.name])
            marks = [(e.get("sha") or "?")[:10] for e, j in zip(runs, judged, strict=True)
                     if j is not None and j.verdict == "regressed"]
            lines.append(f"| {runs[-1].get('cell')} | {hardware} | {metric.label} | {len(values)} | "
                         f"{fmt_value(metric, first)} | {fmt_value(metric, last)} | "
                         f"{fmt_change(metric, total.change or 0.0, total.difference) if total else ''} | "
                         f"{sparkline([m.value for _, m in values])} | {', '.join(marks) or '–'} |")
    return lines


def render(entries: list[dict[str, Any]], source: str, tolerance: dict[str, float], last: int = 0) -> str:
    groups = series(entries)
    if last:
        groups = {k: v[-last:] for k, v in groups.items()}
    runs = {e.get("run") for e in entries}
    flagged = sum(j is not None and j.verdict == "regressed" for rs in groups.values() for m in METRICS
                  for j in steps(rs, m, tolerance[m.name]))
    lines = [f"## bench.compare --trend: `{source}` ({len(runs)} runs, {len(groups)} cells, "
             f"{flagged} regression{'s' if flagged != 1 else ''} marked)", ""]
    lines += overview(groups, tolerance) + [""]
    for runs_of_cell in groups.values():
        lines += [f"### {runs_of_cell[-1].get('cell')} ({runs_of_cell[-1].get('hardware')})", ""]
        lines += cell_table(runs_of_cell, tolerance) + [""]
    lines.append("A run is marked when it is worse than the run before by more than both the tolerance and "
                 "the noise band of the two runs' repeats, and the change's 95% interval (±) excludes no change "
                 "(the gate's rule; n.s. = within noise).")
    return "\n".join(lines) + "\n"
