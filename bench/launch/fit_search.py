"""The search of `python -m bench.fit`: the largest train.seq_len (or train.batch_size) that trains without
running out of memory, found by real cells (bench.launch.fit_probe), never by the estimate alone.

From a first value (the config's), up by doubling until a probe runs out of memory (down by halving while
they do), then bisection between the largest success and the smallest OOM, until the smallest OOM is within
`resolution` of the largest success (or the two are adjacent integers), the limit is reached, or the time
cap passes. Where the estimator can predict the device (CUDA), its predicted largest value is the second
probe instead of a doubling. Every probe is a cell with its own record; the search is a record of its own
(docs/fit.md), and a probe that ends neither in success nor in OOM stops the search: the boundary is unknown.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from bench.config import ConfigError
from bench.record import config_hash

AXES = ("seq_len", "batch_size")
FIT_SCHEMA_VERSION = 1
DEFAULT_LIMITS = {"seq_len": 131072, "batch_size": 4096}  # seq_len: the model's max_position_embeddings first
CONVERGED = ("resolution", "limit", "smallest fails")  # stop reasons with a definite answer (exit 0)


@dataclass(frozen=True)
class FitOptions:
    axis: str = "seq_len"
    resolution: float = 0.05  # relative: the smallest OOM is at most (1 + resolution) x the answer
    max_minutes: float = 30.0  # no new probe starts after this long
    limit: int | None = None  # the largest value probed (None: DEFAULT_LIMITS / max_position_embeddings)


def parse_options(pairs: dict[str, str]) -> FitOptions:
    """`fit.KEY=VALUE` pairs (KEY without the prefix); ConfigError names the key."""
    known = {"axis", "resolution", "max_minutes", "limit"}
    for key in pairs:
        if key not in known:
            raise ConfigError(f"fit.{key}: unknown option (choose from {', '.join('fit.' + k for k in sorted(known))})")
    axis = pairs.get("axis", "seq_len")
    if axis not in AXES:
        raise ConfigError(f"fit.axis must be one of {', '.join(AXES)} (got {axis!r})")
    values: dict[str, float] = {}
    for key in ("resolution", "max_minutes", "limit"):
        if key in pairs:
            try:
                values[key] = float(pairs[key])
            except ValueError:
                raise ConfigError(f"fit.{key} must be a number (got {pairs[key]!r})") from None
    resolution = values.get("resolution", 0.05)
    if not 0 < resolution <= 1:
        raise ConfigError(f"fit.resolution must be in (0, 1] (got {resolution:g}; 0.05 for 5%)")
    minutes = values.get("max_minutes", 30.0)
    if not 0 < minutes <= 7 * 24 * 60:
        raise ConfigError(f"fit.max_minutes must be in (0, 10080] (got {minutes:g})")
    limit = values.get("limit")
    if limit is not None and (limit != int(limit) or limit < 1):
        raise ConfigError(f"fit.limit must be a whole number >= 1 (got {pairs['limit']})")
    return FitOptions(axis, resolution, minutes, None if limit is None else int(limit))


@dataclass
class Probe:
    value: int
    status: str  # the cell's record status: success | oom | failed | skipped
    peak_bytes: int | None = None
    peak_source: str | None = None
    error_type: str | None = None
    error: str | None = None
    seconds: float = 0.0
    record: str | None = None  # the cell's record file, relative to the experiment folder


@dataclass
class Search:
    """One method x model: its probes so far and the bracket they make."""
    options: FitOptions
    limit: int
    probes: list[Probe] = field(default_factory=list)
    estimate: int | None = None  # the estimator's predicted largest value, probed once
    estimate_used: bool = False

    @property
    def lo(self) -> int | None:  # the largest value that trained
        ok = [p.value for p in self.probes if p.status == "success"]
        return max(ok) if ok else None

    @property
    def hi(self) -> int | None:  # the smallest value that ran out of memory
        oom = [p.value for p in self.probes if p.status == "oom"]
        return min(oom) if oom else None

    def next_value(self) -> tuple[int | None, str | None]:
        """(the next value to probe, None) or (None, why the search stops)."""
        if self.probes and self.probes[-1].status not in ("success", "oom"):
            last = self.probes[-1]
            return None, f"probe at {last.value} ended {last.status} ({last.error_type}): the boundary is unknown"
        lo, hi, res = self.lo, self.hi, self.options.resolution
        if lo is not None and hi is not None and lo > hi:
            return None, f"inconsistent: {lo} trained but {hi} ran out of memory"
        if lo is not None and hi is not None:
            if hi <= lo * (1 + res) or hi - lo <= 1:
                return None, "resolution"
            return (lo + hi) // 2, None
        jump = self._estimate_jump(lo, hi)
        if jump is not None:
            return jump, None
        if hi is None:  # nothing failed yet
            if lo >= self.limit:
                return None, "limit"
            return min(2 * lo, self.limit), None
        if hi <= 1:
            return None, "smallest fails"
        return max(1, hi // 2), None

    def _estimate_jump(self, lo: int | None, hi: int | None) -> int | None:
        if self.estimate is None or self.estimate_used:
            return None
        self.estimate_used = True
        target = min(max(1, self.estimate), self.limit)
        if (hi is None and lo is not None and target > lo) or (lo is None and hi is not None and target < hi):
            return target
        return None


def search(first: int, options: FitOptions, limit: int, probe: Callable[[int], Probe],
           estimate: Callable[[Probe], int | None] | None = None,
           clock: Callable[[], float] = time.monotonic) -> tuple[Search, str]:
    """Probe from `first` until the search stops; returns (the search, the stop reason). `estimate`, given the
    first probe, returns the estimator's predicted largest value (or None). Ctrl-C stops it, recorded."""
    state = Search(options, limit)
    started = clock()
    value: int | None = min(first, limit)
    while True:
        try:
            state.probes.append(probe(value))
        except KeyboardInterrupt as exc:
            state.probes.extend(getattr(exc, "probes", []))
            return state, f"interrupted ({exc})"
        if estimate is not None and len(state.probes) == 1:
            state.estimate = estimate(state.probes[0])
        value, why = state.next_value()
        if value is None:
            return state, why or "stopped"
        if clock() - started >= options.max_minutes * 60:
            return state, f"time cap: fit.max_minutes={options.max_minutes:g} passed before probing {value}"


def search_id(config: dict[str, Any], axis: str, cap_gb: float, device: str, budget_gb: float = 0.0) -> str:
    """The same search (the config's hash without the searched value, the axis, the cap and budget, the device
    kind) gets the same record file: a rerun replaces it."""
    train = {k: v for k, v in (config.get("train") or {}).items() if k != axis}
    limits = [cap_gb, budget_gb] if budget_gb else [cap_gb]  # without a budget, the id it always had
    blob = json.dumps([config_hash({**config, "train": train}), axis, *limits, device])
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def fit_record(state: Search, stop: str, *, cell: dict[str, Any], config: dict[str, Any], device: dict[str, Any],
               cap_gb: float, command: str, start: dict[str, Any], seconds: float,
               budget_gb: float = 0.0) -> dict[str, Any]:
    """The search as a record (schema: docs/fit.md)."""
    lo, hi = state.lo, state.hi
    at_answer = next((p for p in state.probes if p.value == lo and p.status == "success"), None)
    fixed = {k: v for k, v in (config.get("train") or {}).items()
             if k in ("batch_size", "seq_len", "grad_accum", "precision", "gradient_checkpointing") and k != state.options.axis}
    if "gradient_checkpointing" in fixed:  # as the cell runs it: on when train or the method (QLoRA's default) asks
        fixed["gradient_checkpointing"] = bool(fixed["gradient_checkpointing"]
                                               or (config.get("method") or {}).get("gradient_checkpointing"))
    return {"kind": "fit", "fit_schema_version": FIT_SCHEMA_VERSION,
            "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "experiment": config.get("experiment_name"), "method": cell.get("method"), "model": cell.get("model"),
            "task": cell.get("task"), "cell": cell, "axis": state.options.axis, "fixed": fixed, "device": device,
            "cell_memory_cap_gb": cap_gb, "cell_memory_budget_gb": budget_gb, "resolution": state.options.resolution,
            "max_minutes": state.options.max_minutes, "limit": state.limit, "start": start,
            "probes": [asdict(p) for p in state.probes], "answer": lo, "first_failing": hi,
            "peak_bytes_at_answer": at_answer.peak_bytes if at_answer else None,
            "peak_source": at_answer.peak_source if at_answer else None,
            "converged": stop in CONVERGED, "stop_reason": stop, "command": command,
            "config_hash": search_id(config, state.options.axis, cap_gb, device.get("kind", ""), budget_gb),
            "wall_seconds": seconds}


def fit_record_path(results_dir: str, experiment: str, cell: dict[str, Any], axis: str, sid: str) -> Path:
    """`<results_dir>/<experiment>/logs/fit-<method>-<model>-<axis>-<id>.json`: beside the probes' records,
    in the `logs/` folder that bench.record.record_files (report, compare, calibrate) leaves out."""
    name = "-".join(str(cell.get(k)) for k in ("method", "model")).replace("/", "_")
    return Path(results_dir) / experiment / "logs" / f"fit-{name}-{axis}-{sid}.json"


def table(records: list[dict[str, Any]]) -> str:
    """method | model | max <axis> | first failing | probes | peak at max | stop, one row per search."""
    axis = records[0]["axis"] if records else "seq_len"
    head = ["method", "model", f"max {axis}", "first failing", "probes", "peak at max", "stop"]
    rows = []
    for r in records:
        peak = r.get("peak_bytes_at_answer")
        rows.append([str(r["method"]), str(r["model"]), "none fits" if r["answer"] is None else str(r["answer"]),
                     "-" if r["first_failing"] is None else str(r["first_failing"]), str(len(r["probes"])),
                     "-" if peak is None else f"{peak / 1e9:.2f} GB ({r.get('peak_source')}, 1 run)",
                     r["stop_reason"] if r["stop_reason"] != "resolution"
                     else f"within {r['resolution'] * 100:g}%"])
    widths = [max(len(x[i]) for x in [head, *rows]) for i in range(len(head))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in [head, *rows]]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
