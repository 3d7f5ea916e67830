"""python -m bench.report results/<experiment> [more dirs] [--out DIR]: build reports/<experiment>/, then print
each hardware group's per-method table (terminal.py: the report's own table, in columns that fit a terminal).

Bad input (a missing directory, no usable records, an unknown flag, an output folder it must not write:
see outdir.py): one line on stderr naming the path or flag, exit status 2, nothing written. A corrupt or
foreign record file is skipped with a warning naming it.
"""
from __future__ import annotations

import argparse
import sys

from bench.outpaths import OutputPathError
from bench.report.build import build
from bench.report.load import ReportInputError
from bench.report.terminal import per_method_text

PROG = "bench.report"


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's usage + message would be several lines
        raise ReportInputError(message)


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m bench.report", description="Build a report from run records: "
                                     "report.md, report.html (self-contained), figures (PNG, SVG), records.csv.")
    parser.add_argument("dirs", nargs="+", help="results/<experiment> folders (records are read recursively)")
    parser.add_argument("--out", help="output folder (default: reports/<experiment>, names joined by '+')")
    try:
        args = parser.parse_args(argv)
        out = build(args.dirs, args.out, out_key="--out" if args.out else "output folder")
    except (ReportInputError, OutputPathError) as exc:
        print(f"{PROG}: error: {(str(exc).splitlines() or ['bad input'])[0]}", file=sys.stderr)
        return 2
    print(per_method_text(args.dirs))
    print(f"report: {out / 'report.html'} (also report.md, records.csv, figures/)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
