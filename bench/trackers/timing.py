"""Per-step times: the measured (post-warm-up) steps, and the warm-up steps kept apart (they hold one-off
costs: the first step's lazy initialisation, GaLore's first projection, an SVD of every projected matrix).

Two clocks (`train.step_clock`). `sync`: the device is synchronised and the host clock read at each step
boundary. `events` (CUDA): one CUDA event recorded at each step boundary on the stream, no host sync per
step; the events are read (one synchronize) at the end of a training segment. Consecutive boundaries
share an event, so the step times add up to the stream's whole measured time, gaps included.

Every rate comes from one estimate (bench.stats.rate_interval, batch means over the step times): steps/s
with its 95% interval, and samples/s and tokens/s that estimate scaled by the samples and tokens of a step.
"""
from __future__ import annotations

import statistics
import time
from typing import Any, Callable

from bench import stats
from bench.trackers.base import Tracker


class StepTimer:
    """`synchronize`: the device's sync (a no-op on CPU). `events`: a factory of timing-enabled CUDA events
    (torch.cuda.Event(enable_timing=True)) for the `events` clock; None for `sync`."""

    def __init__(self, synchronize: Callable[[], None], events: Callable[[], Any] | None = None) -> None:
        self._sync = synchronize
        self._event = events
        self.clock = "events" if events else "sync"
        self._t0 = 0.0
        self._last: Any = None  # events: the boundary event the next step starts from
        self._pending: list[tuple[Any, Any, bool]] = []  # events: (start, end, measured) not yet read
        self.step_times: list[float] = []
        self.warmup_times: list[float] = []

    def begin(self) -> None:
        if self._event is None:
            self._sync()
            self._t0 = time.perf_counter()
        elif self._last is None:  # a segment's first step: its start boundary
            self._last = self._event()
            self._last.record()

    def end(self, measured: bool = True) -> None:
        if self._event is None:
            self._sync()
            (self.step_times if measured else self.warmup_times).append(time.perf_counter() - self._t0)
            return
        boundary = self._event()
        boundary.record()
        self._pending.append((self._last, boundary, measured))
        self._last = boundary

    def flush(self) -> None:
        """events: one synchronize, then every pending step's time (ms -> s). Call at a segment's end."""
        if self._event is None or not self._pending:
            self._last = None
            return
        self._sync()
        for start, stop, measured in self._pending:
            (self.step_times if measured else self.warmup_times).append(start.elapsed_time(stop) / 1000.0)
        self._pending.clear()
        self._last = None  # the next segment starts after untimed work (evaluation): a fresh boundary


def percentile(ordered: list[float], q: int) -> float | None:
    if not ordered:
        return None
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[q - 1]


def ci(estimate: stats.Estimate | None) -> list[float] | None:
    return [estimate.lo, estimate.hi] if estimate is not None and estimate.has_interval else None


def summarize(step_times: list[float], warmup_steps: int, samples_per_step: float, tokens_per_step: float,
              measured_steps: int | None = None, measured_seconds: float | None = None,
              stop_reason: str = "fixed steps", step_clock: str = "sync") -> dict:
    """Derive every rate from the per-step times themselves, so the figures can be checked against them:
    steps/s = steps / sum(step times) with its batch-means 95% interval; samples/s and tokens/s are that one
    estimate scaled. Without per-step times (trackers off) the rate comes from the measured region's total
    time, with no interval; fewer than 4 measured steps give no interval either."""
    n = len(step_times) if step_times else (measured_steps or 0)
    total = sum(step_times) if step_times else (measured_seconds or 0.0)
    steps_per_s = n / total if total > 0 else 0.0
    rate = stats.rate_interval(step_times) if step_times else None
    ordered = sorted(step_times)
    return {
        "warmup_steps": warmup_steps,
        "measured_steps": n,
        "step_times_s": step_times,
        "steps_per_s": steps_per_s,
        "samples_per_s": steps_per_s * samples_per_step,
        "tokens_per_s": steps_per_s * tokens_per_step,
        "steps_per_s_ci95": ci(rate),
        "samples_per_s_ci95": ci(rate.scaled(samples_per_step) if rate else None),
        "tokens_per_s_ci95": ci(rate.scaled(tokens_per_step) if rate else None),
        "rate_ci_method": rate.method if rate else None,
        "outlier_steps": stats.outlier_steps(step_times) if step_times else None,
        "stop_reason": stop_reason,
        "step_clock": step_clock if step_times else None,
        "step_p50_s": percentile(ordered, 50),
        "step_p90_s": percentile(ordered, 90),
        "train_seconds": total,
        "samples_per_step": samples_per_step,
        "tokens_per_step": tokens_per_step,
    }


class TimingTracker(Tracker):
    """The record's timing: the step loop times the steps (StepTimer, clocks next to the work), this turns
    its result into the section, rates derived from the per-step times."""
    section = "timing"

    def __init__(self, warmup_steps: int, step_clock: str = "sync") -> None:
        self.warmup_steps = warmup_steps
        self.step_clock = step_clock
        self._trained: Any = None  # bench.cell.step_loop.TrainResult

    def trained(self, result: Any) -> None:
        self._trained = result

    def result(self) -> dict[str, Any] | None:
        r = self._trained
        if r is None:  # training did not end: nothing to time
            return None
        n = max(r.measured_steps, 1)
        timing = summarize(r.step_times, self.warmup_steps, r.measured_samples / n, r.measured_tokens / n,
                           r.measured_steps, r.measured_seconds, getattr(r, "stop_reason", "fixed steps"),
                           self.step_clock)
        timing["train_seconds_with_warmup"] = r.train_seconds
        timing["warmup_step_times_s"] = r.warmup_step_times
        return timing

    @classmethod
    def merge_ranks(cls, sections: list[dict[str, Any] | None]) -> dict[str, Any] | None:
        """Rank 0's step times; the samples and tokens of a step are every rank's (the global batch). The
        rates and their intervals are rank 0's steps/s estimate scaled by the global batch, as for one rank."""
        timing = sections[0]
        if not timing or not all(sections):
            return timing
        samples = sum(s["samples_per_step"] for s in sections)
        tokens = sum(s["tokens_per_step"] for s in sections)
        steps_ci = timing.get("steps_per_s_ci95")

        def scaled(factor: float) -> list[float | None] | None:
            return [None if x is None else x * factor for x in steps_ci] if steps_ci else None

        return {**timing, "samples_per_step": samples, "tokens_per_step": tokens,
                "samples_per_s": timing["steps_per_s"] * samples, "tokens_per_s": timing["steps_per_s"] * tokens,
                "samples_per_s_ci95": scaled(samples), "tokens_per_s_ci95": scaled(tokens)}
