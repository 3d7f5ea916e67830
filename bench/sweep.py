"""Sweep bookkeeping: a ledger of the cells a multirun handled, resume / dedupe decisions, the progress
line per cell and the summary table at the end.

The ledger is a JSON-lines file named by $BENCH_SWEEP_LEDGER, so cells run by any launcher (in-process,
a fresh process, submitit jobs on the same file system) report to the one parent that prints the summary.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

LEDGER_ENV = "BENCH_SWEEP_LEDGER"
TOTAL_ENV = "BENCH_SWEEP_TOTAL"
GB = 1e9
FAILED = ("oom", "failed")


def start_ledger(total: int | None) -> Path:
    fd, name = tempfile.mkstemp(prefix="bench-sweep-", suffix=".jsonl")
    os.close(fd)
    os.environ[LEDGER_ENV] = name
    if total is not None:
        os.environ[TOTAL_ENV] = str(total)
    return Path(name)


def ledger_entries(path: Path | None = None) -> list[dict[str, Any]]:
    path = path or (Path(os.environ[LEDGER_ENV]) if os.environ.get(LEDGER_ENV) else None)
    if path is None or not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def append(entry: dict[str, Any]) -> None:
    name = os.environ.get(LEDGER_ENV)
    if name:
        with open(name, "a") as fh:  # one short line per write: appends from several processes don't interleave
            fh.write(json.dumps(entry) + "\n")


def cell_name(cell: dict[str, Any]) -> str:
    name = "/".join(str(cell[k]) for k in ("method", "model", "task"))
    if cell.get("rank") is not None:
        name += f" r{cell['rank']}"
    if cell.get("bits") not in (None, 16):
        name += f" {cell['bits']}-bit"
    return name


def entry_for(record: dict[str, Any], path: Path, seconds: float, outcome: str | None = None) -> dict[str, Any]:
    memory, timing = record.get("memory") or {}, record.get("timing") or {}
    return {"cell": cell_name(record["cell"]), "status": record["status"], "outcome": outcome or record["status"],
            "hash": record["config_hash"], "path": str(path), "seconds": round(seconds, 2),
            "peak_bytes": memory.get("peak_bytes"), "steps_per_s": timing.get("steps_per_s"),
            "error": first_line((record.get("error") or {}).get("message"))}


def first_line(text: str | None, limit: int = 160) -> str | None:
    lines = (text or "").splitlines()
    return lines[0][:limit] if lines else None


def previous(chash: str) -> dict[str, Any] | None:
    """This sweep's earlier entry for the same resolved config, if any."""
    return next((e for e in ledger_entries() if e["hash"] == chash), None)


def progress_line(entry: dict[str, Any], index: int | None) -> str:
    total = os.environ.get(TOTAL_ENV)
    where = f"[{index + 1}/{total}]" if index is not None and total else "[-]"
    parts = [f"{where} {entry['cell']} -> {entry['outcome']} ({entry['seconds']:.1f} s)"]
    if entry.get("peak_bytes") is not None:
        parts.append(f"peak {entry['peak_bytes'] / GB:.2f} GB")
    if entry.get("steps_per_s") is not None:
        parts.append(f"{entry['steps_per_s']:.2f} steps/s")
    if entry.get("error") and entry["status"] != "success":
        parts.append(entry["error"])
    return "bench: " + " | ".join(parts)


def summary(entries: list[dict[str, Any]]) -> str:
    rows = ["| # | cell | status | peak memory (GB) | steps/s | seconds | record |", "|---|---|---|---|---|---|---|"]
    for i, e in enumerate(entries, 1):
        peak = f"{e['peak_bytes'] / GB:.2f}" if e.get("peak_bytes") is not None else "-"
        speed = f"{e['steps_per_s']:.2f}" if e.get("steps_per_s") is not None else "-"
        rows.append(f"| {i} | {e['cell']} | {e['outcome']} | {peak} | {speed} | {e['seconds']:.1f} | {e['path']} |")
    counts: dict[str, int] = {}
    for e in entries:
        counts[e["status"]] = counts.get(e["status"], 0) + 1
    rows.append("")
    rows.append("cells: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    return "\n".join(rows)


def exit_status(entries: list[dict[str, Any]]) -> int:
    return 1 if any(e["status"] in FAILED for e in entries) else 0
