"""The table model both renderers share, and how numbers and outcomes are written.

A `Cell` is text plus, where it comes from one record, that record's id (#n in the records appendix) and
a kind the HTML styles: value, est (an estimate, not a measurement), fail (OOM, failed), nofit (does not
fit), fits (hardware fit), none (no record, or nothing to compare with). GB are decimal (1e9 bytes), as in
bench.estimate and the GPU catalog.

Every figure a row compares is a bench.stats.Estimate (Rec.est) and is written with its 95% half-width
("2.45 ±0.16"); a difference is a bench.stats.Difference written "+51% ±12%", or "−3% ±5%, n.s." when its
interval includes no change (a tie, never a winner).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from bench.report.groups import models_of
from bench.report.load import Rec
from bench.stats import Difference, Estimate

GB = 1e9
MINUS = "\u2212"
METRIC_SHORT = {"accuracy": "acc", "matthews_correlation": "MCC", "combined_score": "avg of 2", "f1": "F1",
                "exact_match": "EM", "exact": "EM"}
PEAK_SOURCES = {
    "nvml_process": "NVML process peak (GPU memory this process held, CUDA context included)",
    "nvml_device_minus_baseline": "NVML device peak minus the device's use before the model loaded",
    "torch_max_reserved": "torch max reserved (allocator pool; CUDA context not included)",
    "rss_kernel_hwm": "peak resident set of the process (kernel high-water mark; Python and libraries included)",
    "rss_sampled": "peak resident set of the process (sampled; Python and libraries included)",
}


@dataclass
class Cell:
    text: str
    ref: int | None = None
    kind: str = "value"
    href: str | None = None  # a link (the records index links each record's file)


@dataclass
class Table:
    key: str  # anchor, unique in the report
    title: str
    note: str  # units, direction, what a cell is
    columns: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    footnotes: list[str] = field(default_factory=list)
    cell_refs: bool = True  # show each cell's record id (matrices); False where a column names the record
    align_numbers: bool = True  # right-align numeric cells (not in key-value tables)


NA = "n/a"


def none() -> Cell:
    """A matrix cell with no record behind it."""
    return Cell("\u2014", None, "none")


def na(why: str = "", ref: int | None = None) -> Cell:
    """A value that does not apply to this row (or was not measured: the row's status says why)."""
    return Cell(f"n/a ({why})" if why else NA, ref, "none")


def gb(value: float | None) -> str:
    if value is None:
        return "\u2014"
    v = value / GB
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def signed_pct(value: float | None) -> str:
    if value is None:
        return "\u2014"
    rounded = round(value)
    return "0%" if rounded == 0 else f"+{rounded}%" if rounded > 0 else f"{MINUS}{-rounded}%"


def sig(value: float | None) -> str:
    """A rate to about three significant digits, trailing zeros kept (2.00, 0.755, 15,974)."""
    if value is None:
        return "\u2014"
    size = abs(value)
    if size >= 100:
        return f"{value:,.0f}"
    if size == 0:
        return "0"
    for bound, digits in ((10, 1), (1, 2), (0.1, 3)):
        if size >= bound:
            return f"{value:.{digits}f}"
    return f"{value:.3g}"


def outcome(rec: Rec) -> str:
    """What a non-success record shows in place of its numbers."""
    status = rec["status"]
    if status == "oom":
        return "OOM"
    if status == "skipped":
        return {"DoesNotFit": "does not fit", "GpuBusy": "skipped (GPU busy)",
                "TooSlow": "too slow here"}.get(rec["error_type"], "skipped")
    if status == "failed" and rec["error_type"] == "Interrupted":
        return "interrupted"
    return "failed" if status == "failed" else str(status)


def outcome_kind(rec: Rec) -> str:
    return "nofit" if rec["status"] == "skipped" else "fail"


def estimate_bytes(rec: Rec) -> int | None:
    """The stored preflight estimate of the cell's peak: device memory on CUDA, host memory on CPU (which
    includes materialising a random-init base before quantisation)."""
    if rec["est_device"] == "cpu":
        return rec["est_needs_host_bytes"] or rec["est_needs_device_bytes"]
    return rec["est_needs_device_bytes"]


def failure_cell(rec: Rec, with_estimate: bool = False) -> Cell:
    text = outcome(rec)
    est = estimate_bytes(rec) if with_estimate else None
    if est:
        text += f" (est. {gb(est)})"
    return Cell(text, rec["id"], outcome_kind(rec))


def half_width(est: Estimate | None) -> float | None:
    """The larger side of the 95% interval (a rate's interval, inverted from step times, is asymmetric)."""
    if est is None or not est.has_interval:
        return None
    return max(est.hi - est.value, est.value - est.lo)


def two_digits(value: float) -> str:
    """A half-width to two significant digits (0.16, 1.3, 13, 1,300)."""
    if value <= 0 or not math.isfinite(value):
        return "\u221e" if value == math.inf else "0"
    digits = 1 - int(math.floor(math.log10(value)))
    return f"{round(value, digits):,.0f}" if digits <= 0 else f"{value:.{digits}f}"


def pm(est: Estimate | None, fmt=sig) -> str:
    """'2.45 ±0.16': the figure and its 95% half-width; the figure alone where it has no interval or an exact
    one (a single CUDA peak)."""
    if est is None:
        return "\u2014"
    half = half_width(est)
    return fmt(est.value) + (f" \u00b1{two_digits(half)}" if half else "")


def steps_estimate(rec: Rec) -> Estimate | None:
    return rec.est.get("steps")


def steps_text(rec: Rec) -> str:
    """steps/s with its 95% half-width: the repeats' mean and CI, else the run's own batch-means interval."""
    return pm(steps_estimate(rec))


def steps_value(rec: Rec) -> float | None:
    est = steps_estimate(rec)
    return est.value if est else None


def long_run_speed(rec: Rec) -> Estimate | None:
    """Steps/s over a long run: GaLore's with its projection refresh amortised (the interval carried over from
    the steps' own: the one measured refresh is taken as exact), every other method's as is."""
    est, amortised, gap = steps_estimate(rec), rec["steps_per_s_amortised"], rec["refresh_every_steps"]
    if amortised is None or est is None or not gap:
        return est
    refresh = gap / amortised - gap / est.value  # seconds per refresh, as refresh.py measured it

    def over(rate: float | None) -> float | None:
        seconds = None if rate is None or rate <= 0 else gap / rate + refresh
        return gap / seconds if seconds and seconds > 0 else None

    return Estimate(amortised, over(est.lo), over(est.hi), est.n,
                    f"{est.method}; refresh amortised (one refresh measured, taken as exact)")


def long_run_steps_value(rec: Rec) -> float | None:
    est = long_run_speed(rec)
    return est.value if est else None


def rate_basis(rec: Rec) -> str:
    """Which statistic a row's rates are: 'mean of 3' (repeats) or '1 run'."""
    est = steps_estimate(rec)
    return NA if est is None else f"mean of {est.n}" if est.method.startswith("mean of") else "1 run"


def quality_text(rec: Rec, seeds: bool = True) -> str:
    """The main metric, 0-100: the seeds' mean ± 95% CI with their number, or one seed's score."""
    est = rec.est.get("quality")
    if est is None:
        return NA
    short = METRIC_SHORT.get(rec["quality_metric"] or "", rec["quality_metric"] or "")
    count = "" if not seeds else f" ({est.n} seeds)" if est.n > 1 else " (1 seed)"
    return f"{pm(est, lambda v: f'{v:.1f}')} {short}".strip() + count


def diff_text(diff: Difference, invert: bool = False, no_interval: str = "no interval") -> str:
    """A ratio as a change in %: '+51% ±12%', '−3% ±5%, n.s.', '+73%' (exact sides), '+12% (1 run, no
    interval)'; a wide lopsided interval (the ratio's is symmetric on the log scale) as its range,
    '+79% (+32%..+143%)', so a reader sees whether it includes no change. invert: the reduction 1 - ratio."""
    centre = (1.0 - diff.value if invert else diff.value - 1.0) * 100
    text = signed_pct(centre)
    if diff.lo is not None and diff.hi is not None:
        up, down = (diff.hi - diff.value) * 100, (diff.value - diff.lo) * 100
        if max(up, down) >= 10 and max(up, down) > 1.25 * min(up, down):  # lopsided (log scale): the range
            ends = sorted((1.0 - d if invert else d - 1.0) * 100 for d in (diff.lo, diff.hi))
            text += f" ({signed_pct(ends[0])}..{signed_pct(ends[1])})"
        else:
            half = max(up, down)
            text += f" \u00b1{half:.0f}%" if half >= 0.95 else f" \u00b1{half:.1f}%" if half >= 0.05 else ""
    if diff.status == "no interval":
        return f"{text} ({no_interval})"
    return text if diff.established else f"{text}, {diff.status}"


def model_header(records: list[Rec], model: str) -> str:
    nominal = models_of(records).get(model, (0, None))[1]
    if not nominal or nominal.lower() in model.lower():
        return model
    return f"{model} ({nominal})"


def gb_pm(est) -> str:
    """GB with the 95% half-width (none for an exact or interval-less peak)."""
    return "\u2014" if est is None else pm(est.scaled(1e-9), lambda v: gb(v * 1e9))


RATES_NOTE = ("Rates (steps/s, tokens/s, MFU, speed vs LoRA) in a row come from one estimate, named in 'Rates "
              "from': 'mean of N' = the mean of the record's N repeats \u00b1 the repeats' 95% CI; '1 run' = the "
              "one run \u00b1 its batch-means 95% CI (contiguous batches of steps, so autocorrelated steps do "
              "not narrow it; computed from the record's per-step times where the record predates "
              "timing.steps_per_s_ci95). A '1 run' interval covers that run's step-to-step noise, not run-to-run "
              "drift: 10 reruns of a tiny CPU cell spread by a CV of 10% while their intervals held the median "
              "in 5 of 10 (benchmarks/coverage.py), so rest a 'faster' on repeats=3 or more. Outlier steps: steps beyond 3 scaled MADs of the median step in the "
              "run the record's timing block holds, counted, never dropped. A difference reads '\u00b1' its 95% "
              "interval (the two sides' intervals combined on the log scale); 'n.s.' = the interval includes no "
              "change: within noise, a tie.")


def memory_interval_note(device: str) -> str:
    if device == "cuda":
        return (" A single CUDA run's peak is taken as exact (a program's peak repeats to the byte: the "
                "3-repeat H100 cells in results/gpu-h100), repeats show their mean \u00b1 95% CI.")
    return (" A single CPU run's peak (resident set) has no interval: reruns spread \u22123%..+10% "
            "(benchmarks/compare_noise.py), so a difference from one run each reads '(1 run, no interval)' "
            "and no winner is named from it; repeats show their mean \u00b1 95% CI.")
