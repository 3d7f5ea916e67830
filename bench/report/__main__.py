"""python -m bench.report results/<experiment> [more dirs] [--out DIR]: build reports/<experiment>/.

Bad input (a missing directory, no usable records): one line on stderr naming the path, exit status 2,
nothing written. A corrupt or foreign record file is skipped with a warning naming it.
"""
from __future__ import annotations

import argparse
import sys

from bench.report.build import build, default_out
from bench.report.load import ReportInputError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description="Build a report from run records: "
                                     "report.md, report.html (self-contained), figures (PNG, SVG), records.csv.")
    parser.add_argument("dirs", nargs="+", help="results/<experiment> folders (records are read recursively)")
    parser.add_argument("--out", help="output folder (default: reports/<experiment>, names joined by '+')")
    args = parser.parse_args(argv)
    try:
        out = build(args.dirs, args.out or default_out(args.dirs))
    except ReportInputError as exc:
        print(f"bench.report: {exc}", file=sys.stderr)
        return 2
    print(f"report: {out / 'report.html'} (also report.md, records.csv, figures/)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
