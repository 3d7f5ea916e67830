"""repeats=N: the same cell N times, each in a fresh process with its own seed (train.seed + i), kept in one
record with the spread of every headline metric and its 95% interval (bench.stats).

The rates (steps/s, samples/s, tokens/s) are one estimate: bench.stats.combine_runs over the repeats' step
times (each run's mean step time one draw; between-run spread and within-run batch-means noise combined,
the larger one used), samples/s and tokens/s that estimate scaled by the samples and tokens of a step.
Peak memory and the quality main metric: the t interval of the repeats' values (bench.stats.mean_interval).

The record's own memory / timing / quality blocks are those of the median repeat by steps/s (a run that
really happened, not an average); `repeats.runs` keeps every repeat's figures, step times and quality
curve [[step, main], ...] with its steps_to_target (enough to recompute every interval), `repeats.stats` the
spread. bench.compare and bench.report read the intervals.

Each finished repeat's own record is also kept under logs/repeats/ beside the records (bench.record.record_files
skips logs/), so a sweep stopped between repeats resumes at the first missing one: a kept repeat (or the cell's
record itself, when it is a repeat's and not yet the merged one) with the cell's config hash and a success is
reused, not run again (unless force=true).
"""
from __future__ import annotations

import dataclasses
import statistics
from pathlib import Path
from typing import Any

from bench import stats as st
from bench.config import RunConfig
from bench.record import CellIdentity, write_record

HEADLINES = {"peak_bytes": ("memory", "peak_bytes"), "steps_per_s": ("timing", "steps_per_s"),
             "tokens_per_s": ("timing", "tokens_per_s"), "samples_per_s": ("timing", "samples_per_s"),
             "quality_main": ("quality", "main")}
RATES = {"steps_per_s": None, "samples_per_s": "samples_per_step", "tokens_per_s": "tokens_per_step"}


def entry(estimate: st.Estimate, values: list[float]) -> dict[str, Any]:
    """A stats entry: the estimate (mean, ci95, method) with the repeats' own spread (n, stdev)."""
    lo, hi = (estimate.lo, estimate.hi) if estimate.has_interval else (estimate.value, estimate.value)
    return {"n": len(values), "mean": estimate.value,
            "stdev": statistics.stdev(values) if len(values) > 1 else 0.0, "ci95": [lo, hi],
            "rel_ci95_half_width": estimate.rel_half_width if estimate.has_interval else None,
            "method": estimate.method}


def interval(values: list[float]) -> dict[str, Any]:
    """The t interval of the mean of independent values (peak bytes, quality per repeat)."""
    return entry(st.mean_interval(values), values)


def rate_stats(ok: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """steps/s, samples/s and tokens/s over successful repeats: one combined estimate, scaled per unit.
    Without step times in every repeat (trackers off) the rates fall back to the t interval of their values."""
    timings = [r.get("timing") or {} for r in ok]
    out: dict[str, dict[str, Any]] = {}
    if not timings or not all(t.get("steps_per_s") is not None for t in timings):
        return out
    combined = st.combine_runs([t.get("step_times_s") or [] for t in timings]) \
        if all(t.get("step_times_s") for t in timings) else None
    for name, per_step in RATES.items():
        values = [float(t[name]) for t in timings if t.get(name) is not None]
        if len(values) != len(timings):
            continue
        if combined is None:
            out[name] = interval(values)
            continue
        factor = statistics.fmean(float(t[per_step]) for t in timings) if per_step else 1.0
        out[name] = entry(combined.scaled(factor), values)
    return out


def seed_used(record: dict[str, Any], intended: int) -> int:
    """The seed the repeat's process really ran with (its record's config), else the one it was given."""
    config = record.get("config") or {}
    seed = (config.get("train") or {}).get("seed")
    return intended if seed is None else int(seed) + int(config.get("repeat") or 0)


def headline(record: dict[str, Any]) -> dict[str, Any]:
    figures = {"status": record["status"], "wall_seconds": record.get("wall_seconds")}
    for name, (block, key) in HEADLINES.items():
        figures[name] = (record.get(block) or {}).get(key)
    timing = record.get("timing") or {}
    figures["steps_per_s_ci95"] = timing.get("steps_per_s_ci95")
    figures["step_times_s"] = timing.get("step_times_s")
    quality = record.get("quality") or {}
    if quality.get("curve"):  # each seed's own curve: convergence bands and steps-to-target over seeds
        figures["quality_curve"] = [[point.get("step"), point.get("main")] for point in quality["curve"]]
    if quality.get("target") is not None:
        figures["steps_to_target"] = quality.get("steps_to_target")
    return figures


def repeat_stats(ok: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = rate_stats(ok)
    for name in ("peak_bytes", "quality_main"):
        values = [headline(r)[name] for r in ok]
        if values and all(v is not None for v in values):
            out[name] = interval([float(v) for v in values])
    return {name: out[name] for name in HEADLINES if name in out}


def kept_repeat_path(path: Path, index: int) -> Path:
    """Where repeat `index` of the cell whose record is `path` keeps its own record."""
    return path.parent / "logs" / "repeats" / f"{path.stem}.repeat-{index}.json"


def finished_repeat(path: Path, chash: str, index: int) -> dict[str, Any] | None:
    """Repeat `index`'s successful record from an earlier, stopped sweep: its kept copy, else the cell's record
    when that is still this repeat's own (no `repeats` block yet); None when it must run."""
    from bench.record import read_record

    for where in (kept_repeat_path(path, index), path):
        try:
            record = read_record(where)
        except (OSError, ValueError):
            continue
        config = record.get("config") or {}
        if (record.get("status") == "success" and record.get("config_hash") == chash and not record.get("repeats")
                and int(config.get("repeat") or 0) == index):
            return record
    return None


def run_repeats(cfg: RunConfig, pass_fd: int | None = None,
                cell: CellIdentity | None = None) -> tuple[dict[str, Any], Path]:
    """`pass_fd`: the cell's lock, held by each repeat's process in turn (bench.launch.cell_lock). An interrupt
    (bench.launch.worker.Interrupted) ends the repeats: the interrupted one's record stands, failed; the
    finished ones are kept (logs/repeats/) and reused by the next run of the sweep."""
    from bench.launch.launcher import run_isolated
    from bench.record import cell_identity

    cell = cell or cell_identity(cfg)
    records, path = [], cell.path
    for index in range(cfg.repeats):  # repeat i seeds with train.seed + i (bench.config.RunConfig.repeat)
        kept = kept_repeat_path(path, index)
        record = None if cfg.force else finished_repeat(path, cell.chash, index)  # force=true remeasures all
        if record is None:
            record, path, _ = run_isolated(dataclasses.replace(cfg, repeat=index), pass_fd, cell)
            kept.unlink(missing_ok=True)  # an earlier run's copy (force=true) is not this run's repeat
        if record["status"] == "success" and not kept.exists():
            write_record(record, kept)  # before the next repeat overwrites the cell's record
        records.append(record)
    runs = [{**headline(r), "seed": seed_used(r, cfg.train.seed + i)} for i, r in enumerate(records)]
    ok = [r for r in records if r["status"] == "success"]
    if ok:
        ranked = sorted(ok, key=lambda r: (r.get("timing") or {}).get("steps_per_s") or 0.0)
        merged = dict(ranked[len(ranked) // 2])
    else:
        merged = dict(records[-1])
    merged["repeats"] = {"n": cfg.repeats, "succeeded": len(ok), "runs": runs, "stats": repeat_stats(ok),
                         "representative": "median repeat by steps/s"}
    if ok and len(ok) < len(records):
        failed = len(records) - len(ok)
        merged["warnings"] = list(merged.get("warnings") or []) + [
            f"{failed} of {len(records)} repeats did not succeed; statistics cover the successful ones"]
    return merged, write_record(merged, path)
