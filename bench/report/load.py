"""Find, read, check and flatten run records. A file that is not a usable record of schema 1 is skipped with
one warning line naming it; nothing here raises on bad record content.

A flattened record (`Rec.flat`) holds the figures the report shows, in the record's own units (bytes,
seconds, the metric's own scale), keyed as in `COLUMNS`; `records.csv` is these rows. `Rec.est` holds the
figures the report compares, each a bench.stats.Estimate with its 95% interval, read by the gate's own rule
(bench.compare.verdict: rate, peak, quality), so the report and bench.compare judge a difference alike:
every rate of a record from one statistic (the repeats' mean when it has repeats, else the run's own), and
the interval of a record made before `timing.steps_per_s_ci95` computed from its `timing.step_times_s`.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from bench import stats
from bench.compare import verdict
from bench.record import read_record, record_files
from bench.report.refresh import refresh_figures
from bench.stats import Estimate

GLUE_TASKS = ("cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "wnli")
SQUAD_TASKS = ("squad", "squad_v2")
PACKAGES = ("torch", "transformers", "peft", "bitsandbytes", "galore-torch", "accelerate", "datasets", "evaluate")

COLUMNS = (
    "id", "file", "experiment", "created_at", "status", "error_type", "error", "label", "group",
    "method", "model", "task", "rank", "bits", "optimizer", "model_nominal_size", "model_init",
    "params_total", "params_trainable", "trainable_pct", "device", "batch_size", "seq_len", "grad_accum",
    "train_steps",
    "gradient_checkpointing", "compile", "compute_dtype", "weights_dtype",
    "peak_bytes", "peak_source", "peak_over_baseline_bytes", "torch_max_allocated_bytes",
    "torch_max_reserved_bytes", "nvml_device_peak_bytes",
    "est_needs_device_bytes", "est_needs_host_bytes", "est_fits", "est_reason", "est_device",
    "est_weights_bytes", "est_cast_copies_bytes", "est_gradients_bytes", "est_optimizer_bytes",
    "est_activations_bytes", "est_runtime_bytes",
    "steps_per_s", "steps_per_s_mean", "steps_per_s_ci95_lo", "steps_per_s_ci95_hi", "tokens_per_s",
    "samples_per_s", "step_p50_s", "step_p90_s", "measured_steps", "train_seconds",
    "refresh_every_steps", "refresh_seconds", "refresh_basis", "steps_per_s_amortised", "model_flops_per_step",
    "repeats_n", "repeats_succeeded", "peak_bytes_mean",
    "quality_metric", "quality_main", "quality_main_mean", "quality_score", "steps_to_target", "seconds_to_target",
    # what the report shows (Rec.est): every rate of a row from one statistic, with its 95% interval
    "rate_statistic", "rate_ci_method", "outlier_steps",
    *(f"{r}_{k}" for r in verdict.RATES for k in ("value", "lo", "hi")),
    "peak_bytes_lo", "peak_bytes_hi", "peak_interval", "quality_score_mean", "quality_score_lo", "quality_score_hi",
    "quality_seeds",
    "energy_joules_per_step", "gpu_name", "gpu_memory_bytes", "gpu_driver", "gpu_cuda", "cpu_model",
    "cpu_cores", "host_memory_bytes", *(f"pkg_{p.replace('-', '_')}" for p in PACKAGES), "python",
    "git_sha", "git_dirty", "config_hash", "wall_seconds",
)


class ReportInputError(Exception):
    """Bad input to the report (a missing directory, no records): one line, exit status 2."""


@dataclass
class Rec:
    path: Path
    raw: dict[str, Any]
    flat: dict[str, Any] = field(default_factory=dict)
    est: dict[str, Estimate | None] = field(default_factory=dict)  # steps, samples, tokens, peak, quality

    def __getitem__(self, key: str) -> Any:
        return self.flat.get(key)

    @property
    def ok(self) -> bool:
        return self.flat["status"] == "success"


def get(data: Any, *keys: str) -> Any:
    """data[k1][k2]... or None where a level is missing or not a mapping."""
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None  # NaN, inf -> None: not a measurement


def integer(value: Any) -> int | None:
    return int(value) if num(value) is not None and float(value).is_integer() else None


def text(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    return str(value)


def first_line(value: str | None, limit: int = 300) -> str | None:
    lines = (value or "").strip().splitlines()
    return lines[0][:limit] if lines else None


def find_record_files(dirs: list[str | Path]) -> list[Path]:
    """Every record file under the given directories (bench.record.record_files' rule)."""
    files: list[Path] = []
    for d in map(Path, dirs):
        if not d.is_dir():
            raise ReportInputError(f"{d}: no such directory")
        files += record_files(d)
    if not files:
        raise ReportInputError(f"{', '.join(map(str, dirs))}: no records (*.json) found")
    return files


def warn_stderr(message: str) -> None:
    print(f"bench.report: warning: {message}", file=sys.stderr)


def load_records(dirs: list[str | Path], warn: Callable[[str], None] = warn_stderr) -> list[Rec]:
    """The usable records; each skipped file is warned about, unless none is usable: then the one error line
    (ReportInputError) names the first skipped file instead."""
    records, skipped = [], []
    for path in find_record_files(dirs):
        try:
            raw = read_record(path)
            cell = raw.get("cell")
            if not isinstance(cell, dict) or not text(cell.get("method")) or not text(cell.get("model")):
                raise ValueError(f"{path}: no cell.method / cell.model")
            est = estimates(raw)
            records.append(Rec(path, raw, flatten(raw, path, est), est))
        except Exception as exc:  # noqa: BLE001  a record the report can't read is skipped, never a crash
            message = (str(exc).splitlines() or [type(exc).__name__])[0].removeprefix(f"{path}: ")
            skipped.append(f"skipping {path}: {message}")
    if not records:
        more = f" and {len(skipped) - 1} more" if len(skipped) > 1 else ""
        raise ReportInputError(f"{', '.join(map(str, dirs))}: no usable records ({skipped[0]}{more})")
    for message in skipped:
        warn(message)
    return records


def _phase_max(memory: Any, key: str) -> int | None:
    phases = get(memory, "phases")
    values = [integer(p.get(key)) for p in (phases.values() if isinstance(phases, dict) else ()) if isinstance(p, dict)]
    values = [v for v in values if v is not None]
    return max(values) if values else None


def quality_score(task: str | None, main: float | None) -> float | None:
    """One 0-100 scale: GLUE scores are fractions (x100), SQuAD's are already percentages."""
    if main is None:
        return None
    return main if task in SQUAD_TASKS else 100.0 * main


def estimates(raw: dict[str, Any]) -> dict[str, Estimate | None]:
    """The figures a row shows and compares, with their 95% intervals (None where the record has none)."""
    return {"steps": verdict.rate(raw, "steps_per_s"), "samples": verdict.rate(raw, "samples_per_s"),
            "tokens": verdict.rate(raw, "tokens_per_s"), "peak": verdict.peak(raw), "quality": verdict.quality(raw)}


def _outliers(timing: Any) -> int | None:
    """Outlier steps of the run the timing block holds: the record's count, else counted from its step times."""
    count = integer(get(timing, "outlier_steps", "count"))
    times = get(timing, "step_times_s")
    if count is None and isinstance(times, list) and times:
        count = stats.outlier_steps(stats.finite(times))["count"]
    return count


def _shown(est: dict[str, Estimate | None], timing: Any) -> dict[str, Any]:
    steps, peak, quality = est.get("steps"), est.get("peak"), est.get("quality")
    out: dict[str, Any] = {
        "rate_statistic": None if steps is None else (f"mean of {steps.n} repeats" if steps.method.startswith("mean of")
                                                      else "one run"),
        "rate_ci_method": None if steps is None else steps.method, "outlier_steps": _outliers(timing),
        "peak_bytes_lo": peak.lo if peak else None, "peak_bytes_hi": peak.hi if peak else None,
        "peak_interval": peak.method if peak else None, "quality_score_mean": quality.value if quality else None,
        "quality_score_lo": quality.lo if quality else None, "quality_score_hi": quality.hi if quality else None,
        "quality_seeds": quality.n if quality else None}
    for name, key in zip(verdict.RATES, ("steps", "samples", "tokens")):
        e = est.get(key)
        out.update({f"{name}_value": e.value if e else None, f"{name}_lo": e.lo if e else None,
                    f"{name}_hi": e.hi if e else None})
    return out


def flatten(raw: dict[str, Any], path: Path, est: dict[str, Estimate | None] | None = None) -> dict[str, Any]:
    cell, memory, timing, pre = raw.get("cell") or {}, raw.get("memory"), raw.get("timing"), raw.get("preflight")
    setup, params, env, quality = raw.get("setup"), raw.get("params"), raw.get("env"), raw.get("quality")
    stats = get(raw, "repeats", "stats") or {}
    ci = get(stats, "steps_per_s", "ci95")
    ci = ci if isinstance(ci, list) and len(ci) == 2 else [None, None]
    task = text(cell.get("task")) or text(get(quality, "task"))
    main = num(get(quality, "main"))
    breakdown = get(pre, "breakdown_bytes") or {}
    gpu = get(env, "gpu") if isinstance(get(env, "gpu"), dict) else {}
    flat: dict[str, Any] = {
        "file": str(path), "experiment": text(raw.get("experiment")), "created_at": text(raw.get("created_at")),
        "status": raw["status"], "error_type": text(get(raw, "error", "type")),
        "error": first_line(text(get(raw, "error", "message"))),
        "method": text(cell.get("method")), "model": text(cell.get("model")), "task": task,
        "rank": integer(cell.get("rank")), "bits": integer(cell.get("bits")), "optimizer": text(cell.get("optimizer")),
        "model_nominal_size": text(get(raw, "model", "nominal_size")), "model_init": text(get(raw, "model", "init")),
        "params_total": integer(get(params, "total")), "params_trainable": integer(get(params, "trainable")),
        "trainable_pct": num(get(params, "trainable_pct")),
        "device": text(get(setup, "device")) or text(get(memory, "device")) or ("cuda" if gpu else "cpu"),
        "batch_size": integer(get(setup, "batch_size")),
        # text tasks: examples are tokenised to at most task.max_length (train.seq_len is for synthetic tokens)
        "seq_len": integer(get(setup, "seq_len")) if task in (None, "synthetic")
        else integer(get(raw, "config", "task", "max_length")) or integer(get(setup, "seq_len")),
        "grad_accum": integer(get(setup, "grad_accum")),
        "train_steps": integer(get(raw, "config", "train", "steps")),
        "gradient_checkpointing": get(setup, "gradient_checkpointing"),
        "compile": get(setup, "compile"),  # train.compile (absent in records made before it: eager)
        "compute_dtype": text(get(setup, "compute_dtype")), "weights_dtype": text(get(setup, "weights_dtype")),
        "peak_bytes": integer(get(memory, "peak_bytes")), "peak_source": text(get(memory, "peak_source")),
        "peak_over_baseline_bytes": integer(get(memory, "peak_over_baseline_bytes")),
        "torch_max_allocated_bytes": _phase_max(memory, "torch_max_allocated"),
        "torch_max_reserved_bytes": _phase_max(memory, "torch_max_reserved"),
        "nvml_device_peak_bytes": _phase_max(memory, "nvml_device_peak"),
        "est_needs_device_bytes": integer(get(pre, "needs_device_bytes")),
        "est_needs_host_bytes": integer(get(pre, "needs_host_bytes")),
        "est_fits": get(pre, "fits") if isinstance(get(pre, "fits"), bool) else None,
        "est_reason": text(get(pre, "reason")), "est_device": text(get(pre, "device")),
        **{f"est_{k}_bytes": integer(breakdown.get(k)) if isinstance(breakdown, dict) else None
           for k in ("weights", "cast_copies", "gradients", "optimizer", "activations", "runtime")},
        "steps_per_s": num(get(timing, "steps_per_s")), "steps_per_s_mean": num(get(stats, "steps_per_s", "mean")),
        "steps_per_s_ci95_lo": num(ci[0]), "steps_per_s_ci95_hi": num(ci[1]),
        "tokens_per_s": num(get(timing, "tokens_per_s")), "samples_per_s": num(get(timing, "samples_per_s")),
        "step_p50_s": num(get(timing, "step_p50_s")), "step_p90_s": num(get(timing, "step_p90_s")),
        "measured_steps": integer(get(timing, "measured_steps")), "train_seconds": num(get(timing, "train_seconds")),
        **refresh_figures(raw), "model_flops_per_step": num(get(pre, "flops", "model_flops")),
        "repeats_n": integer(get(raw, "repeats", "n")), "repeats_succeeded": integer(get(raw, "repeats", "succeeded")),
        "peak_bytes_mean": num(get(stats, "peak_bytes", "mean")),
        "quality_metric": text(get(quality, "main_metric")), "quality_main": main,
        "quality_main_mean": num(get(stats, "quality_main", "mean")), "quality_score": quality_score(task, main),
        "steps_to_target": integer(get(quality, "steps_to_target")),
        "seconds_to_target": num(get(quality, "seconds_to_target")),
        "energy_joules_per_step": num(get(raw, "energy", "joules_per_step")),
        "gpu_name": text(get(gpu, "name")), "gpu_memory_bytes": integer(get(gpu, "memory_bytes")),
        "gpu_driver": text(get(gpu, "driver")), "gpu_cuda": text(get(gpu, "cuda")),
        "cpu_model": text(get(env, "cpu", "model")), "cpu_cores": integer(get(env, "cpu", "affinity"))
        or integer(get(env, "cpu", "cores")), "host_memory_bytes": integer(get(env, "cpu", "memory_bytes")),
        **{f"pkg_{p.replace('-', '_')}": text(get(env, "packages", p)) for p in PACKAGES},
        "python": text(get(env, "python")), "git_sha": text(get(env, "git", "sha")),
        "git_dirty": get(env, "git", "dirty"), "config_hash": text(raw.get("config_hash")),
        "wall_seconds": num(raw.get("wall_seconds")), **_shown(est if est is not None else estimates(raw), timing),
    }
    return {key: flat.get(key) for key in COLUMNS}
