"""Records in, report folder out: report.md, report.html, figures/*.png|svg, records.csv.

Where the report may go and how it is moved into place without deleting anything else: outdir.py.
"""
from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path
from typing import Callable

from bench.report import blocks, outdir, render_html, render_md
from bench.report.cells import Cell
from bench.report.groups import build_groups
from bench.report.load import COLUMNS, Rec, load_records, warn_stderr
from bench.report.sections import Report, Section, build_section
from bench.report.tables import records_index


def default_out(dirs: list[str | Path]) -> Path:
    names = [Path(d).resolve().name for d in dirs]
    return Path("reports") / "+".join(dict.fromkeys(names))


def write_csv(records: list[Rec], path: Path) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(COLUMNS))
        writer.writeheader()
        for rec in records:
            writer.writerow({k: ("" if v is None else v) for k, v in rec.flat.items()})


def assemble(dirs: list[str | Path], records: list[Rec], sections: list[Section], skipped: list[str],
             final: Path) -> Report:
    index = records_index(records)
    for row, rec in zip(index.rows, records):  # link each record's file, relative to the report
        row[-1] = Cell(rec["file"], None, "value", os.path.relpath(Path(rec["file"]).resolve(), final.resolve()))
    if len(sections) > 1:
        index.columns.insert(1, "Hardware")
        for row, rec in zip(index.rows, records):
            row.insert(1, Cell(rec["group"]))
    times = sorted(r["created_at"] for r in records if r["created_at"])
    names = ", ".join(dict.fromkeys(Path(d).resolve().name for d in dirs))
    shown = [f"{Path(d).as_posix()}/" for d in dirs]  # one spelling, however the folder was typed
    return Report(title=f"bench report: {names}", command="python -m bench.report " + " ".join(shown),
                  sources=shown, span=f"{times[0]} to {times[-1]}" if times else "unknown",
                  skipped_files=skipped, sections=sections, records=index, n_records=len(records))


def build(dirs: list[str | Path], out: str | Path | None = None, warn: Callable[[str], None] = warn_stderr,
          out_key: str = "output folder") -> Path:
    """Build the report of the records under `dirs` into `out` (default reports/<experiment>); returns it.
    ReportInputError: a directory is missing or holds no usable record; OutputPathError: `out` may not be
    written (outdir.check; `out_key` names it in the message). Either way nothing is written."""
    final = Path(out) if out is not None else default_out(dirs)
    previous = outdir.check(final, dirs, out_key)
    skipped: list[str] = []

    def collect(message: str) -> None:
        skipped.append(message.removeprefix("skipping "))
        warn(message)

    records = load_records(dirs, collect)
    groups = build_groups(records)
    records = [rec for g in groups for rec in g.records]
    tmp = outdir.staging(final, previous)
    try:
        sections = [build_section(g, tmp / "figures") for g in groups]
        report = assemble(dirs, records, sections, skipped, final)
        report.blocks = blocks.build_blocks(records)
        write_csv(records, tmp / "records.csv")
        (tmp / "report.md").write_text(render_md.render(report, tmp), encoding="utf-8")
        (tmp / "report.html").write_text(render_html.render(report, tmp), encoding="utf-8")
        outdir.install(tmp, final, previous)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
