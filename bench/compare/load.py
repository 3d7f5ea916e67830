"""Reading the two sides of a comparison: record files or folders of them, the hardware a record was
measured on, and the key that says two records measured the same cell.

Only JSON is read here (no torch): the gate runs in a plain CI step after the GPU job has finished.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from bench.compare.shape import record_problem
from bench.record import config_hash, read_record, record_files

# Besides bench.record's bookkeeping keys, `repeats` is left out of the match key: it says how many times a
# cell was measured, not what was measured, so a 5-repeat baseline matches a 3-repeat CI run (or a single
# rerun) of the same cell.
MATCH_EXCLUDED = ("repeats",)


class BadInput(Exception):
    """Input the gate cannot judge (exit status 2): the message is one line naming the file or folder."""


def side_files(path: Path) -> list[Path]:
    """The record files under a folder (bench.record.record_files' rule), or the file itself."""
    if not path.exists():
        raise BadInput(f"{path}: no such file or folder")
    if path.is_file():
        return [path]
    files = record_files(path)
    if not files:
        raise BadInput(f"{path}: no record files (*.json) in this folder")
    return files


def load_side(path: str | Path) -> list[dict[str, Any]]:
    """Every record under `path`, each with the file it came from in `_path`."""
    records = []
    for file in side_files(Path(path)):
        try:
            record = read_record(file)
        except ValueError as exc:
            raise BadInput(str(exc).splitlines()[0]) from None
        if not isinstance(record.get("config"), dict):
            raise BadInput(f"{file}: record has no config")
        if (problem := record_problem(record)) is not None:  # refused, not skipped: a gate must not pass
            raise BadInput(f"{file}: {problem}")                # on what it could not read
        records.append({**record, "_path": str(file)})
    return records


def match_key(record: dict[str, Any]) -> str:
    """The config hash over the resolved config, environment and bookkeeping (and repeats) left out."""
    config = {k: v for k, v in record["config"].items() if k not in MATCH_EXCLUDED}
    return config_hash(config)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def hardware_id(record: dict[str, Any]) -> str:
    """Short name of the machine kind that made the record, used as the baseline folder name:
    the GPU's name (`nvidia-h100-80gb-hbm3`, `-x2` for two), else `cpu-<model>-<cores>c`."""
    env = record.get("env") or {}
    gpu = env.get("gpu")
    if gpu and gpu.get("name"):
        count = gpu.get("count") or 1
        return _slug(gpu["name"]) + (f"-x{count}" if count > 1 else "")
    cpu = env.get("cpu") or {}
    cores = cpu.get("affinity") or cpu.get("cores")
    return "cpu-" + _slug(cpu.get("model") or "unknown") + (f"-{cores}c" if cores else "")


def cell_label(record: dict[str, Any]) -> str:
    cell = record.get("cell") or {}
    label = "/".join(str(cell[k]) for k in ("method", "model", "task") if cell.get(k) is not None)
    if cell.get("rank") is not None and cell.get("method") != "full":
        label += f" r{cell['rank']}"
    if cell.get("method") == "qlora" and cell.get("bits"):
        label += f" {cell['bits']}-bit"
    return label or record.get("_path", "?")


def side_hardware(records: list[dict[str, Any]], where: str) -> str:
    """The one hardware id of a side; a side measured on several machine kinds is bad input."""
    kinds = sorted({hardware_id(r) for r in records})
    if len(kinds) > 1:
        raise BadInput(f"{where}: records from several machines ({', '.join(kinds)}); compare one at a time")
    return kinds[0]


def git_sha(records: list[dict[str, Any]]) -> str | None:
    shas = {((r.get("env") or {}).get("git") or {}).get("sha") for r in records} - {None}
    return sorted(shas)[0] if len(shas) == 1 else (f"{len(shas)} commits" if shas else None)


def packages(records: list[dict[str, Any]]) -> dict[str, str | None]:
    """Package versions of a side (from its newest record)."""
    newest = max(records, key=lambda r: r.get("created_at") or "")
    return dict((newest.get("env") or {}).get("packages") or {})
