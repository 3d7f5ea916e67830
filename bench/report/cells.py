"""The table model both renderers share, and how numbers and outcomes are written.

A `Cell` is text plus, where it comes from one record, that record's id (#n in the records appendix) and
a kind the HTML styles: value, est (an estimate, not a measurement), fail (OOM, failed), nofit (does not
fit), fits (hardware fit), none (no record, or nothing to compare with). GB are decimal (1e9 bytes), as in
bench.estimate and the GPU catalog.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from bench.report.load import Rec

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


def steps_text(rec: Rec) -> str:
    """steps/s; with repeats the mean and the 95% CI half-width."""
    mean, lo, hi = rec["steps_per_s_mean"], rec["steps_per_s_ci95_lo"], rec["steps_per_s_ci95_hi"]
    if mean is not None and (rec["repeats_succeeded"] or 0) > 1 and lo is not None and hi is not None:
        return f"{sig(mean)} \u00b1{sig((hi - lo) / 2)}"
    return sig(rec["steps_per_s"])


def steps_value(rec: Rec) -> float | None:
    repeated = (rec["repeats_succeeded"] or 0) > 1 and rec["steps_per_s_mean"]
    return rec["steps_per_s_mean"] if repeated else rec["steps_per_s"]


def long_run_steps_value(rec: Rec) -> float | None:
    """Steps/s over a long run: GaLore's with its projection refresh amortised, every other method's as is."""
    return rec["steps_per_s_amortised"] or steps_value(rec)


def quality_text(rec: Rec) -> str:
    if rec["quality_score"] is None:
        return NA
    short = METRIC_SHORT.get(rec["quality_metric"] or "", rec["quality_metric"] or "")
    return f"{rec['quality_score']:.1f} {short}".strip()


def model_header(records: list[Rec], model: str) -> str:
    nominal = next((r["model_nominal_size"] for r in records if r["model"] == model and r["model_nominal_size"]), None)
    if not nominal or nominal.lower() in model.lower():
        return model
    return f"{model} ({nominal})"
