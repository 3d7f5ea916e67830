"""The per-method table as plain text for the terminal: `python -m bench.report` prints it after building.

The numbers are the report's own (tables.per_method, the table report.md opens each hardware group with);
only the columns that fit a terminal are kept, and nothing is recomputed here.
"""
from __future__ import annotations

from pathlib import Path

from bench.report.cells import Table
from bench.report.groups import build_groups
from bench.report.load import load_records
from bench.report.tables import per_method

# Header prefixes of the per-method table shown in the terminal, in its order.
KEEP = ("Method", "Model", "Status", "Peak memory", "Memory reduction", "Rates from", "Steps/s", "Speed vs LoRA",
        "Tokens/s", "Trainable params", "Quality", "Record")
# Shorter headers for a terminal; the direction arrows stay. What they mean: LEGEND (report.md has it in full).
SHORT = {"Peak memory (GB)": "Peak GB", "Memory reduction vs full FT": "Memory vs full", "Trainable params (%)":
         "Trainable"}
LEGEND = ("Memory vs full = 1 - peak / full fine-tuning's peak (+ = less memory); Speed vs LoRA = steps/s / "
          "LoRA's - 1 (+ = faster); \u00b1 = 95% half-width: rates from the mean of N repeats or one run's "
          "batch-means interval ('Rates from'); n.s. = a difference within noise (a tie); #n: the record, listed "
          "in report.md.")


def text_table(table: Table) -> list[str]:
    """Aligned columns: headers, a rule, one line per row; numeric cells right-aligned."""
    keep = [i for i, c in enumerate(table.columns) if c.startswith(KEEP)
            and not (table.rows and all(row[i].kind == "none" for row in table.rows))]  # drop all-n/a columns
    heads = [table.columns[i] for i in keep]
    for long, short in SHORT.items():
        heads = [h.replace(long, short) for h in heads]
    rows = [heads] + [[row[i].text for i in keep] for row in table.rows]
    widths = [max(len(r[j]) for r in rows) for j in range(len(keep))]

    def line(cells: list[str]) -> str:
        out = []
        for j, text in enumerate(cells):
            numeric = text[:1] in "0123456789+-\u2212" and j > 0
            out.append(text.rjust(widths[j]) if numeric else text.ljust(widths[j]))
        return "  ".join(out).rstrip()

    return [line(rows[0]), "  ".join("-" * w for w in widths)] + [line(r) for r in rows[1:]]


def per_method_text(dirs: list[str | Path]) -> str:
    """Each hardware group's per-method table (records read as the report reads them, warnings silenced:
    the report build has given them already)."""
    lines: list[str] = []
    for group in build_groups(load_records(dirs, lambda _message: None)):
        table = per_method(group)
        lines += [f"{table.title}: {group.title}", *text_table(table), ""]
    if lines:
        lines.append(LEGEND)
    return "\n".join(lines).rstrip("\n")
