"""The comparison as Markdown: a headline, what was compared (paths, hardware, commits, package versions
that changed), one table row per cell, and the rule that flagged it. Fit for $GITHUB_STEP_SUMMARY and
readable in a terminal.
"""
from __future__ import annotations

from typing import Any

from bench.compare.load import git_sha, packages
from bench.compare.match import CellResult, Comparison
from bench.compare.verdict import METRICS, Judgement, Measure, Metric, measure
from bench.stats import Difference

VERDICT_TEXT = {"regressed": "**regressed**", "missing": "missing", "new": "new", "improved": "improved",
                "ok": "ok"}


def fmt_value(metric: Metric, m: Measure | None) -> str:
    if m is None:
        return "–"
    if metric.name == "peak_bytes":
        return f"{m.value / 1e9:.3f} GB"
    if metric.name == "quality_main":
        return f"{m.value:.1f}"
    return f"{m.value:.3g}"


def fmt_change(metric: Metric, value: float, diff: Difference | None = None) -> str:
    """'-10.0% ±1.3%' / '-2.0% ±4.1%, n.s.' / '+0.4 pt ±0.6, equivalent' / '-30.0% (-45.1%..-10.6%)' (a wide
    ratio interval, lopsided: its range) / '+1.0%, no interval': the change, its 95% interval where it has one,
    and its status when it is not established."""
    text = f"{value:+.1f} pt" if not metric.relative else f"{100 * value:+.1f}%"
    if diff is not None and diff.status == "no interval":
        return text + ", no interval"
    if diff is None or diff.lo is None or diff.hi is None:
        return text
    scale = 100 if metric.relative else 1
    up, down = (diff.hi - diff.value) * scale, (diff.value - diff.lo) * scale
    if metric.relative and max(up, down) >= 10 and max(up, down) > 1.25 * min(up, down):
        text += f" ({(diff.lo - 1) * 100:+.1f}%..{(diff.hi - 1) * 100:+.1f}%)"  # lopsided: the range
    elif max(up, down) >= 0.05:
        text += f" ±{max(up, down):.1f}" + ("%" if metric.relative else "")
    return text + ("" if diff.established else f", {diff.status}")


def fmt_limit(metric: Metric, value: float) -> str:
    return f"±{value:.1f} pt" if not metric.relative else f"±{100 * value:.1f}%"


def fmt_judgement(j: Judgement | None) -> str:
    if j is None:
        return "–"
    text = f"{fmt_value(j.metric, j.base)} → {fmt_value(j.metric, j.cand)}"
    if j.change is not None and j.threshold is not None:
        text += f" ({fmt_change(j.metric, j.change, j.difference)}, limit {fmt_limit(j.metric, j.threshold)})"
    if j.verdict != "ok":
        text += f" {VERDICT_TEXT[j.verdict]}"
    return text


def one_side(record: dict[str, Any] | None, metric: Metric, is_base: bool) -> str:
    m = measure(record, metric) if record else None
    if m is None:
        return "–"
    return f"{fmt_value(metric, m)} → –" if is_base else f"– → {fmt_value(metric, m)}"


def row(cell: CellResult) -> str:
    cols = [VERDICT_TEXT[cell.verdict], cell.label]
    judged = {j.metric.name: j for j in cell.judgements}
    for metric in METRICS:
        if cell.verdict in ("missing", "new"):
            cols.append(one_side(cell.base or cell.cand, metric, cell.verdict == "missing"))
        else:
            cols.append(fmt_judgement(judged.get(metric.name)))
    repeats = [str(((r or {}).get("repeats") or {}).get("n") or 1) for r in (cell.base, cell.cand)]
    notes = [cell.note] if cell.note else []
    present = cell.base or cell.cand
    if cell.verdict in ("missing", "new") and present and present.get("status") != "success":
        notes.append(f"status {present.get('status')}")
    if cell.base and cell.cand:
        notes.append(f"repeats {repeats[0]} vs {repeats[1]}")
        notes += start_mismatch(cell.base, cell.cand)
    cols.append("; ".join(notes))
    return "| " + " | ".join(c.replace("|", "\\|") for c in cols) + " |"


def start_mismatch(base: dict[str, Any], cand: dict[str, Any]) -> list[str]:
    """A CPU cell forked from bench.launch.forkserver starts from the server's resident set: its peak is not
    comparable with an exec'd cell's (GPU peaks are per process and unaffected)."""
    starts = [(r.get("env") or {}).get("cell_start") for r in (base, cand)]
    cpu = any(((r.get("memory") or {}).get("device")) == "cpu" for r in (base, cand))
    if cpu and None not in starts and starts[0] != starts[1]:
        return [f"cell start {starts[0]} vs {starts[1]}: CPU peaks not comparable"]
    return []


def headline(comparison: Comparison) -> str:
    counts = [f"{comparison.count(v)} {v}" for v in ("regressed", "improved", "ok", "missing", "new")
              if comparison.count(v)]
    status = "REGRESSION" if comparison.regressed else "no regression"
    return f"## bench.compare: {status} ({', '.join(counts) or 'no cells'})"


def package_changes(base: list[dict[str, Any]], cand: list[dict[str, Any]]) -> str:
    b, c = packages(base), packages(cand)
    changed = [f"{name} {b.get(name)} → {c.get(name)}" for name in sorted(set(b) | set(c))
               if b.get(name) != c.get(name)]
    return ", ".join(changed) if changed else "none"


def side_line(name: str, path: str, records: list[dict[str, Any]], hardware: str) -> str:
    sha = git_sha(records)
    return f"- **{name}**: `{path}` ({len(records)} records, {hardware}, git {sha[:10] if sha else '?'})"


def tolerance_line(tolerance: dict[str, float]) -> str:
    parts = [f"{m.label} {fmt_limit(m, tolerance[m.name])}" for m in METRICS]
    return (f"Flagged when a change is worse than both the tolerance ({', '.join(parts)}) and the noise band of "
            "the repeats' 95% intervals (`limit` is the larger of the two), and established: the 95% interval of "
            "the change (± after it; from each side's interval: the repeats', else the run's own batch-means "
            "interval of steps/s) excludes no change. n.s. = not established, within noise; a figure with no "
            "interval (one CPU peak, one seed) is taken at face value. A within-run interval misses run-to-run "
            "drift: the tolerance stays the floor.")


def render(comparison: Comparison, base: list[dict[str, Any]], cand: list[dict[str, Any]], base_path: str,
           cand_path: str, tolerance: dict[str, float]) -> str:
    lines = [headline(comparison), "",
             side_line("baseline", base_path, base, comparison.base_hardware),
             side_line("candidate", cand_path, cand, comparison.cand_hardware),
             f"- **package changes**: {package_changes(base, cand)}", "",
             "| verdict | cell | " + " | ".join(m.label for m in METRICS) + " | notes |",
             "|---|---|" + "---|" * len(METRICS) + "---|"]
    lines += [row(cell) for cell in comparison.cells]
    lines += ["", tolerance_line(tolerance)]
    lines += [f"- {note}" for note in comparison.notes]
    return "\n".join(lines) + "\n"
