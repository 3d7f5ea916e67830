"""`python -m bench.lr_search [--methods M,M] [--grid M=LR,LR ...] [--jobs N] --out FILE [overrides]`: per method, a
small learning-rate grid trained by bench.run and scored on examples held out of the training file (never dev);
writes FILE, a Hydra config with the chosen `lr_by_method` and the evidence (bench.launch.lr_search).

    python -m bench.lr_search +experiment=lr_search_quickstart --out conf/lr/quickstart.yaml

Add `repeats=3` for seeds (scores with 95% intervals). Exit status: 0 written, 1 a cell left no score,
2 bad input (one line naming the key or file; nothing run, nothing written).
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path


def _grids(items: list[str]) -> dict[str, tuple[float, ...]]:
    from bench.config import ConfigError
    from bench.launch.lr_search import DEFAULT_GRIDS

    grids = dict(DEFAULT_GRIDS)
    for item in items:
        method, _, values = item.partition("=")
        try:
            lrs = tuple(float(v) for v in values.split(","))
        except ValueError:
            raise ConfigError(f"--grid {item}: learning rates must be numbers (METHOD=LR,LR,...)") from None
        if not method or not lrs or any(lr <= 0 for lr in lrs):
            raise ConfigError(f"--grid {item}: expected METHOD=LR,LR,... with every LR > 0")
        grids[method] = lrs
    return grids


def main(argv: list[str] | None = None) -> int:
    from bench.config import ConfigError
    from bench.launch.cli import fail
    from bench.launch.lr_search import DEFAULT_METHODS, NoScore, run

    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="bench.lr_search", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="the YAML to write (e.g. conf/lr/quickstart.yaml)")
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS))
    parser.add_argument("--grid", action="append", default=[], help="METHOD=LR,LR,... (repeatable)")
    parser.add_argument("--no-run", action="store_true", help="score the records already written, run nothing")
    parser.add_argument("--jobs", type=int, default=1, help="methods' sweeps run at a time (default 1)")
    args, overrides = parser.parse_known_args(argv)
    out = Path(args.out)
    try:
        if [o for o in overrides if o.startswith("-")]:
            raise ConfigError(f"unknown option {[o for o in overrides if o.startswith('-')][0]}")
        if not out.parent.is_dir():
            raise ConfigError(f"--out: folder {out.parent} does not exist")
        methods = [m for m in args.methods.split(",") if m]
        command = shlex.join(["python", "-m", "bench.lr_search", *argv])
        if args.jobs < 1:
            raise ConfigError(f"--jobs must be >= 1 (got {args.jobs})")
        run(methods, _grids(args.grid), overrides, out, command, execute=not args.no_run, jobs=args.jobs)
    except ConfigError as exc:
        fail(exc, "bench.lr_search")
    except NoScore as exc:
        print(f"bench.lr_search: error: {exc}", file=sys.stderr)
        return 1
    print(f"bench.lr_search: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
