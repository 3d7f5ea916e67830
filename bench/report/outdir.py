"""Where a report may be written, and how it is put there without losing anything.

The report goes into a new or empty folder, or one holding an earlier bench report; anything else is refused
before any work (exit 2): an input folder or a folder above one (a report swapped in whole would delete the
records), a folder holding other things, a file, a place that can't be written. A folder holds a bench
report when it has the marker file `.bench-report` (every build writes it, listing the files it wrote) or,
for reports made before the marker, a report.md and report.html that start as bench's do.

The build is staged in a hidden folder and moved in at the end, so a failed build leaves the previous report
(or nothing). Into an existing folder each file is moved in on its own: the build's files replace their
namesakes, files the previous build listed and this one did not write (a figure no longer drawn) are
removed, and nothing else in the folder is touched.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from bench.outpaths import OutputPathError, check_writable_dir, is_within

MARKER = ".bench-report"
TOP_FILES = ("records.csv", "report.md", "report.html")  # moved in after the figures they show
OWN = re.compile(r"(records\.csv|report\.md|report\.html|figures/[A-Za-z0-9._+-]+\.(png|svg))")


def _legacy_report(folder: Path) -> bool:
    try:
        with (folder / "report.md").open(encoding="utf-8", errors="replace") as fh:
            md = fh.readline()
        with (folder / "report.html").open(encoding="utf-8", errors="replace") as fh:
            head = fh.read(2000)
    except OSError:
        return False
    return md.startswith("# bench report: ") and "<title>bench report: " in head


def previous_files(folder: Path) -> list[str] | None:
    """Files an earlier build wrote in `folder` and may remove if not rewritten ([] for an empty folder or a
    pre-marker report: those are only overwritten), or None when `folder` holds something else."""
    if not any(folder.iterdir()):
        return []
    marker = folder / MARKER
    if marker.is_file():
        try:
            listed = json.loads(marker.read_text(encoding="utf-8")).get("files", [])
        except (OSError, ValueError, AttributeError):
            listed = []
        # only names a build writes: a hand-edited marker can't point the clean-up anywhere else
        return sorted(f for f in listed if isinstance(f, str) and OWN.fullmatch(f)) if isinstance(listed, list) else []
    return [] if _legacy_report(folder) else None


def check(out: Path, dirs: list[str | Path], key: str) -> list[str] | None:
    """Refuse (OutputPathError) an output folder the report must not be written to; returns previous_files,
    or None for a folder that does not exist yet. Writes nothing."""
    for d in dirs:
        if is_within(d, out):
            same = Path(d).resolve() == out.resolve()
            where = "is the input folder" if same else f"holds the input folder {d}"
            raise OutputPathError(key, out, f"{where}; the report would overwrite the records, choose another folder")
    check_writable_dir(out, key)
    if not out.exists():
        return None
    previous = previous_files(out)
    if previous is None:
        raise OutputPathError(key, out, "is not empty and holds no bench report; not overwritten "
                                        "(choose a new or empty folder)")
    for name in (*TOP_FILES, MARKER):
        if (out / name).is_dir():
            raise OutputPathError(key, out, f"{name} in it is a folder; not overwritten")
    if (out / "figures").exists() and not (out / "figures").is_dir():
        raise OutputPathError(key, out, "figures in it is not a folder; not overwritten")
    return previous


def staging(final: Path, previous: list[str] | None) -> Path:
    """A hidden folder on the destination's filesystem to build in: inside the destination when it exists,
    else in its nearest existing ancestor (folders above it are only created when the build is done)."""
    if previous is not None:
        where = final
    else:
        where = final.absolute().parent
        while not where.exists():
            where = where.parent
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=where))
    os.chmod(tmp, 0o755)
    return tmp


def install(tmp: Path, final: Path, previous: list[str] | None) -> None:
    written = sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if p.is_file())
    (tmp / MARKER).write_text(json.dumps({"made_by": "python -m bench.report", "files": written}, indent=1)
                              + "\n", encoding="utf-8")
    if previous is None:  # a new folder: one rename, all or nothing
        final.parent.mkdir(parents=True, exist_ok=True)
        os.rename(tmp, final)
        return
    order = [f for f in written if f not in TOP_FILES] + [f for f in TOP_FILES if f in written] + [MARKER]
    for rel in order:
        (final / rel).parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp / rel, final / rel)
    for rel in set(previous) - set(written):
        (final / rel).unlink(missing_ok=True)
    shutil.rmtree(tmp)
