"""python -m bench.compare BASELINE CANDIDATE: see bench/compare/cli.py."""
import sys

from bench.compare.cli import main

if __name__ == "__main__":
    sys.exit(main())
