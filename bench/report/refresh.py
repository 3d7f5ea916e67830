"""GaLore's projection refresh, amortised over a real run.

galore-torch recomputes the projection of every projected matrix (an fp32 SVD of its gradient) on the first
optimizer step and again every `update_proj_gap` steps (loop steps 0, gap, 2 x gap, ...). A benchmark cell of
a few dozen steps sees it once, in its warm-up, so the cell's steps/s is the speed *between* refreshes. In a
run of thousands of steps the refresh recurs, so the report also shows

    steps/s with the refresh amortised = gap / (gap x steady step + refresh)

steady step: the mean measured step, refresh steps left out; refresh: a refresh step's time minus the steady
step. Both come from the record's own per-step times ("per-step"). Records made before warm-up steps were
timed one by one fall back to the warm-up's total minus warm-up steps x steady step ("warm-up total"), which
also counts each method's lazy start-up in the first steps, so it reads a little high; so does "per-step",
by the first step's start-up. The one assumption: every refresh costs what the measured one did (the same
shapes, the same SVDs). Nothing here is measured anew; it is arithmetic on the record's measurements.
"""
from __future__ import annotations

from statistics import fmean
from typing import Any


def _num_list(value: Any) -> list[float] | None:
    if isinstance(value, list) and value and all(isinstance(v, (int, float)) for v in value):
        return [float(v) for v in value]
    return None


def refresh_every(raw: dict[str, Any]) -> int | None:
    """The refresh period in optimizer steps, for a method that has one (GaLore)."""
    cell = raw.get("cell") if isinstance(raw.get("cell"), dict) else {}
    config = raw.get("config") if isinstance(raw.get("config"), dict) else {}
    method = config.get("method") if isinstance(config.get("method"), dict) else {}
    gap = method.get("update_proj_gap")
    if cell.get("method") != "galore" or not isinstance(gap, int) or isinstance(gap, bool) or gap < 1:
        return None
    return gap


def refresh_figures(raw: dict[str, Any]) -> dict[str, Any]:
    """refresh_every_steps, refresh_seconds, refresh_basis and steps_per_s_amortised (None where unknown)."""
    out: dict[str, Any] = {"refresh_every_steps": None, "refresh_seconds": None, "refresh_basis": None,
                           "steps_per_s_amortised": None}
    gap = refresh_every(raw)
    timing = raw.get("timing") if isinstance(raw.get("timing"), dict) else {}
    measured = _num_list(timing.get("step_times_s"))
    warmup = timing.get("warmup_steps")
    if gap is None or measured is None or not isinstance(warmup, int) or warmup < 0:
        return out
    out["refresh_every_steps"] = gap
    warm_times = _num_list(timing.get("warmup_step_times_s"))
    steady = [t for i, t in enumerate(measured) if (warmup + i) % gap != 0]
    if not steady:
        return out
    step = fmean(steady)
    if warmup == 0 or (warm_times is not None and len(warm_times) == warmup):
        every_step = (warm_times or []) + measured
        refresh_steps = [t for i, t in enumerate(every_step) if i % gap == 0]
        refresh, basis = fmean(refresh_steps) - step, "per-step"
    else:
        with_warmup, measured_total = timing.get("train_seconds_with_warmup"), timing.get("train_seconds")
        if not isinstance(with_warmup, (int, float)) or not isinstance(measured_total, (int, float)):
            return out
        refresh, basis = (with_warmup - measured_total) - warmup * step, "warm-up total"
    refresh = max(refresh, 0.0)
    out.update(refresh_seconds=refresh, refresh_basis=basis,
               steps_per_s_amortised=gap / (gap * step + refresh))
    return out
