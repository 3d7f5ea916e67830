"""The history of CI runs: one JSON Lines file per machine kind, `results/history/<hardware>.jsonl`, one
line per cell per run, committed to git by the GPU workflow after each run on main.

Why JSON Lines in git, and not Parquet or SQLite:
  - The trend needs a cell's headline figures per commit (peak memory, steps/s, quality, with the repeats'
    spread), not whole records: a line is ~0.5 kB, so 4 cells a day for ten years is ~7 MB. The whole
    records (per-step times, losses) of each run go to the workflow's artifacts instead.
  - Git already holds what the history is indexed by (commits and their dates), survives ephemeral
    self-hosted runners, and is reviewable: an appended line is a one-line diff, and two branches that
    both append merge without conflict (`merge=union` in .gitattributes). A binary SQLite or Parquet file
    can't be diffed or merged, so every concurrent run would be a conflict.
  - Reading it needs nothing beyond the standard library (the gate imports neither torch nor pyarrow),
    and `pandas.read_json(path, lines=True)` loads it for anything else.
SQLite would win with many thousands of runs queried ad hoc, Parquet with wide per-step data; neither is
what a regression trend over commits needs.

An entry: sha, dirty, date (the commit's date when given, else the run's first record's time), run (CI run
id or the run's time), hardware, key (match key), cell, status, packages (the versions that cause
regressions), metrics {name: {value, stdev, n, ci95}} in display units (bytes, steps/s, quality points);
ci95 [lo, hi] is the figure's 95% interval (verdict.measure), null where it has none.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.compare.load import BadInput, cell_label, hardware_id, match_key
from bench.compare.shape import entry_problem
from bench.compare.verdict import METRICS, Measure, measure

TRACKED_PACKAGES = ("torch", "transformers", "peft", "bitsandbytes", "galore-torch", "accelerate")


def entries_from_records(records: list[dict[str, Any]], sha: str | None = None, date: str | None = None,
                         run: str | None = None) -> list[dict[str, Any]]:
    first = min((r.get("created_at") or "" for r in records), default="")
    entries = []
    for record in sorted(records, key=lambda r: cell_label(r)):
        env = record.get("env") or {}
        git = env.get("git") or {}
        metrics = {}
        for metric in METRICS:
            m = measure(record, metric)
            if m is not None:
                metrics[metric.name] = {"value": m.value, "stdev": m.stdev, "n": m.n,
                                        "ci95": None if m.lo is None or m.hi is None else [m.lo, m.hi]}
        entries.append({
            "sha": sha or git.get("sha"), "dirty": git.get("dirty"),
            "date": date or first, "run": run or first, "hardware": hardware_id(record),
            "key": match_key(record), "cell": cell_label(record), "status": record.get("status"),
            "packages": {p: (env.get("packages") or {}).get(p) for p in TRACKED_PACKAGES},
            "metrics": metrics,
        })
    return entries


def plan(store: str | Path, entries: list[dict[str, Any]]) -> dict[Path, list[dict[str, Any]]]:
    """The entries to append to each `<store>/<hardware>.jsonl`: an entry already there (same run and cell) is
    not added again, so rerunning a CI step is harmless. Reads (and so checks) the existing files first,
    writes nothing: the gate checks everything before it writes anything."""
    out: dict[Path, list[dict[str, Any]]] = {}
    for hardware in sorted({e["hardware"] for e in entries}):
        path = Path(store) / f"{hardware}.jsonl"
        if path.exists() and not path.is_file():
            raise BadInput(f"{path}: exists and is not a history file")
        seen = {(e["run"], e["key"]) for e in read(path)} if path.exists() else set()
        out[path] = [e for e in entries if e["hardware"] == hardware and (e["run"], e["key"]) not in seen]
    return out


def append(store: str | Path, entries: list[dict[str, Any]]) -> dict[Path, int]:
    """Appends entries to `<store>/<hardware>.jsonl` (see `plan`). Returns lines added per file."""
    return write(plan(store, entries))


def write(planned: dict[Path, list[dict[str, Any]]]) -> dict[Path, int]:
    """Appends what `plan` returned. Returns lines added per file."""
    for path, new in planned.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as fh:
            for entry in new:
                fh.write(json.dumps(entry, sort_keys=True) + "\n")
    return {path: len(new) for path, new in planned.items()}


def read(path: str | Path) -> list[dict[str, Any]]:
    """Entries of one history file, or of every `*.jsonl` in a store folder."""
    path = Path(path)
    if not path.exists():
        raise BadInput(f"{path}: no such history file or folder")
    files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    if not files:
        raise BadInput(f"{path}: no history files (*.jsonl) in this folder")
    entries = []
    for file in files:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise BadInput(f"{file}: not a readable history file ({str(exc).splitlines()[0]})") from None
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                if not isinstance(entry, dict) or not {"key", "run", "metrics"} <= entry.keys():
                    raise ValueError("not a history entry")
                if (problem := entry_problem(entry)) is not None:
                    raise ValueError(problem)
            except ValueError as exc:
                raise BadInput(f"{file}:{number}: not a history entry ({str(exc).splitlines()[0]})") from None
            entries.append(entry)
    return entries


def entry_measure(entry: dict[str, Any], name: str) -> Measure | None:
    m = (entry.get("metrics") or {}).get(name)
    if not m or m.get("value") is None:
        return None
    ci = m.get("ci95")  # entries appended before intervals have none
    lo, hi = (float(ci[0]), float(ci[1])) if isinstance(ci, list) and len(ci) == 2 else (None, None)
    return Measure(float(m["value"]), m.get("stdev"), int(m.get("n") or 1), lo, hi)
