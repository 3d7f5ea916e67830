"""Is a metric's change a regression? Direction, tolerance, noise, and whether the change is established.

A change counts (regressed or improved, by the metric's direction) only when
  - it is larger than the tolerance: relative for peak memory and steps/s, absolute points for quality;
  - it is larger than the noise band, from the repeats' statistics (`repeats.stats`) when present:
      both sides repeated   -> the two 95% confidence half-widths added (the intervals don't overlap);
      one side repeated     -> that side's 95% prediction half-width for one new run, t * s * sqrt(1 + 1/n)
                               (a single rerun scatters by the run-to-run spread, not by the CI of a mean);
      neither               -> no band;
  - and it is established: the 95% interval of the ratio candidate / baseline (bench.stats.ratio; quality:
    the difference in points, bench.stats.delta) excludes 1 (0). Each side's interval is its figure's own:
    the repeats' (mean of N runs), else the run's within-run batch-means interval of steps/s (the record's
    `timing.steps_per_s_ci95`, or computed from `timing.step_times_s` in records made before that field).
    A single CUDA peak is exact (the same program's peak repeats to the byte: the 3-repeat H100 cells in
    results/gpu-h100). A figure with no interval (one CPU RSS peak, one seed's score, a run without step
    times) is taken at face value: the tolerance and the noise band alone judge it, as before intervals.
A within-run interval knows nothing of run-to-run drift (clocks, a neighbour's load, another boot), so it
alone would flag drift as a change: that is why the tolerance stays the floor and the repeats' band stays.
With repeats the means are compared (not the median repeat the record's own blocks hold).

Default tolerances (README "Regression gate"): 5% for peak memory and steps/s, 1 point for quality: half
the smallest change the gate must catch (10% slower, 10% more memory, 2 points of accuracy). Alone they
would cry wolf on a noisy machine: on the shared 2-vCPU VM, 10 reruns of the ci_cpu LoRA cell spread
-24%..+10% in steps/s and -3%..+10% in peak RSS, so the tolerance alone flagged 5 of 10; with the noise
band of the baseline's 10 repeats, none (benchmarks/compare_noise.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from bench import stats
from bench.stats import Difference, Estimate

Verdict = Literal["ok", "improved", "regressed", "missing", "new"]
RATES = ("steps_per_s", "samples_per_s", "tokens_per_s")
EXACT_CUDA_PEAK = ("one CUDA run: treated as exact (a program's CUDA peak repeats to the byte: the 3-repeat "
                   "H100 cells in results/gpu-h100)")
NO_INTERVAL = "one run, no interval"


@dataclass(frozen=True)
class Metric:
    name: str  # the key in repeats.stats
    label: str
    block: str  # the record block holding the value
    key: str
    higher_is_better: bool
    relative: bool  # tolerance relative to the baseline (else absolute, in the metric's display unit)


METRICS = (
    Metric("peak_bytes", "peak memory", "memory", "peak_bytes", higher_is_better=False, relative=True),
    Metric("steps_per_s", "steps/s", "timing", "steps_per_s", higher_is_better=True, relative=True),
    Metric("quality_main", "quality", "quality", "main", higher_is_better=True, relative=False),
)
DEFAULT_TOLERANCE = {"peak_bytes": 0.05, "steps_per_s": 0.05, "quality_main": 1.0}


@dataclass(frozen=True)
class Measure:
    value: float  # the mean of the repeats when present, else the record's figure
    stdev: float | None = None  # across repeats
    n: int = 1
    lo: float | None = None  # its 95% interval (repeats', or the run's own); None: none known
    hi: float | None = None

    def ci_half(self) -> float:
        return t95(self.n) * self.stdev / math.sqrt(self.n) if self.repeated else 0.0

    def prediction_half(self) -> float:
        return t95(self.n) * self.stdev * math.sqrt(1 + 1 / self.n) if self.repeated else 0.0

    @property
    def repeated(self) -> bool:
        return self.n > 1 and self.stdev is not None

    @property
    def has_interval(self) -> bool:
        return (self.lo is not None and self.hi is not None) or self.repeated

    def estimate(self) -> Estimate:
        """The interval the verdict uses: its own, else the repeats' t interval, else exact (face value)."""
        if self.lo is not None and self.hi is not None:
            return Estimate(self.value, self.lo, self.hi, self.n)
        half = self.ci_half()
        return Estimate(self.value, self.value - half, self.value + half, self.n)


@dataclass(frozen=True)
class Judgement:
    metric: Metric
    base: Measure | None
    cand: Measure | None
    verdict: Verdict
    change: float | None = None  # relative (fraction) or absolute points
    threshold: float | None = None  # the larger of tolerance and noise, in the change's unit
    noise: float | None = None
    difference: Difference | None = None  # the change with its 95% interval and whether it is established


def t95(n: int) -> float:
    """The t quantile for the mean of n runs (n - 1 degrees of freedom)."""
    return stats.t95(n - 1) if n >= 2 else 1.96


def quality_scale(record: dict[str, Any]) -> float:
    """Points per unit of quality.main: GLUE metrics are fractions (x100), SQuAD's F1 is already 0-100."""
    task = ((record.get("quality") or {}).get("task") or "").lower()
    return 1.0 if task.startswith("squad") else 100.0


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


def _pair(value: Any) -> tuple[float, float] | None:
    """A stored interval [lo, hi]; hi null (or inf) = unbounded above (a rate whose step-time interval
    reaches zero)."""
    if not isinstance(value, list) or len(value) != 2 or not _number(value[0]) or not math.isfinite(value[0]):
        return None
    if value[1] is None:
        return float(value[0]), math.inf
    return (float(value[0]), float(value[1])) if _number(value[1]) and value[1] >= value[0] else None


def _repeated(record: dict[str, Any], name: str, scale: float = 1.0) -> Estimate | None:
    """The repeats' mean with the interval the sweep stored (>= 2 successful repeats)."""
    repeats = record.get("repeats") or {}
    block = (repeats.get("stats") or {}).get(name)
    n = int((block or {}).get("n") or 0)
    if not block or block.get("mean") is None or n < 2:
        return None
    mean, ci = float(block["mean"]) * scale, _pair(block.get("ci95"))
    if ci is None or not ci[0] <= block["mean"] <= ci[1]:  # no interval stored (or not around its mean)
        stdev = block.get("stdev")
        if stdev is None:
            return Estimate(mean, n=n, method=f"mean of {n} repeats, no interval")
        ci = (block["mean"] - t95(n) * stdev / math.sqrt(n), block["mean"] + t95(n) * stdev / math.sqrt(n))
    how = block.get("method") or "t interval of the repeats' values"
    return Estimate(mean, ci[0] * scale, ci[1] * scale, n, f"mean of {n} repeats: {how}")


def rate(record: dict[str, Any], name: str = "steps_per_s") -> Estimate | None:
    """A successful record's rate (steps/s, samples/s or tokens/s) with its 95% interval. One statistic for
    every rate of a record: the repeats' mean when it has repeats (a rate the stats lack is steps/s's
    estimate x the run's units per step), else the run's own figure with `timing.<rate>_ci95`, or, in
    records made before that field, the batch-means interval of `timing.step_times_s` (stats.rate_interval)."""
    if record.get("status") != "success":
        return None
    timing = record.get("timing") or {}
    own, steps = timing.get(name), timing.get("steps_per_s")
    if (est := _repeated(record, name)) is not None:
        return est
    if name != "steps_per_s" and (est := _repeated(record, "steps_per_s")) is not None:
        return est.scaled(own / steps) if own is not None and steps else None
    if own is None or isinstance(own, bool):
        return None
    if (ci := _pair(timing.get(f"{name}_ci95"))) is not None:
        steps_n = timing.get("measured_steps")
        return Estimate(float(own), ci[0], ci[1], steps_n if isinstance(steps_n, int) and steps_n > 0 else 1,
                        f"one run: {timing.get('rate_ci_method') or 'within-run 95% interval'}")
    times = timing.get("step_times_s")
    within = stats.rate_interval(stats.finite(times)) if isinstance(times, list) else None
    if within is None or not within.value:
        return Estimate(float(own), n=1, method=NO_INTERVAL)
    est = within.scaled(float(own) / within.value)  # the interval's shape, on the run's own figure
    return Estimate(est.value, est.lo, est.hi, est.n, f"one run: {within.method} (from timing.step_times_s)")


def peak(record: dict[str, Any]) -> Estimate | None:
    """Peak memory: the repeats' mean and interval; one CUDA run's peak exact; one CPU RSS peak no interval."""
    if record.get("status") != "success":
        return None
    if (est := _repeated(record, "peak_bytes")) is not None:
        return est
    memory = record.get("memory") or {}
    value = memory.get("peak_bytes")
    if value is None or isinstance(value, bool):
        return None
    if memory.get("device") == "cuda":
        return Estimate(float(value), float(value), float(value), 1, EXACT_CUDA_PEAK)
    return Estimate(float(value), n=1, method=NO_INTERVAL)


def quality(record: dict[str, Any]) -> Estimate | None:
    """The main quality metric in points: the seeds' mean and interval, else one seed (no interval)."""
    if record.get("status") != "success":
        return None
    scale = quality_scale(record)
    if (est := _repeated(record, "quality_main", scale)) is not None:
        return est
    value = (record.get("quality") or {}).get("main")
    if value is None or isinstance(value, bool):
        return None
    return Estimate(float(value) * scale, n=1, method="one seed, no interval")


FIGURES = {"peak_bytes": peak, "steps_per_s": rate, "quality_main": quality}


def measure(record: dict[str, Any], metric: Metric) -> Measure | None:
    """The metric of a successful record (mean and spread of its repeats when it has them) with its interval."""
    est = FIGURES[metric.name](record)
    if est is None:
        return None
    scale = quality_scale(record) if metric.name == "quality_main" else 1.0
    block = ((record.get("repeats") or {}).get("stats") or {}).get(metric.name) or {}
    stdev = block.get("stdev") if est.n > 1 and block.get("mean") is not None else None
    return Measure(est.value, None if stdev is None else stdev * scale, est.n if stdev is not None else 1,
                   est.lo, est.hi)


def noise_band(base: Measure, cand: Measure) -> float:
    if base.repeated and cand.repeated:
        return base.ci_half() + cand.ci_half()
    return base.prediction_half() + cand.prediction_half()  # at most one of these is non-zero


def difference(metric: Metric, base: Measure, cand: Measure) -> Difference:
    """candidate vs baseline with its 95% interval: a ratio (memory, speed) or points (quality)."""
    b, c = base.estimate(), cand.estimate()
    diff = stats.ratio(c, b) if metric.relative else stats.delta(c, b)
    if not (base.has_interval and cand.has_interval):  # taken at face value: the tolerance and band judge it
        return Difference(diff.value, None, None, diff.kind, "no interval")
    return diff


def judge(metric: Metric, base: Measure | None, cand: Measure | None, tolerance: float) -> Judgement | None:
    if base is None and cand is None:
        return None
    if base is None or cand is None:
        return Judgement(metric, base, cand, "new" if base is None else "missing")
    diff = cand.value - base.value
    noise = noise_band(base, cand)
    if metric.relative:
        scale = abs(base.value) or 1.0
        change, noise = diff / scale, noise / scale
    else:
        change = diff
    threshold = max(tolerance, noise)
    established = difference(metric, base, cand)
    better = change > 0 if metric.higher_is_better else change < 0
    flagged = abs(change) > threshold and established.status in ("established", "no interval")
    verdict: Verdict = "ok" if not flagged else ("improved" if better else "regressed")
    return Judgement(metric, base, cand, verdict, change, threshold, noise, established)


def judge_records(base: dict[str, Any], cand: dict[str, Any],
                  tolerance: dict[str, float]) -> tuple[Verdict, list[Judgement], str]:
    """The cell's verdict (the worst of its metrics, or from the status), its metrics' judgements, a note."""
    b_status, c_status = base.get("status"), cand.get("status")
    if b_status != "success" or c_status != "success":
        note = f"status {b_status} -> {c_status}" if b_status != c_status else f"status {c_status}"
        message = ((cand.get("error") or {}).get("message") or "").splitlines()
        note += f" ({message[0][:100]})" if message and c_status != "success" else ""
        if b_status == "success" or (c_status == "failed" and b_status != "failed"):
            return "regressed", [], note
        return ("improved" if c_status == "success" else "ok"), [], note
    judgements = [j for m in METRICS if (j := judge(m, measure(base, m), measure(cand, m), tolerance[m.name]))]
    verdicts = {j.verdict for j in judgements}
    verdict: Verdict = ("regressed" if "regressed" in verdicts else "improved" if "improved" in verdicts
                        else "ok")
    return verdict, judgements, ""
