"""report.md: the same content as the HTML, for a repository viewer. Every string from a record is escaped
(HTML-significant characters become entities, Markdown punctuation is backslashed, a '|' can't split a
table cell); figures are linked from figures/."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bench.report.cells import Cell, Table

if TYPE_CHECKING:
    from bench.report.sections import Block, Report, Section

LEGEND = ("How to read: \u2193 lower is better, \u2191 higher is better; GB = 10^9 bytes; #n = the record behind "
          "a number (Records, at the end; the CSV has every field); est. = the preflight estimate stored in a record, "
          "not a measurement; OOM = ran out of memory; does not fit = refused by the preflight before loading; "
          "too slow here = predicted to train past max_cell_minutes on that machine, not run; "
          "failed = crashed (error in Records); \u2014 = no record for that cell; n/a = does not apply to that "
          "record, or was not measured (its status says why). Records from different hardware "
          "are in separate sections and never compared or combined.")
_MD = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "|": "\\|", "\\": "\\\\", "`": "\\`", "*": "\\*",
                     "_": "\\_", "[": "\\[", "]": "\\]", "\n": " ", "\r": " "})


def md(text: object) -> str:
    return str(text).translate(_MD)


# A link target is not escaped by backslashes the way text is: these are percent-encoded instead ('|' would
# still split a table cell, a newline would end the row, '<' '>' would end the <...> destination).
_HREF = str.maketrans({"|": "%7C", "<": "%3C", ">": "%3E", "\\": "%5C", "\n": "%0A", "\r": "%0D"})


def cell(c: Cell, refs: bool) -> str:
    body = md(c.text)
    if c.href:
        body = f"[{body}](<{c.href.translate(_HREF)}>)"
    if refs and c.ref is not None:
        body += f" \\[#{c.ref}\\]"
    return body


def table(t: Table, level: str = "###") -> list[str]:
    lines = [f"{level} {md(t.title)}", "", f"*{md(t.note)}*", ""]
    lines.append("| " + " | ".join(md(c) for c in t.columns) + " |")
    lines.append("|" + "|".join("---" for _ in t.columns) + "|")
    for row in t.rows:
        lines.append("| " + " | ".join(cell(c, t.cell_refs) for c in row) + " |")
    lines += [""] + [f"{md(f)}" for f in t.footnotes] + ([""] if t.footnotes else [])
    return lines


def section(s: Section, root: Path, multi: bool) -> list[str]:
    lines = [f"## {md(s.group.title)}", ""]
    if s.mixed:
        lines += ["**Mixed environment** \u2014 these records were made with different software; compare them "
                  "with care:", ""] + [f"- {md(m)}" for m in s.mixed] + [""]
    lines += ["### At a glance", ""]
    for heading, items in s.findings:
        body = "; ".join(md(text) + (f" \\[#{ref}\\]" if ref is not None else "") for text, ref in items)
        lines.append(f"- **{md(heading)}**: {body or 'no successful cell'}")
    lines.append("")
    for t in s.tables:
        lines += table(t)
    lines += list(s.notes) + ([""] if s.notes else [])  # the report's own text, no record strings
    lines += ["### Figures", ""]
    for f in s.figures:
        if f.png is None:
            lines += [f"- {md(f.title)}: not drawn ({md(f.missing)})"]
            continue
        png = f.png.relative_to(root).as_posix()
        lines += ["", f"#### {md(f.title)}", "", f"![{md(f.title)}]({png})", "", f"*{md(f.caption)}*", ""]
    lines.append("")
    if s.environment is not None:
        lines += table(s.environment, "###")
    return lines


def block(b: Block) -> list[str]:
    lines = [f"## {md(b.title)}", ""] + [f"{md(p)}\n" for p in b.intro]
    for t in b.tables:
        lines += table(t)
    return lines + [f"{md(n)}\n" for n in b.notes]


def render(report: Report, root: Path) -> str:
    multi = len(report.sections) > 1
    lines = [f"# {md(report.title)}", "",
             f"{report.n_records} records ({md(report.span)}) from {', '.join(md(s) for s in report.sources)}. "
             f"Rebuild: `{report.command.replace('`', '')}`. Open `report.html` for the same report with the figures "
             "inline; `records.csv` has every record flattened.", "", LEGEND, ""]
    if report.skipped_files:
        lines += ["**Skipped files** (not usable records):", ""] + [f"- {md(w)}" for w in report.skipped_files] + [""]
    if multi:
        lines += ["Hardware groups: " + "; ".join(md(s.group.title) for s in report.sections), ""]
    for b in report.blocks:
        lines += block(b)
    for s in report.sections:
        lines += section(s, root, multi)
    lines += table(report.records, "##")
    return "\n".join(lines).rstrip() + "\n"
