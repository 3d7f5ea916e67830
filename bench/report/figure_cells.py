"""What one figure marker stands for when a figure aggregates records: the cells (method label x model) it
draws, which labels it draws when there are many, and each cell's median with a 95% interval.

The interval of a median over several records is distribution-free (order statistics, see median_interval):
records of one cell are reruns or near-copies whose spread need not be normal, and a median with an
order-statistic interval is not pulled by one slow or OOM-adjacent outlier the way a t interval of the mean is.
A cell of one record keeps that record's own interval (its repeats' CI, or its steps' batch-means CI).
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Callable

from bench.report.cells import GB
from bench.report.groups import method_base, method_sort_key, workload
from bench.report.load import Rec
from bench.stats import Estimate

MAX_LABELS = 8  # method labels drawn in one figure
AGGREGATE = ("A cell with several records is drawn at their median, its bar the median's 95% order-statistic "
             "interval (2 to 5 records: their range); a cell of one record shows that record's own interval.")


def shown_labels(recs: list[Rec], limit: int = MAX_LABELS, max_cells: int | None = None) -> list[str]:
    """The labels to draw, in method order: all of them, or at most `limit` (and, where max_cells is given, no
    more than fill max_cells (label, model) cells; one at least): first each method's label with the most
    records, then the others by their number of records."""
    order = list(dict.fromkeys(r["label"] for r in sorted(recs, key=method_sort_key)))
    counts = Counter(r["label"] for r in recs)
    cells = Counter(label for label, _ in {(r["label"], r["model"]) for r in recs})
    base = {r["label"]: method_base(r) for r in recs}
    firsts = {}  # each method's label with the most records goes first, so every method stays in the figure
    for lab in sorted(order, key=lambda lab: (-counts[lab], order.index(lab))):
        firsts.setdefault(base[lab], lab)
    keep: list[str] = []
    for lab in sorted(order, key=lambda lab: (lab not in firsts.values(), -counts[lab], order.index(lab)))[:limit]:
        if keep and max_cells is not None and sum(cells[k] for k in keep) + cells[lab] > max_cells:
            break
        keep.append(lab)
    return [lab for lab in order if lab in keep]


def left_out(ax, shown: list[str], recs: list[Rec]) -> None:
    total = len({r["label"] for r in recs})
    if len(shown) < total:
        ax.set_title(f"{len(shown)} of {total} method labels drawn (every method, then those with the most "
                     "records); the tables list every cell", fontsize=8)


def median_interval(values: list[float]) -> tuple[float, float, float]:
    """The sample median and a distribution-free interval for the population median: order statistics
    x(j) .. x(n+1-j), with j the largest rank whose coverage P(j <= Binomial(n, 1/2) <= n-j) is >= 95%;
    below 6 values none reaches 95%, so min .. max (coverage 1 - 2^(1-n))."""
    xs, n = sorted(values), len(values)
    mid = (xs[(n - 1) // 2] + xs[n // 2]) / 2
    j, tail, total = 1, 1, 2 ** n  # tail = #outcomes with B < j+1, i.e. sum C(n, i) for i <= j-1, times 2^n
    while j < n // 2:
        nxt = tail + math.comb(n, j)
        if 1 - 2 * nxt / total < 0.95:
            break
        tail, j = nxt, j + 1
    return mid, xs[j - 1], xs[n - j]


def cell_point(ests: list[Estimate]) -> Estimate:
    """One cell's figure: a single record's own estimate (non-finite bounds dropped), else the median of the
    records' values with median_interval."""
    if len(ests) == 1:
        e = ests[0]
        finite = e.has_interval and math.isfinite(e.lo) and math.isfinite(e.hi)
        return e if finite or not e.has_interval else Estimate(e.value, n=e.n, method=e.method)
    mid, lo, hi = median_interval([e.value for e in ests])
    return Estimate(mid, lo, hi, len(ests), "median, order-statistic interval")


def yerr(points: list[Estimate]) -> list[list[float]]:
    return [[max(p.value - p.lo, 0) if p.has_interval else 0 for p in points],
            [max(p.hi - p.value, 0) if p.has_interval else 0 for p in points]]


def cells_of(recs: list[Rec], labels: list[str], key: Callable[[Rec], tuple]) -> dict[tuple, list[Rec]]:
    out: dict[tuple, list[Rec]] = defaultdict(list)
    for r in recs:
        if r["label"] in labels:
            out[key(r)].append(r)
    return out


def legend_name(label: str, recs: list[Rec]) -> str:
    """The label, with its record count where one of its cells holds several records."""
    per_cell = Counter((r["model"], workload(r)) for r in recs if r["label"] == label)
    return f"{label} ({sum(per_cell.values())} records)" if per_cell and max(per_cell.values()) > 1 else label


def peak_estimate(r: Rec) -> Estimate | None:
    if not (r.ok and r["peak_bytes"]):
        return None
    return r.est.get("peak") or Estimate(float(r["peak_bytes"]))


def gb(e: Estimate) -> Estimate:
    return e.scaled(1 / GB)
