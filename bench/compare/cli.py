"""`python -m bench.compare`: the command line of the regression gate.

    python -m bench.compare BASELINE CANDIDATE            # folders or record files -> Markdown, exit 0/1/2
    python -m bench.compare BASELINE CANDIDATE --append-history results/history --run "$GITHUB_RUN_ID"
    python -m bench.compare --trend results/history/nvidia-h100-80gb-hbm3.jsonl
    python -m bench.compare --hardware-id results/ci_gpu  # the baseline folder name for these records

Exit status: 0 no regression, 1 a regression (or, with --strict, a baseline cell missing from the
candidate) and nothing else, 2 bad input: a missing path, no records, a corrupt or odd-shaped record
(shape.py), records from another machine kind (unless --force), a bad flag or value, an output path that
can't be written — one line on stderr naming the flag, file or folder, no traceback. Everything is read
and checked before anything is written.
"""
from __future__ import annotations

import argparse
import math
import os
import sys

from bench.compare import history, summary, trend
from bench.compare.load import BadInput, load_side, side_hardware
from bench.compare.match import compare
from bench.compare.verdict import DEFAULT_TOLERANCE
from bench.outpaths import OutputPathError, check_writable_dir, check_writable_file

PROG = "bench.compare"


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's usage + message would be two lines
        raise BadInput(message)


def tolerance_value(text: str) -> float:
    """A tolerance: a finite number >= 0 (nan would make every change "worse than the tolerance")."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 and finite (got {text})")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1 (got {value})")
    return value


def parser() -> argparse.ArgumentParser:
    p = Parser(prog=PROG, description="Compare bench records against a baseline; Markdown out, exit 1 on a "
                                      "regression, 2 on bad input.")
    p.add_argument("paths", nargs="*", metavar="PATH", help="BASELINE CANDIDATE (folders or record files)")
    p.add_argument("--force", action="store_true", help="compare records from different hardware anyway")
    p.add_argument("--strict", action="store_true", help="a baseline cell missing from the candidate fails too")
    p.add_argument("--tol-memory", type=tolerance_value, default=100 * DEFAULT_TOLERANCE["peak_bytes"], metavar="PCT",
                   help="peak memory tolerance, percent (default %(default)s)")
    p.add_argument("--tol-speed", type=tolerance_value, default=100 * DEFAULT_TOLERANCE["steps_per_s"], metavar="PCT",
                   help="steps/s tolerance, percent (default %(default)s)")
    p.add_argument("--tol-quality", type=tolerance_value, default=DEFAULT_TOLERANCE["quality_main"], metavar="PT",
                   help="quality tolerance, metric points (default %(default)s)")
    p.add_argument("--summary", metavar="FILE",
                   help="also append the Markdown to FILE (default: $GITHUB_STEP_SUMMARY when set)")
    p.add_argument("--append-history", metavar="STORE", help="append the candidate's cells to STORE/<hardware>.jsonl")
    p.add_argument("--sha", help="history: the commit (default: the records' git sha)")
    p.add_argument("--date", help="history: the commit date, ISO 8601 (default: the run's first record)")
    p.add_argument("--run", help="history: a run id such as $GITHUB_RUN_ID (default: the run's first record)")
    p.add_argument("--trend", metavar="HISTORY", help="print trends from a history file or store folder")
    p.add_argument("--last", type=positive_int, default=0, metavar="N",
                   help="trend: only the last N runs of each cell (default: all)")
    p.add_argument("--hardware-id", metavar="RECORDS", help="print the hardware id of these records and exit")
    return p


def tolerances(args: argparse.Namespace) -> dict[str, float]:
    return {"peak_bytes": args.tol_memory / 100, "steps_per_s": args.tol_speed / 100,
            "quality_main": args.tol_quality}


def summary_target(args: argparse.Namespace) -> str | None:
    """The file the Markdown is appended to, checked before any work (appending never loses anything)."""
    if args.summary:
        return str(check_writable_file(args.summary, "--summary"))
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    return str(check_writable_file(target, "$GITHUB_STEP_SUMMARY")) if target else None


def emit(markdown: str, target: str | None) -> None:
    sys.stdout.write(markdown)
    if target:
        try:
            with open(target, "a") as fh:
                fh.write(markdown + "\n")
        except OSError as exc:
            raise BadInput(f"{target}: cannot write the summary ({exc.strerror})") from None


def run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    tolerance = tolerances(args)
    if args.append_history:
        check_writable_dir(args.append_history, "--append-history")
    target = summary_target(args)
    if args.hardware_id:
        print(side_hardware(load_side(args.hardware_id), args.hardware_id))
        return 0
    if args.trend:
        if args.paths:
            raise BadInput("--trend takes a history file or folder, not BASELINE CANDIDATE")
        emit(trend.render(history.read(args.trend), args.trend, tolerance, args.last), target)
        return 0
    if len(args.paths) != 2:
        raise BadInput(f"expected BASELINE CANDIDATE, got {len(args.paths)} path(s)")
    base_path, cand_path = args.paths
    base, cand = load_side(base_path), load_side(cand_path)
    comparison = compare(base, cand, tolerance, force=args.force)
    planned = (history.plan(args.append_history, history.entries_from_records(cand, args.sha, args.date, args.run))
               if args.append_history else {})
    emit(summary.render(comparison, base, cand, base_path, cand_path, tolerance), target)
    if planned:
        for path, count in history.write(planned).items():
            print(f"{PROG}: history: {count} cell(s) appended to {path}", file=sys.stderr)
    failed = comparison.regressed or (args.strict and comparison.count("missing") > 0)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except (BadInput, OutputPathError) as exc:
        print(f"{PROG}: error: {str(exc).splitlines()[0] if str(exc) else 'bad input'}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `| head` closed the pipe
        return 0

