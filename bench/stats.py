"""Uncertainty for every figure bench prints: rates from a cell's own step times, the spread of repeats, and
the verdict on a difference (established, within noise, or equivalent). Pure Python, no torch: the cell, the
sweep (repeats), the report and bench.compare all read their intervals from here, so one rule holds.

Rates within one run — batch means. Step times are autocorrelated (clock boosts, thermal drift, allocator
warm-up, a neighbour's load come in runs of steps), so the steps are not independent draws and the naive
s/sqrt(n) interval is too narrow. The measured steps are cut into k = floor(sqrt(n)) contiguous batches
(at least 2); batch means that long are close to independent when the correlation is shorter than a batch,
and the t interval of their mean (k-1 degrees of freedom) is honest for the mean step time. A rate is
units / mean step time, so its interval is the step-time interval inverted (exact for a monotone map).
A block bootstrap would serve as well; batch means needs no resampling, is deterministic (a record
recomputed from its step times gives the same interval) and its degrees of freedom say plainly how little
a 20-step window knows.

Repeats — each run's mean step time is one draw; the between-run t interval (n-1 df) already contains the
within-run noise, but with 2-3 repeats it can come out narrower than one run's own interval by chance, so
the standard error used is the larger of the two (between-run, and the pooled within-run one over n).

Differences — ratios (speed, memory) on the log scale: half-widths of the two log intervals added in
quadrature (the delta method; assumes independent sides). Quality differences in points, half-widths in
quadrature. A difference whose interval contains zero (ratio 1) is "n.s."; quality's "comparable" is an
equivalence verdict: the whole interval of the difference inside +-margin (default 1 point).
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Iterable, Literal, Sequence

# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom (beyond: the normal 1.96).
T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
       2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
       2.045, 2.042)
OUTLIER_MADS = 3.0  # a step beyond this many scaled MADs of the median step is counted (never dropped)
MAD_SCALE = 1.4826  # MAD -> standard deviation for a normal distribution
EQUIVALENCE_POINTS = 1.0  # quality: "comparable" when the difference's whole interval is inside +-1 point


def t95(df: int) -> float:
    """Two-sided 95% t quantile for `df` degrees of freedom (df >= 1)."""
    return T95[df - 1] if 1 <= df <= len(T95) else 1.96


@dataclass(frozen=True)
class Estimate:
    """A figure with its 95% interval; lo/hi None when nothing is known about its uncertainty."""
    value: float
    lo: float | None = None
    hi: float | None = None
    n: int = 1
    method: str = "single value, no interval"

    @property
    def has_interval(self) -> bool:
        return self.lo is not None and self.hi is not None

    @property
    def rel_half_width(self) -> float | None:
        if not self.has_interval or not self.value:
            return None
        return (self.hi - self.lo) / 2 / abs(self.value)

    def scaled(self, factor: float) -> "Estimate":
        """The same estimate in other units (tokens/s = steps/s x tokens per step)."""
        lo = None if self.lo is None else self.lo * factor
        hi = None if self.hi is None else self.hi * factor
        if lo is not None and hi is not None and lo > hi:
            lo, hi = hi, lo
        return Estimate(self.value * factor, lo, hi, self.n, self.method)

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "ci95": [self.lo, self.hi] if self.has_interval else None, "n": self.n,
                "method": self.method}


def mean_interval(values: Sequence[float]) -> Estimate:
    """Student's t interval of the mean of independent values (repeats, seeds)."""
    n = len(values)
    mean = statistics.fmean(values)
    if n < 2:
        return Estimate(mean, n=n)
    half = t95(n - 1) * statistics.stdev(values) / math.sqrt(n)
    return Estimate(mean, mean - half, mean + half, n, f"t interval of the mean of {n} independent runs")


def batch_count(n_steps: int) -> int:
    return max(2, math.isqrt(n_steps))


def step_time_interval(step_times: Sequence[float]) -> Estimate | None:
    """Batch-means 95% interval of the mean step time; None with fewer than 4 steps."""
    n = len(step_times)
    if n < 4:
        return None
    k = batch_count(n)
    size = n // k
    used = step_times[n - k * size:]  # drop the earliest remainder steps from the batches (not the mean)
    means = [statistics.fmean(used[i * size:(i + 1) * size]) for i in range(k)]
    mean = statistics.fmean(step_times)
    half = t95(k - 1) * statistics.stdev(means) / math.sqrt(k)
    return Estimate(mean, mean - half, mean + half, n,
                    f"batch means: {k} contiguous batches of {size} steps, t with {k - 1} df")


def rate_interval(step_times: Sequence[float], units_per_step: float = 1.0) -> Estimate | None:
    """units/s from step times with the batch-means interval, inverted; None with fewer than 4 steps."""
    st = step_time_interval(step_times)
    if st is None or st.value <= 0:
        return None
    hi = units_per_step / st.lo if st.lo and st.lo > 0 else math.inf
    return Estimate(units_per_step / st.value, units_per_step / st.hi, hi, st.n, st.method)


def outlier_steps(step_times: Sequence[float], mads: float = OUTLIER_MADS) -> dict[str, Any]:
    """Steps beyond `mads` scaled MADs of the median step: counted and listed, kept in every rate."""
    rule = f"beyond {mads:g} scaled MADs (x{MAD_SCALE}) of the median step; counted, not dropped"
    if len(step_times) < 3:
        return {"count": 0, "indices": [], "rule": rule}
    median = statistics.median(step_times)
    # floor: identical steps (MAD 0) must not make a 0.1% wobble an outlier
    mad = max(statistics.median(abs(t - median) for t in step_times) * MAD_SCALE, 1e-3 * abs(median))
    indices = [i for i, t in enumerate(step_times) if abs(t - median) > mads * mad]
    return {"count": len(indices), "indices": indices, "rule": rule}


def combine_runs(run_step_times: Sequence[Sequence[float]], units_per_step: float = 1.0) -> Estimate | None:
    """The rate over repeats: each run's mean step time one draw; se = max(between-run, pooled within-run)."""
    runs = [list(t) for t in run_step_times if t]
    if not runs:
        return None
    if len(runs) == 1:
        return rate_interval(runs[0], units_per_step)
    n = len(runs)
    means = [statistics.fmean(t) for t in runs]
    grand = statistics.fmean(means)
    se_between = statistics.stdev(means) / math.sqrt(n)
    within = [step_time_interval(t) for t in runs]
    halves = [(w.hi - w.lo) / 2 / t95(batch_count(w.n) - 1) for w in within if w is not None]
    se_within = math.sqrt(sum(h * h for h in halves) / len(halves)) / math.sqrt(n) if halves else 0.0
    if se_between >= se_within:
        half, how = t95(n - 1) * se_between, f"between-run t interval of {n} runs' mean step times"
    else:
        df = min(batch_count(w.n) for w in within if w is not None) - 1
        half, how = t95(df) * se_within, f"pooled within-run batch-means interval of {n} runs (wider than between-run)"
    hi = units_per_step / (grand - half) if grand - half > 0 else math.inf
    return Estimate(units_per_step / grand, units_per_step / (grand + half), hi, n, how)


Status = Literal["established", "n.s.", "equivalent", "no interval"]


@dataclass(frozen=True)
class Difference:
    """b relative to a: `ratio` b/a (speed, memory) or `delta` b - a (quality points), with its interval."""
    value: float
    lo: float | None
    hi: float | None
    kind: Literal["ratio", "delta"]
    status: Status

    @property
    def established(self) -> bool:
        return self.status == "established"

    def text(self, digits: int = 0) -> str:
        """'-3% ±5%, n.s.' / '+41% ±6%' / '+0.4 ±0.8 pts, equivalent' / '-75% (no interval)'."""
        if self.kind == "ratio":
            centre = (self.value - 1) * 100
            body = f"{centre:+.{digits}f}%"
            if self.lo is not None and self.hi is not None:
                body += f" ±{max(self.hi - self.value, self.value - self.lo) * 100:.{digits}f}%"
        else:
            body = f"{self.value:+.1f}"
            if self.lo is not None and self.hi is not None:
                body += f" ±{max(self.hi - self.value, self.value - self.lo):.1f}"
            body += " pts"
        if self.status == "no interval":
            return body + " (no interval)"
        return body + ("" if self.status == "established" else f", {self.status}")


def _log_half(e: Estimate) -> float | None:
    if not e.has_interval or e.value <= 0 or e.lo <= 0 or not math.isfinite(e.hi):
        return None
    return max(math.log(e.hi / e.value), math.log(e.value / e.lo))


def ratio(b: Estimate, a: Estimate) -> Difference:
    """b / a with a 95% interval (log scale, half-widths in quadrature)."""
    r = b.value / a.value if a.value else math.inf
    hb, ha = _log_half(b), _log_half(a)
    if hb is None or ha is None or not math.isfinite(r):
        return Difference(r, None, None, "ratio", "no interval")
    h = math.hypot(hb, ha)
    lo, hi = r * math.exp(-h), r * math.exp(h)
    return Difference(r, lo, hi, "ratio", "n.s." if lo <= 1.0 <= hi else "established")


def delta(b: Estimate, a: Estimate, margin: float = EQUIVALENCE_POINTS) -> Difference:
    """b - a (quality points) with a 95% interval; 'equivalent' when it lies inside +-margin."""
    d = b.value - a.value
    if not (a.has_interval and b.has_interval):
        return Difference(d, None, None, "delta", "no interval")
    h = math.hypot((b.hi - b.lo) / 2, (a.hi - a.lo) / 2)
    lo, hi = d - h, d + h
    if -margin <= lo and hi <= margin:
        status: Status = "equivalent"
    else:
        status = "n.s." if lo <= 0.0 <= hi else "established"
    return Difference(d, lo, hi, "delta", status)


def best(estimates: dict[str, Estimate], higher_is_better: bool,
         kind: Literal["ratio", "delta"] = "ratio") -> tuple[str | None, list[str]]:
    """The leader when its lead over every other is established, else (None, the names tied with the top).
    A one-entry table has no leader to name."""
    if len(estimates) < 2:
        return None, list(estimates)
    order = sorted(estimates, key=lambda k: estimates[k].value, reverse=higher_is_better)
    top = order[0]
    compare = ratio if kind == "ratio" else delta
    tied = [top] + [k for k in order[1:] if not compare(estimates[top], estimates[k]).established]
    return (top, [top]) if len(tied) == 1 else (None, tied)


def from_json(block: dict[str, Any] | None) -> Estimate | None:
    """An Estimate from a record's {"value", "ci95", "n", "method"} block."""
    if not block or block.get("value") is None:
        return None
    ci = block.get("ci95") or [None, None]
    return Estimate(float(block["value"]), ci[0], ci[1], int(block.get("n") or 1),
                    block.get("method") or "single value, no interval")


def finite(values: Iterable[Any]) -> list[float]:
    return [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
