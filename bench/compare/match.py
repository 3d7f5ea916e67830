"""Pairing a baseline's records with a candidate's, cell by cell, and judging each pair.

Cells match by `load.match_key` (the config hash without environment, bookkeeping or repeats). A cell on
one side only is `missing` (baseline only) or `new` (candidate only). When one side holds the same cell
twice (two sweeps in one folder), the newer record by `created_at` stands for it and a note says so.
Comparing records from different hardware is refused unless forced: a baseline is only meaningful on the
machine kind it was measured on.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.compare.load import BadInput, cell_label, match_key, side_hardware
from bench.compare.verdict import Judgement, Verdict, judge_records

ORDER = ("regressed", "missing", "new", "improved", "ok")


@dataclass
class CellResult:
    label: str
    verdict: Verdict
    base: dict[str, Any] | None
    cand: dict[str, Any] | None
    judgements: list[Judgement] = field(default_factory=list)
    note: str = ""


@dataclass
class Comparison:
    cells: list[CellResult]
    base_hardware: str
    cand_hardware: str
    notes: list[str]

    def count(self, verdict: str) -> int:
        return sum(c.verdict == verdict for c in self.cells)

    @property
    def regressed(self) -> bool:
        return self.count("regressed") > 0


def by_key(records: list[dict[str, Any]], side: str, notes: list[str]) -> dict[str, dict[str, Any]]:
    cells: dict[str, dict[str, Any]] = {}
    for record in sorted(records, key=lambda r: r.get("created_at") or ""):
        key = match_key(record)
        if key in cells:
            notes.append(f"{side}: {cell_label(record)} appears twice; using {record['_path']} (newer) "
                         f"over {cells[key]['_path']}")
        cells[key] = record
    return cells


def check_hardware(base: list[dict[str, Any]], cand: list[dict[str, Any]], force: bool,
                   notes: list[str]) -> tuple[str, str]:
    base_hw, cand_hw = side_hardware(base, "baseline"), side_hardware(cand, "candidate")
    if base_hw != cand_hw:
        if not force:
            raise BadInput(f"refusing to compare across hardware: baseline measured on {base_hw}, candidate on "
                           f"{cand_hw}; use results/baselines/{cand_hw}/ (or --force)")
        notes.append(f"forced: baseline measured on {base_hw}, candidate on {cand_hw}")
    return base_hw, cand_hw


def compare(base: list[dict[str, Any]], cand: list[dict[str, Any]], tolerance: dict[str, float],
            force: bool = False) -> Comparison:
    notes: list[str] = []
    base_hw, cand_hw = check_hardware(base, cand, force, notes)
    base_cells, cand_cells = by_key(base, "baseline", notes), by_key(cand, "candidate", notes)
    cells = []
    for key in list(base_cells) + [k for k in cand_cells if k not in base_cells]:
        b, c = base_cells.get(key), cand_cells.get(key)
        if b is None or c is None:
            present = b if b is not None else c
            cells.append(CellResult(cell_label(present), "missing" if c is None else "new", b, c))
            continue
        verdict, judgements, note = judge_records(b, c, tolerance)
        cells.append(CellResult(cell_label(c), verdict, b, c, judgements, note))
    cells.sort(key=lambda c: (ORDER.index(c.verdict), c.label))
    return Comparison(cells, base_hw, cand_hw, notes)
