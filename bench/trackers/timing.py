"""Per-step wall-clock times, clocks read after a device sync: the measured (post-warm-up) steps, and the
warm-up steps kept apart (they hold one-off costs: the first step's lazy initialisation, GaLore's first
projection, an SVD of every projected matrix)."""
from __future__ import annotations

import statistics
import time
from typing import Any, Callable

from bench.trackers.base import Tracker


class StepTimer:
    def __init__(self, synchronize: Callable[[], None]) -> None:
        self._sync = synchronize
        self._t0 = 0.0
        self.step_times: list[float] = []
        self.warmup_times: list[float] = []

    def begin(self) -> None:
        self._sync()
        self._t0 = time.perf_counter()

    def end(self, measured: bool = True) -> None:
        self._sync()
        (self.step_times if measured else self.warmup_times).append(time.perf_counter() - self._t0)


def summarize(step_times: list[float], warmup_steps: int, samples_per_step: int, tokens_per_step: int,
              measured_steps: int | None = None, measured_seconds: float | None = None) -> dict:
    """Derive every rate from the per-step times themselves, so the figures can be checked against them.
    Without per-step times (trackers off) the rate comes from the measured region's total time."""
    n = len(step_times) if step_times else (measured_steps or 0)
    total = sum(step_times) if step_times else (measured_seconds or 0.0)
    steps_per_s = n / total if total > 0 else 0.0
    ordered = sorted(step_times)

    def pct(q: float) -> float | None:
        if not ordered:
            return None
        if len(ordered) == 1:
            return ordered[0]
        return statistics.quantiles(ordered, n=100, method="inclusive")[int(q) - 1]

    return {
        "warmup_steps": warmup_steps,
        "measured_steps": n,
        "step_times_s": step_times,
        "steps_per_s": steps_per_s,
        "samples_per_s": steps_per_s * samples_per_step,
        "tokens_per_s": steps_per_s * tokens_per_step,
        "step_p50_s": pct(50),
        "step_p90_s": pct(90),
        "train_seconds": total,
        "samples_per_step": samples_per_step,
        "tokens_per_step": tokens_per_step,
    }


class TimingTracker(Tracker):
    """The record's timing: the step loop times the steps (StepTimer, clocks next to the work), this turns
    its result into the section, rates derived from the per-step times."""
    section = "timing"

    def __init__(self, warmup_steps: int) -> None:
        self.warmup_steps = warmup_steps
        self._trained: Any = None  # bench.cell.step_loop.TrainResult

    def trained(self, result: Any) -> None:
        self._trained = result

    def result(self) -> dict[str, Any] | None:
        r = self._trained
        if r is None:  # training did not end: nothing to time
            return None
        n = max(r.measured_steps, 1)
        timing = summarize(r.step_times, self.warmup_steps, r.measured_samples / n, r.measured_tokens / n,
                           r.measured_steps, r.measured_seconds)
        timing["train_seconds_with_warmup"] = r.train_seconds
        timing["warmup_step_times_s"] = r.warmup_step_times
        return timing

    @classmethod
    def merge_ranks(cls, sections: list[dict[str, Any] | None]) -> dict[str, Any] | None:
        """Rank 0's step times; the samples and tokens of a step are every rank's (the global batch)."""
        timing = sections[0]
        if not timing or not all(sections):
            return timing
        samples = sum(s["samples_per_step"] for s in sections)
        tokens = sum(s["tokens_per_step"] for s in sections)
        return {**timing, "samples_per_step": samples, "tokens_per_step": tokens,
                "samples_per_s": timing["steps_per_s"] * samples, "tokens_per_s": timing["steps_per_s"] * tokens}
