"""The verdict on one claim, from the measured (or estimated) value's 95% interval and the claimed range.

  holds            the whole interval lies inside the claimed range [lo, hi]
  refuted          the whole interval lies outside it (wholly below lo or wholly above hi)
  not established  the interval straddles a bound of the range, or the value has no interval (one run)
  not measured     nothing measured or estimated for the claim's cells (the report gives the command)

A bound of the range that is None is open. An exact figure (a parameter count, one CUDA peak) is an interval
of width zero, so it holds or is refuted outright. Differences and ratios come with their interval from
bench.stats (ratio: log scale, delta: points, half-widths in quadrature); a quality "comparable" claim has the
range [-margin, +margin], which makes "holds" bench.stats' equivalence verdict.
"""
from __future__ import annotations

from bench.stats import Estimate

HOLDS, REFUTED, NOT_ESTABLISHED, NOT_MEASURED = "holds", "refuted", "not established", "not measured"
VERDICTS = (HOLDS, REFUTED, NOT_ESTABLISHED, NOT_MEASURED)


def judge(value: Estimate | None, lo: float | None, hi: float | None) -> str:
    """One of VERDICTS for `value` against the claimed range [lo, hi] (None: an open end)."""
    if value is None:
        return NOT_MEASURED
    if not value.has_interval:
        return NOT_ESTABLISHED
    below = lo is not None and value.hi < lo
    above = hi is not None and value.lo > hi
    if below or above:
        return REFUTED
    inside = (lo is None or value.lo >= lo) and (hi is None or value.hi <= hi)
    return HOLDS if inside else NOT_ESTABLISHED


def range_text(lo: float | None, hi: float | None, unit: str) -> str:
    """'12-24 GB', '>= 60 GB', '<= 24 GB', '0.45-0.55 %'."""
    def fmt(v: float) -> str:
        return f"{v:g}"
    unit = f" {unit}" if unit else ""
    if lo is None:
        return f"\u2264 {fmt(hi)}{unit}"
    if hi is None:
        return f"\u2265 {fmt(lo)}{unit}"
    if lo == hi:
        return f"{fmt(lo)}{unit}"
    if lo == 0:
        return f"\u2264 {fmt(hi)}{unit}"
    return f"{fmt(lo)}\u2013{fmt(hi)}{unit}"
