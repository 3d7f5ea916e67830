"""The shape of the fields the gate reads, checked when a record or history entry is loaded.

bench.record.read_record checks the schema version and status only; a record that is valid JSON of schema 1
can still hold `memory: "big"` or `created_at: 5`. Without this check such a record crashed the gate with
a traceback and exit status 1, which CI reads as "regression". Here it is bad input (exit 2) naming the file
and the field. Only what compare reads is checked, so a record with odd fields the gate never looks at still
compares. Missing fields and nulls are fine: a failed or skipped record has no timing.
"""
from __future__ import annotations

import math
from typing import Any

from bench.compare.verdict import METRICS

_MAPPING, _TEXT, _COUNT = "an object", "a string", "a whole number >= 1"
_INTERVAL = "[lo, hi]: lo <= hi, numbers (hi null = unbounded)"


def _kind_error(value: Any, kind: str) -> bool:
    """Whether a non-null value is not of `kind` (a finite number, a count, a mapping, a string...)."""
    if value is None:
        return False
    if kind == _MAPPING:
        return not isinstance(value, dict)
    if kind == _TEXT:
        return not isinstance(value, str)
    if kind == "a boolean":
        return not isinstance(value, bool)
    if kind == "a string or number":
        return isinstance(value, bool) or not isinstance(value, (str, int, float))
    if kind == _INTERVAL:
        if not isinstance(value, list) or len(value) != 2 or _kind_error(value[0], "a finite number"):
            return True
        hi = value[1]  # may be inf (JSON Infinity) or null: unbounded above
        return value[0] is None or (hi is not None and (isinstance(hi, bool) or not isinstance(hi, (int, float))
                                                        or math.isnan(hi) or hi < value[0]))
    number = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if kind == _COUNT:
        return not (number and float(value).is_integer() and value >= 1)
    if kind == "a number >= 0":
        return not (number and value >= 0)
    return not number  # "a finite number"


def _problem(data: dict[str, Any], fields: dict[str, str]) -> str | None:
    for dotted, kind in fields.items():
        value: Any = data
        for key in dotted.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if _kind_error(value, kind):
            shown = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
            return f"{dotted} must be {kind} (got {shown[:40]})"
    return None


# Parents before children: a child is looked up only once its parent is known to be a mapping.
RECORD_FIELDS = {
    "created_at": _TEXT, "cell": _MAPPING, "cell.method": "a string or number", "cell.model": "a string or number",
    "cell.task": "a string or number", "cell.rank": "a string or number", "cell.bits": "a string or number",
    "error": _MAPPING, "error.message": _TEXT,
    "env": _MAPPING, "env.git": _MAPPING, "env.git.sha": _TEXT, "env.packages": _MAPPING,
    "env.gpu": _MAPPING, "env.gpu.name": _TEXT, "env.gpu.count": _COUNT,
    "env.cpu": _MAPPING, "env.cpu.model": _TEXT, "env.cpu.affinity": _COUNT, "env.cpu.cores": _COUNT,
    "env.cell_start": "a string or number", "memory": _MAPPING, "memory.device": _TEXT,
    "timing": _MAPPING, "quality": _MAPPING, "quality.task": _TEXT,
    "repeats": _MAPPING, "repeats.stats": _MAPPING,
    **{f"{m.block}.{m.key}": "a finite number" for m in METRICS},
    **{f"repeats.stats.{m.name}": _MAPPING for m in METRICS},
    **{f"repeats.stats.{m.name}.{k}": kind for m in METRICS
       for k, kind in (("mean", "a finite number"), ("stdev", "a number >= 0"), ("n", _COUNT), ("ci95", _INTERVAL))},
    "timing.steps_per_s_ci95": _INTERVAL,
}
ENTRY_FIELDS = {
    "key": _TEXT, "run": _TEXT, "date": _TEXT, "sha": _TEXT, "hardware": _TEXT, "cell": _TEXT,
    "status": _TEXT, "packages": _MAPPING, "metrics": _MAPPING,
}


def record_problem(record: dict[str, Any]) -> str | None:
    """What is wrong with a field the gate reads ("memory.peak_bytes must be ..."), or None."""
    problem = _problem(record, RECORD_FIELDS)
    if problem:
        return problem
    packages = (record.get("env") or {}).get("packages") or {}
    bad = [name for name, version in packages.items() if _kind_error(version, _TEXT)]
    return f"env.packages.{bad[0]} must be a string" if bad else None


def entry_problem(entry: dict[str, Any]) -> str | None:
    """The same for a history entry (history.py): its metrics are {name: {value, stdev, n, ci95}}."""
    problem = _problem(entry, ENTRY_FIELDS)
    if problem:
        return problem
    for name, metric in (entry.get("metrics") or {}).items():
        problem = problem or _problem({"metrics": {name: metric}}, {
            f"metrics.{name}": _MAPPING, f"metrics.{name}.value": "a finite number",
            f"metrics.{name}.stdev": "a number >= 0", f"metrics.{name}.n": _COUNT})
        ci = metric.get("ci95") if isinstance(metric, dict) else None
        if problem is None and ci is not None and not (
                isinstance(ci, list) and len(ci) == 2 and not any(_kind_error(v, "a finite number") or v is None
                                                                  for v in ci)):
            problem = f"metrics.{name}.ci95 must be [lo, hi], two finite numbers (got {str(ci)[:40]})"
    return problem
