"""Sweep bookkeeping: a ledger of the cells a multirun handled, resume / dedupe decisions, the progress
line per cell and the summary table at the end.

The ledger is a JSON-lines file named by $BENCH_SWEEP_LEDGER, so cells run by any launcher (in-process,
a fresh process, submitit jobs on the same file system) report to the one parent that prints the summary.
It lives in the experiment folder, hidden (`.bench-sweep-PID@HOST-XXXX.jsonl`, bench.launch.cell_lock): the
records' file system, which a cluster's jobs share (a node's /tmp is its own), and where the next sweep
finds it if this one was killed before it could remove it.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from bench.launch.cell_lock import owned_name
from bench.record import cell_name  # noqa: F401  (bench.run names cells as sweep.cell_name)

LEDGER_ENV = "BENCH_SWEEP_LEDGER"
TOTAL_ENV = "BENCH_SWEEP_TOTAL"
GB = 1e9
FAILED = ("oom", "failed")


class Ledger:
    """This sweep's ledger. Its name is fixed when the sweep starts, its folder once a cell's config is
    composed: the ledger file is that name in each experiment folder the sweep's cells write to."""

    def __init__(self, name: str, folders: Any = ()) -> None:
        self.name = name
        self.folders = [Path(f).resolve() for f in folders]

    def files(self) -> list[Path]:
        return [folder / self.name for folder in (self.folders or _folders_from_argv())]

    def unlink(self, missing_ok: bool = True) -> None:
        for path in self.files():
            path.unlink(missing_ok=True)


_ledger: Ledger | None = None


def start_ledger(total: int | None, folders: Any = ()) -> Ledger:
    global _ledger
    _ledger = Ledger(owned_name("sweep", ".jsonl"), folders)
    os.environ[LEDGER_ENV] = _ledger.name
    if total is not None:
        os.environ[TOTAL_ENV] = str(total)
    return _ledger


def ledger_file(folder: str | os.PathLike) -> Path | None:
    """The ledger in an experiment folder (None outside a sweep); an absolute $BENCH_SWEEP_LEDGER as it is."""
    name = os.environ.get(LEDGER_ENV)
    if not name:
        return None
    if os.path.isabs(name):
        return Path(name)
    folder = Path(folder).resolve()
    if _ledger is not None and _ledger.name == name and folder not in _ledger.folders:
        _ledger.folders.append(folder)
    return folder / name


def _folders_from_argv() -> list[Path]:
    """Where this command line's cells write, for a launcher that runs every cell in another process
    (submitit), so that this process never composed a cell's config: the folder of the first value of each
    swept key (under such a launcher, a sweep over experiment_name or results_dir reports its first only)."""
    try:
        from hydra import compose, initialize_config_dir
        from hydra.core.global_hydra import GlobalHydra
        from hydra.core.override_parser.overrides_parser import OverridesParser

        from bench.launch.cli import CONF_DIR, sweep_overrides

        overrides = []
        for override in OverridesParser.create().parse_overrides(sweep_overrides(sys.argv[1:])):
            if override.key_or_group.split(".")[0].split("/")[0] == "hydra":
                continue
            value = (next(iter(override.sweep_string_iterator())) if override.is_sweep_override()
                     else override.get_value_element_as_str())
            overrides.append(f"{override.input_line.split('=', 1)[0]}={value}")
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name="config", overrides=overrides)
        return [(Path(cfg.results_dir) / cfg.experiment_name).resolve()]
    except Exception:  # noqa: BLE001 - no summary is better than a crash while cleaning up
        return []


def ledger_entries(path: Ledger | Path | None = None) -> list[dict[str, Any]]:
    files = path.files() if isinstance(path, Ledger) else [Path(path)] if path else []
    return [json.loads(line) for f in files if f.exists() for line in f.read_text().splitlines() if line.strip()]


def append(entry: dict[str, Any]) -> None:
    path = ledger_file(Path(entry["path"]).parent)
    if path:
        with open(path, "a") as fh:  # one short line per write: appends from several processes don't interleave
            fh.write(json.dumps(entry) + "\n")


def entry_for(record: dict[str, Any], path: Path, seconds: float, outcome: str | None = None) -> dict[str, Any]:
    memory, timing = record.get("memory") or {}, record.get("timing") or {}
    return {"cell": cell_name(record["cell"]), "status": record["status"], "outcome": outcome or record["status"],
            "hash": record["config_hash"], "path": str(path), "seconds": round(seconds, 2),
            "peak_bytes": memory.get("peak_bytes"), "steps_per_s": timing.get("steps_per_s"),
            "error": first_line((record.get("error") or {}).get("message"))}


def first_line(text: str | None, limit: int = 160) -> str | None:
    lines = (text or "").splitlines()
    return lines[0][:limit] if lines else None


def previous(chash: str, folder: str | os.PathLike) -> dict[str, Any] | None:
    """This sweep's earlier entry for the same resolved config, if any."""
    return next((e for e in ledger_entries(ledger_file(folder)) if e["hash"] == chash), None)


def skipped_entry(cell: dict[str, Any], chash: str, path: Path, why: str) -> dict[str, Any]:
    """A cell left alone without reading or writing its record (another process is measuring it)."""
    return {"cell": cell_name(cell), "status": "skipped", "outcome": f"skipped: {why}", "hash": chash,
            "path": str(path), "seconds": 0.0, "peak_bytes": None, "steps_per_s": None, "error": None}


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
