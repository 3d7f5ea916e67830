"""Quality tables of one hardware group: GLUE tasks x method with the average, and SQuAD EM / F1; every score
with its seeds, mean and 95% interval, and the difference from LoRA (or the first method) with its verdict.

GLUE scores are shown x100 (the leaderboard's scale), SQuAD's as the official script prints them (already
percentages). A cell that did not produce a score shows its outcome (OOM, failed, does not fit).

A cell run with repeats=N (one seed per repeat) shows "mean ±half-width (seed, seed, ...)": the mean of the
seeds and the half-width of its t interval (bench.stats.mean_interval). One seed shows the score alone and
the table says it has no interval. Differences are bench.stats.delta in points: "equivalent" (comparable
quality) only when the difference's whole interval lies inside ±1 point, "n.s." when it contains zero but is
wider (inconclusive), no verdict word when established; never "better" on one seed. Methods compared on
different budgets (steps, batch, training examples) are flagged: the difference may be the budget's.
"""
from __future__ import annotations

import math
from typing import Any

from bench.report.cells import Cell, Table, failure_cell, model_header, na, none
from bench.report.groups import Group, method_sort_key, model_params
from bench.report.load import GLUE_TASKS, SQUAD_TASKS, Rec, get, num, quality_score
from bench.stats import Estimate, delta, mean_interval

GLUE_HEADERS = {"cola": "CoLA (MCC)", "sst2": "SST-2 (acc)", "mrpc": "MRPC (F1/acc avg)",
                "qqp": "QQP (F1/acc avg)", "stsb": "STS-B (Pearson/Spearman avg)", "mnli": "MNLI (m/mm acc avg)",
                "qnli": "QNLI (acc)", "rte": "RTE (acc)", "wnli": "WNLI (acc)"}
SQUAD_COLUMNS = {"squad": (("exact_match", "SQuAD v1.1 EM"), ("f1", "SQuAD v1.1 F1")),
                 "squad_v2": (("exact", "SQuAD v2.0 EM"), ("f1", "SQuAD v2.0 F1"),
                              ("HasAns_f1", "v2.0 HasAns F1"), ("NoAns_f1", "v2.0 NoAns F1"))}
SPLIT_NAMES = {"dev": "dev", "holdout": "held out of the training file"}
VERDICTS = ("\u00b1 = 95% interval. Difference in points (bench.stats.delta): \"equivalent\" = comparable quality "
            "(its whole interval inside \u00b11 point); \"n.s.\" = the interval contains zero but is wider "
            "(inconclusive, not a tie); no word = established; \"no interval\" = a side has one seed.")


def seed_scores(rec: Rec) -> list[float]:
    """Each seed's main score on the 0-100 scale: repeats.runs when the cell was repeated, else the one run."""
    runs = get(rec.raw, "repeats", "runs")
    if isinstance(runs, list) and runs:
        values = [num(r.get("quality_main")) for r in runs if isinstance(r, dict) and r.get("status") == "success"]
        return [quality_score(rec["task"], v) for v in values if v is not None]
    return [rec["quality_score"]] if rec.ok and rec["quality_score"] is not None else []


def quality_estimate(rec: Rec) -> Estimate | None:
    """The cell's score: mean of its seeds with the t interval (none with one seed); None without a score.
    The estimate bench.report.load attached (bench.compare.verdict.quality: the rule the gate uses) when
    there is one, else the same t interval from the seeds."""
    attached = getattr(rec, "est", None) or {}
    if "quality" in attached:
        return attached["quality"]
    scores = seed_scores(rec)
    return mean_interval(scores) if scores else None


def estimate_text(est: Estimate, seeds: list[float]) -> str:
    if not est.has_interval:
        return f"{est.value:.1f}"
    return f"{est.value:.1f} \u00b1{(est.hi - est.lo) / 2:.1f} (" + ", ".join(f"{s:.1f}" for s in seeds) + ")"


def _average(estimates: list[Estimate]) -> Estimate:
    """Mean over tasks of independent estimates: half-widths in quadrature / k (no interval if any lacks one)."""
    k = len(estimates)
    value = sum(e.value for e in estimates) / k
    if not all(e.has_interval for e in estimates):
        return Estimate(value, n=min(e.n for e in estimates))
    half = math.sqrt(sum(((e.hi - e.lo) / 2) ** 2 for e in estimates)) / k
    return Estimate(value, value - half, value + half, min(e.n for e in estimates), "mean over tasks")


def budget(rec: Rec) -> tuple[Any, ...]:
    """What a quality comparison must hold equal: steps, examples per step, training examples."""
    train = get(rec.raw, "config", "train") or {}
    steps, per_step = train.get("steps"), (train.get("batch_size") or 0) * (train.get("grad_accum") or 1)
    return steps, per_step, get(rec.raw, "data", "train_examples")


def budget_text(b: tuple[Any, ...]) -> str:
    steps, per_step, examples = b
    return f"{steps} steps x {per_step}" + (f" on {examples:,} examples" if isinstance(examples, int) else "")


def _budget_check(table: Table, records: list[Rec]) -> bool:
    """A note when every scored cell had the same budget; a footnote (and True: show a column) when not."""
    budgets = {budget(r) for r in records if r.ok}
    if len(budgets) == 1:
        table.note += f" Every cell's budget: {budget_text(next(iter(budgets)))}."
    elif budgets:
        by = {}
        for r in sorted((r for r in records if r.ok), key=method_sort_key):
            by.setdefault(budget_text(budget(r)), []).append(r["label"])
        table.footnotes.append("Budgets differ (" + "; ".join(f"{', '.join(dict.fromkeys(v))}: {k}"
                               for k, v in by.items()) + "): a difference here may be the budget's, not the method's.")
    return len(budgets) > 1


def _split_title(records: list[Rec]) -> str:
    splits = sorted({get(r.raw, "quality", "eval_split") or "dev" for r in records if r.ok}) or ["dev"]
    return " / ".join(SPLIT_NAMES.get(s, s) for s in splits)


def _rows(group: Group, records: list[Rec]) -> list[tuple[str, str]]:
    """(label, model) pairs in method order, models by size."""
    ordered = sorted(records, key=lambda r: (model_params(group.records, r["model"]), method_sort_key(r), r["label"]))
    return list(dict.fromkeys((r["label"], r["model"]) for r in ordered))


def _reference(rows: list[tuple[str, str]], model: str) -> str | None:
    labels = [label for label, m in rows if m == model]
    return "lora" if "lora" in labels else (labels[0] if labels else None)


def _row_head(group: Group, label: str, model: str, models: set[str]) -> str:
    return label if len(models) == 1 else f"{label} \u00b7 {model_header(group.records, model)}"


def _joined(cells: list[Cell]) -> Cell:
    if len(cells) == 1:
        return cells[0]
    return Cell(" / ".join(f"{c.text} [#{c.ref}]" for c in cells), None, cells[0].kind)


def _score_cell(rec: Rec) -> tuple[Cell, Estimate | None]:
    if not rec.ok:
        return failure_cell(rec), None
    est = quality_estimate(rec)
    if est is None:
        return Cell("no score", rec["id"], "fail"), None
    return Cell(estimate_text(est, seed_scores(rec)), rec["id"]), est


def _difference_cells(table: Table, rows: list[tuple[str, str]], totals: dict[tuple[str, str], Estimate]) -> None:
    """Append 'vs <reference>' to each row: the reference's own row says so."""
    for (label, model), row in zip(rows, table.rows):
        ref = _reference(rows, model)
        if (label, model) == (ref, model):
            row.append(Cell("reference", None, "none"))
        elif (label, model) in totals and (ref, model) in totals:
            row.append(Cell(delta(totals[(label, model)], totals[(ref, model)]).text()))
        else:
            row.append(na())


def _seed_notes(table: Table, estimates: list[Estimate]) -> None:
    seeds = sorted({e.n for e in estimates})
    if seeds == [1]:
        table.footnotes.append("One seed per cell: no interval, and no difference here is established.")
    elif 1 in seeds:
        table.footnotes.append("Cells without \u00b1 ran one seed: no interval, so no verdict against them.")
    table.footnotes.append(VERDICTS)


def glue(group: Group) -> Table | None:
    records = [r for r in group.records if r["task"] in GLUE_TASKS]
    if not records:
        return None
    tasks = [t for t in GLUE_TASKS if any(r["task"] == t for r in records)]
    models, rows = {r["model"] for r in records}, _rows(group, records)
    table = Table(f"glue-{group.slug}", f"Quality: GLUE ({_split_title(records)})",
                  "Score x100, higher is better (\u2191); the GLUE leaderboard's main metric of each task: mean "
                  "\u00b195% interval over seeds (each seed's score in brackets). Average: the mean over the tasks "
                  "this method scored, with how many when some are missing. \u2014 = no record.",
                  ["Method"] + [GLUE_HEADERS[t] for t in tasks] + ["Average \u2191"])
    totals, estimates = {}, []
    for label, model in rows:
        row, scored = [Cell(_row_head(group, label, model, models))], []
        for task in tasks:
            cells = []
            for rec in (r for r in records if r["label"] == label and r["model"] == model and r["task"] == task):
                cell, est = _score_cell(rec)
                cells.append(cell)
                if est is not None:
                    scored.append(est)
            row.append(_joined(cells) if cells else none())
        estimates += scored
        if not scored:
            row.append(na())
        else:
            avg = _average(scored)
            text = f"{avg.value:.1f}" + (f" \u00b1{(avg.hi - avg.lo) / 2:.1f}" if avg.has_interval else "")
            n_scored = sum(1 for c in row[1:] if c.kind == "value")
            row.append(Cell(text if n_scored == len(tasks) else f"{text} ({n_scored} of {len(tasks)} tasks)"))
            if n_scored == len(tasks) and len(scored) == len(tasks):
                totals[(label, model)] = avg
        table.rows.append(row)
    table.columns.append("vs LoRA (average)" if all(_reference(rows, m) == "lora" for m in models)
                         else "vs first method (average)")
    _difference_cells(table, rows, totals)
    if len(tasks) == 1:
        table.footnotes.append("One GLUE task in these records: the average is that task's score.")
    _budget_check(table, records)
    _seed_notes(table, estimates)
    return table


def squad(group: Group) -> Table | None:
    records = [r for r in group.records if r["task"] in SQUAD_TASKS]
    if not records:
        return None
    versions = [t for t in SQUAD_TASKS if any(r["task"] == t for r in records)]
    columns = [(task, key, title) for task in versions for key, title in SQUAD_COLUMNS[task]]
    models, rows = {r["model"] for r in records}, _rows(group, records)
    table = Table(f"squad-{group.slug}", f"Quality: SQuAD ({_split_title(records)})",
                  "Exact match and F1 in %, higher is better (\u2191), from the official scoring. The main metric: "
                  "mean \u00b195% interval over seeds (each seed's in brackets). \u2014 = no record.",
                  ["Method"] + [title for _, _, title in columns])
    totals, estimates, representative = {}, [], False
    for label, model in rows:
        row = [Cell(_row_head(group, label, model, models))]
        for task, key, _ in columns:
            cells = []
            for rec in (r for r in records if r["label"] == label and r["model"] == model and r["task"] == task):
                if rec.ok and key == rec["quality_metric"]:
                    cell, est = _score_cell(rec)
                    if est is not None:
                        estimates.append(est)
                        totals[(label, model)] = est if len(versions) == 1 else totals.get((label, model), est)
                    cells.append(cell)
                    continue
                value = num(get(rec.raw, "quality", "final", get(rec.raw, "quality", "eval_split") or "dev", key))
                if rec.ok and value is not None and len(seed_scores(rec)) > 1:
                    representative = True
                    value_text = f"{value:.1f}\u2020"
                else:
                    value_text = f"{value:.1f}" if value is not None else ""
                cells.append(Cell(value_text, rec["id"]) if rec.ok and value is not None
                             else failure_cell(rec) if not rec.ok else Cell("no score", rec["id"], "fail"))
            row.append(_joined(cells) if cells else none())
        table.rows.append(row)
    if len(versions) == 1:
        table.columns.append("vs LoRA (main)" if all(_reference(rows, m) == "lora" for m in models)
                             else "vs first method (main)")
        _difference_cells(table, rows, totals)
    if representative:
        table.footnotes.append("\u2020 A repeated cell keeps each seed's main metric only: this figure is the "
                               "record's representative seed (the median by speed), not a mean.")
    _budget_check(table, records)
    _seed_notes(table, estimates)
    return table
