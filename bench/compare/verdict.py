"""Is a metric's change a regression? Direction, tolerance and noise.

A change counts (regressed or improved, by the metric's direction) only when it is larger than both
  - the tolerance: relative for peak memory and steps/s, absolute points for quality; and
  - the noise band, from the repeats' statistics (`repeats.stats`, bench/repeats.py) when present:
      both sides repeated   -> the two 95% confidence half-widths added (the intervals don't overlap);
      one side repeated     -> that side's 95% prediction half-width for one new run, t * s * sqrt(1 + 1/n)
                               (a single rerun scatters by the run-to-run spread, not by the CI of a mean);
      neither               -> no band, the tolerance alone.
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

from bench.record import T95  # the t quantiles behind the records' own intervals

Verdict = Literal["ok", "improved", "regressed", "missing", "new"]


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

    def ci_half(self) -> float:
        return t95(self.n) * self.stdev / math.sqrt(self.n) if self.repeated else 0.0

    def prediction_half(self) -> float:
        return t95(self.n) * self.stdev * math.sqrt(1 + 1 / self.n) if self.repeated else 0.0

    @property
    def repeated(self) -> bool:
        return self.n > 1 and self.stdev is not None


@dataclass(frozen=True)
class Judgement:
    metric: Metric
    base: Measure | None
    cand: Measure | None
    verdict: Verdict
    change: float | None = None  # relative (fraction) or absolute points
    threshold: float | None = None  # the larger of tolerance and noise, in the change's unit
    noise: float | None = None


def t95(n: int) -> float:
    return T95[n - 2] if 2 <= n <= len(T95) + 1 else 1.96


def quality_scale(record: dict[str, Any]) -> float:
    """Points per unit of quality.main: GLUE metrics are fractions (x100), SQuAD's F1 is already 0-100."""
    task = ((record.get("quality") or {}).get("task") or "").lower()
    return 1.0 if task.startswith("squad") else 100.0


def measure(record: dict[str, Any], metric: Metric) -> Measure | None:
    """The metric of a successful record (mean and spread of its repeats when it has them)."""
    if record.get("status") != "success":
        return None
    scale = quality_scale(record) if metric.name == "quality_main" else 1.0
    stats = ((record.get("repeats") or {}).get("stats") or {}).get(metric.name)
    if stats and stats.get("mean") is not None:
        stdev = stats.get("stdev")
        return Measure(stats["mean"] * scale, None if stdev is None else stdev * scale, int(stats.get("n") or 1))
    value = (record.get(metric.block) or {}).get(metric.key)
    return None if value is None else Measure(float(value) * scale)


def noise_band(base: Measure, cand: Measure) -> float:
    if base.repeated and cand.repeated:
        return base.ci_half() + cand.ci_half()
    return base.prediction_half() + cand.prediction_half()  # at most one of these is non-zero


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
    better = change > 0 if metric.higher_is_better else change < 0
    verdict: Verdict = "ok" if abs(change) <= threshold else ("improved" if better else "regressed")
    return Judgement(metric, base, cand, verdict, change, threshold, noise)


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
