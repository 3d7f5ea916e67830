"""report.html: one self-contained file (inline CSS, figures embedded as base64 PNG, no script, nothing
fetched), readable offline. Every string that reaches the page goes through html.escape. A table longer than
COLLAPSE_ROWS is split by model (else in pages of PAGE_ROWS rows), each part a <details> element that opens
on a click: every row is in the file and readable without a script, the first part open."""
from __future__ import annotations

import base64
import html
import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from bench.report.cells import Cell, Table
from bench.report.render_md import LEGEND

if TYPE_CHECKING:
    from bench.report.sections import Block, Report, Section

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1f24;margin:0;background:#fff}
main{max-width:1320px;margin:0 auto;padding:20px 28px 60px}
h1{font-size:24px;margin:8px 0 4px}h2{font-size:20px;margin:36px 0 8px;padding-top:8px;border-top:2px solid #d0d7de}
h3{font-size:16px;margin:26px 0 4px}h4{font-size:14px;margin:18px 0 4px}
p.meta,p.note,figcaption{color:#57606a}p.note{margin:2px 0 8px;font-size:13px;max-width:1100px}
.legend{background:#f6f8fa;border:1px solid #d0d7de;border-radius:6px;padding:8px 12px;font-size:13px}
.warn{background:#fff8c5;border:1px solid #d4a72c;border-radius:6px;padding:8px 12px}
.scroll{overflow-x:auto;margin-bottom:6px}
table{border-collapse:collapse;font-size:13px;font-variant-numeric:tabular-nums}
th,td{border:1px solid #d0d7de;padding:4px 8px;vertical-align:top}
th{background:#f6f8fa;text-align:left;font-weight:600}td.num{text-align:right;white-space:nowrap}
tr:nth-child(even) td{background:#fbfcfd}
td.fail{background:#ffebe9 !important;color:#82071e;font-weight:600}
td.nofit{background:#fff1d6 !important;color:#7a4a00;font-weight:600}
td.est{color:#3b5b87;font-style:italic}td.fits{background:#eef9f0 !important;color:#1a5e2a}
td.none{color:#8c959f;text-align:center}
a.ref{font-size:10px;color:#57606a;text-decoration:none;margin-left:3px;vertical-align:super}
td.path{font-family:ui-monospace,monospace;font-size:12px;word-break:break-all}
ul.glance li{margin:2px 0}figure{margin:12px 0 20px}figure img{max-width:100%;border:1px solid #eaeef2}
nav ul{margin:4px 0;padding-left:20px}.missing{color:#57606a}
details{margin:4px 0}summary{cursor:pointer;color:#0969da;font-size:13px}
"""
COLLAPSE_ROWS = 40
PAGE_ROWS = 50
_NUMERIC = re.compile(r"^[+\u2212\-]?[0-9.]+(\s|%|$)|^\(ref\.\)$|^est\. [0-9]")


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def td(c: Cell, refs: bool, align: bool = True, row_ref: int | None = None) -> str:
    """One cell; its record as a tooltip unless the row's tooltip already names it (row_ref)."""
    classes = [] if c.kind == "value" else [c.kind]
    if align and _NUMERIC.match(c.text):
        classes.append("num")
    if c.href:
        classes.append("path")
    body = f'<a href="{esc(c.href)}">{esc(c.text)}</a>' if c.href else esc(c.text)
    if c.ref is not None and refs:
        body += f'<a class="ref" href="#rec-{c.ref}">#{c.ref}</a>'
    title = f' title="record #{c.ref}"' if c.ref is not None and c.ref != row_ref else ""
    cls = f' class="{" ".join(classes)}"' if classes else ""
    return f"<td{cls}{title}>{body}</td>"


def row_groups(t: Table) -> list[tuple[str, list]]:
    """The table's rows as (summary, rows) parts: one part, unnamed, when the table is short; else by the
    Model column's value where there is one and it repeats, each part paged at PAGE_ROWS."""
    n = len(t.rows)
    if n <= COLLAPSE_ROWS:
        return [("", t.rows)]
    parts: dict[str, list] = {}
    col = t.columns.index("Model") if "Model" in t.columns else None
    for row in t.rows:
        parts.setdefault(f"{t.columns[col]}: {row[col].text}" if col is not None else "", []).append(row)
    if len(parts) > n // 2:  # nearly a part per row: pages instead
        parts = {"": t.rows}
    out = []
    for name, rows in parts.items():
        for i in range(0, len(rows), PAGE_ROWS):
            page = f"rows {i + 1}\u2013{min(i + PAGE_ROWS, len(rows))} of {len(rows)}"
            if name and len(rows) <= PAGE_ROWS:
                page = f"{name} \u2014 {len(rows)} rows"
            out.append((f"{name} ({page})" if name and len(rows) > PAGE_ROWS else page, rows[i:i + PAGE_ROWS]))
    return out


def table(t: Table, heading: str = "h3", row_ids: bool = False) -> str:
    head = "<thead><tr>" + "".join(f"<th>{esc(c)}</th>" for c in t.columns) + "</tr></thead>"

    def body(rows: list) -> str:
        out = []
        for row in rows:
            rid = f' id="rec-{row[0].ref}"' if row_ids and row and row[0].ref is not None else ""
            refs = Counter(c.ref for c in row if c.ref is not None)
            # a table of one record per row (its Record column): that record named once, on the row
            ref = refs.most_common(1)[0][0] if refs and not t.cell_refs else None
            rid += f' title="record #{ref}"' if ref is not None else ""
            out.append(f"<tr{rid}>" + "".join(td(c, t.cell_refs, t.align_numbers, ref) for c in row) + "</tr>")
        return f'<div class="scroll"><table>{head}<tbody>{"".join(out)}</tbody></table></div>'

    parts = row_groups(t)
    if len(parts) == 1:
        tables = body(parts[0][1])
    else:
        tables = (f'<p class="note">{len(t.rows)} rows in {len(parts)} parts; click a part to open it.</p>'
                  + "".join(f'<details{" open" if i == 0 else ""}><summary>{esc(name)}</summary>'
                            f"{body(rows)}</details>" for i, (name, rows) in enumerate(parts)))
    foot = "".join(f'<p class="note">{esc(f)}</p>' for f in t.footnotes)
    return f'<{heading} id="{esc(t.key)}">{esc(t.title)}</{heading}><p class="note">{esc(t.note)}</p>{tables}{foot}'


def figure(f, root: Path) -> str:
    if f.png is None:
        return f'<p class="missing">{esc(f.title)}: not drawn ({esc(f.missing)})</p>'
    data = base64.b64encode(f.png.read_bytes()).decode("ascii")
    png = f.png.relative_to(root).as_posix()
    return (f'<figure><h4>{esc(f.title)}</h4><img alt="{esc(f.title)}" src="data:image/png;base64,{data}">'
            f'<figcaption>{esc(f.caption)} <a href="{esc(png)}">full size</a></figcaption></figure>')


def section(s: Section, root: Path, anchor: str) -> str:
    parts = [f'<h2 id="{esc(anchor)}">{esc(s.group.title)}</h2>']
    if s.mixed:
        items = "".join(f"<li>{esc(m)}</li>" for m in s.mixed)
        parts.append(f'<div class="warn"><strong>Mixed environment</strong> \u2014 these records were made with '
                     f"different software; compare them with care:<ul>{items}</ul></div>")
    glance = []
    for heading, items in s.findings:
        body = "; ".join(esc(text) + (f'<a class="ref" href="#rec-{ref}">#{ref}</a>' if ref is not None else "")
                         for text, ref in items)
        glance.append(f"<li><strong>{esc(heading)}</strong>: {body or 'no successful cell'}</li>")
    parts.append(f'<h3>At a glance</h3><ul class="glance">{"".join(glance)}</ul>')
    parts += [table(t) for t in s.tables]
    parts += [f'<p class="note">{esc(n)}</p>' for n in s.notes]
    parts.append("<h3>Figures</h3>" + "".join(figure(f, root) for f in s.figures))
    if s.environment is not None:
        parts.append(table(s.environment))
    return "\n".join(parts)


def block(b: Block) -> str:
    parts = [f'<h2 id="{esc(b.key)}">{esc(b.title)}</h2>'] + [f"<p>{esc(p)}</p>" for p in b.intro]
    parts += [table(t) for t in b.tables] + [f'<p class="note">{esc(n)}</p>' for n in b.notes]
    return "\n".join(parts)


def render(report: Report, root: Path) -> str:
    anchors = [f"group-{i + 1}" for i in range(len(report.sections))]
    nav = "".join(f'<li><a href="#{esc(b.key)}">{esc(b.title)}</a></li>' for b in report.blocks)
    nav += "".join(f'<li><a href="#{a}">{esc(s.group.title)}</a></li>' for a, s in zip(anchors, report.sections))
    skipped = ""
    if report.skipped_files:
        items = "".join(f"<li>{esc(w)}</li>" for w in report.skipped_files)
        skipped = f'<div class="warn"><strong>Skipped files</strong> (not usable records):<ul>{items}</ul></div>'
    body = "\n".join([block(b) for b in report.blocks] + [section(s, root, a) for a, s in zip(anchors, report.sections)])
    sources = ", ".join(esc(s) for s in report.sources)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(report.title)}</title><style>{CSS}</style></head>
<body><main>
<h1>{esc(report.title)}</h1>
<p class="meta">{report.n_records} records ({esc(report.span)}) from {sources}.
Rebuild: <code>{esc(report.command)}</code></p>
<div class="legend">{esc(LEGEND)}</div>
{skipped}
<nav><ul>{nav}<li><a href="#records">Records</a></li></ul></nav>
{body}
{table(report.records, "h2", row_ids=True)}
</main></body></html>
"""
