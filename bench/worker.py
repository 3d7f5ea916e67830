"""`python -m bench.worker CONFIG.json`: run one cell from a resolved config file, in this process.

Started by bench.launcher for every cell of a sweep. Exit status as bench.run: 0 success or skipped,
1 oom or failed, 2 bad input.
"""
from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    from bench.cli import fail
    from bench.config import ConfigError, build_run_config

    if len(argv) != 1:
        print("usage: python -m bench.worker CONFIG.json", file=sys.stderr)
        return 2
    try:
        with open(argv[0]) as fh:
            cfg = build_run_config(json.load(fh))
        from bench.cell import run_cell

        record, _ = run_cell(cfg)
    except ConfigError as exc:
        fail(exc, prog="bench.worker")
    return 0 if record["status"] in ("success", "skipped") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
