"""repeats=N: the same cell N times, each in a fresh process, kept in one record with mean, stdev and a
95% confidence interval (Student's t) of every headline metric.

The record's own memory / timing / quality blocks are those of the median repeat by steps/s (a run that
really happened, not an average); `repeats.runs` keeps every repeat's figures and `repeats.stats` the
spread. bench.compare reads the intervals to tell noise from a regression.
"""
from __future__ import annotations

import dataclasses
import math
import statistics
from pathlib import Path
from typing import Any

from bench.config import RunConfig
from bench.record import T95, CellIdentity, write_record

HEADLINES = {"peak_bytes": ("memory", "peak_bytes"), "steps_per_s": ("timing", "steps_per_s"),
             "tokens_per_s": ("timing", "tokens_per_s"), "samples_per_s": ("timing", "samples_per_s"),
             "quality_main": ("quality", "main")}


def interval(values: list[float]) -> dict[str, Any]:
    n = len(values)
    mean = statistics.fmean(values)
    stdev = statistics.stdev(values) if n > 1 else 0.0
    half = (T95[n - 2] if n - 1 <= len(T95) else 1.96) * stdev / math.sqrt(n) if n > 1 else 0.0
    return {"n": n, "mean": mean, "stdev": stdev, "ci95": [mean - half, mean + half],
            "rel_ci95_half_width": half / mean if mean else None}


def headline(record: dict[str, Any]) -> dict[str, Any]:
    figures = {"status": record["status"], "wall_seconds": record.get("wall_seconds")}
    for name, (block, key) in HEADLINES.items():
        figures[name] = (record.get(block) or {}).get(key)
    return figures


def run_repeats(cfg: RunConfig, pass_fd: int | None = None,
                cell: CellIdentity | None = None) -> tuple[dict[str, Any], Path]:
    """`pass_fd`: the cell's lock, held by each repeat's process in turn (bench.launch.cell_lock). An interrupt
    (bench.launch.worker.Interrupted) ends the repeats: the interrupted one's record stands, failed."""
    from bench.launch.launcher import run_isolated

    records, path = [], None
    for index in range(cfg.repeats):  # repeat i seeds with train.seed + i (bench.config.RunConfig.repeat)
        record, path, _ = run_isolated(dataclasses.replace(cfg, repeat=index), pass_fd, cell)
        records.append(record)
    runs = [{**headline(r), "seed": cfg.train.seed + i} for i, r in enumerate(records)]
    ok = [r for r in records if r["status"] == "success"]
    stats = {}
    for name in HEADLINES:
        values = [headline(r)[name] for r in ok]
        if values and all(v is not None for v in values):
            stats[name] = interval([float(v) for v in values])
    if ok:
        ranked = sorted(ok, key=lambda r: (r.get("timing") or {}).get("steps_per_s") or 0.0)
        merged = dict(ranked[len(ranked) // 2])
    else:
        merged = dict(records[-1])
    merged["repeats"] = {"n": cfg.repeats, "succeeded": len(ok), "runs": runs, "stats": stats,
                         "representative": "median repeat by steps/s"}
    if ok and len(ok) < len(records):
        failed = len(records) - len(ok)
        merged["warnings"] = list(merged.get("warnings") or []) + [
            f"{failed} of {len(records)} repeats did not succeed; statistics cover the successful ones"]
    return merged, write_record(merged, path)
