"""Quality tables of one hardware group: GLUE tasks x method with the average, and SQuAD EM / F1.

GLUE scores are shown x100 (the leaderboard's scale), SQuAD's as the official script prints them (already
percentages). A cell that did not produce a score shows its outcome (OOM, failed, does not fit).
"""
from __future__ import annotations

import statistics

from bench.report.cells import Cell, Table, failure_cell, model_header, na, none
from bench.report.groups import Group, method_sort_key, model_params
from bench.report.load import GLUE_TASKS, SQUAD_TASKS, Rec, get, num

GLUE_HEADERS = {"cola": "CoLA (MCC)", "sst2": "SST-2 (acc)", "mrpc": "MRPC (F1/acc avg)",
                "qqp": "QQP (F1/acc avg)", "stsb": "STS-B (Pearson/Spearman avg)", "mnli": "MNLI (m/mm acc avg)",
                "qnli": "QNLI (acc)", "rte": "RTE (acc)", "wnli": "WNLI (acc)"}
SQUAD_COLUMNS = {"squad": (("exact_match", "SQuAD v1.1 EM"), ("f1", "SQuAD v1.1 F1")),
                 "squad_v2": (("exact", "SQuAD v2.0 EM"), ("f1", "SQuAD v2.0 F1"),
                              ("HasAns_f1", "v2.0 HasAns F1"), ("NoAns_f1", "v2.0 NoAns F1"))}


def _rows(group: Group, records: list[Rec]) -> list[tuple[str, str]]:
    """(label, model) pairs in method order, models by size."""
    ordered = sorted(records, key=lambda r: (model_params(group.records, r["model"]), method_sort_key(r), r["label"]))
    return list(dict.fromkeys((r["label"], r["model"]) for r in ordered))


def _row_head(group: Group, label: str, model: str, models: set[str]) -> str:
    return label if len(models) == 1 else f"{label} \u00b7 {model_header(group.records, model)}"


def _joined(cells: list[Cell]) -> Cell:
    if len(cells) == 1:
        return cells[0]
    return Cell(" / ".join(f"{c.text} [#{c.ref}]" for c in cells), None, cells[0].kind)


def glue(group: Group) -> Table | None:
    records = [r for r in group.records if r["task"] in GLUE_TASKS]
    if not records:
        return None
    tasks = [t for t in GLUE_TASKS if any(r["task"] == t for r in records)]
    models = {r["model"] for r in records}
    table = Table(f"glue-{group.slug}", "Quality: GLUE (dev)",
                  "Score x100, higher is better (\u2191); the GLUE leaderboard's main metric of each task. Average: "
                  "the mean over the tasks this method scored, with how many when some are missing. "
                  "\u2014 = no record.",
                  ["Method"] + [GLUE_HEADERS[t] for t in tasks] + ["Average \u2191"])
    for label, model in _rows(group, records):
        row, scores = [Cell(_row_head(group, label, model, models))], []
        for task in tasks:
            mine = [r for r in records if r["label"] == label and r["model"] == model and r["task"] == task]
            cells = []
            for rec in mine:
                if rec.ok and rec["quality_score"] is not None:
                    cells.append(Cell(f"{rec['quality_score']:.1f}", rec["id"]))
                    scores.append(rec["quality_score"])
                else:
                    cells.append(failure_cell(rec) if not rec.ok else Cell("no score", rec["id"], "fail"))
            row.append(_joined(cells) if cells else none())
        if not scores:
            row.append(na())
        else:
            n_scored = sum(1 for c in row[1:] if c.kind == "value")
            text = f"{statistics.fmean(scores):.1f}"
            row.append(Cell(text if n_scored == len(tasks) else f"{text} ({n_scored} of {len(tasks)} tasks)"))
        table.rows.append(row)
    if len(tasks) == 1:
        table.footnotes.append("One GLUE task in these records: the average is that task's score.")
    return table


def squad(group: Group) -> Table | None:
    records = [r for r in group.records if r["task"] in SQUAD_TASKS]
    if not records:
        return None
    versions = [t for t in SQUAD_TASKS if any(r["task"] == t for r in records)]
    columns = [(task, key, title) for task in versions for key, title in SQUAD_COLUMNS[task]]
    models = {r["model"] for r in records}
    table = Table(f"squad-{group.slug}", "Quality: SQuAD (dev)",
                  "Exact match and F1 in %, higher is better (\u2191), from the official scoring. \u2014 = no record.",
                  ["Method"] + [title for _, _, title in columns])
    for label, model in _rows(group, records):
        row = [Cell(_row_head(group, label, model, models))]
        for task, key, _ in columns:
            cells = []
            for rec in (r for r in records if r["label"] == label and r["model"] == model and r["task"] == task):
                value = num(get(rec.raw, "quality", "final", "dev", key))
                cells.append(Cell(f"{value:.1f}", rec["id"]) if rec.ok and value is not None
                             else failure_cell(rec) if not rec.ok else Cell("no score", rec["id"], "fail"))
            row.append(_joined(cells) if cells else none())
        table.rows.append(row)
    return table
