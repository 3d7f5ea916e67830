"""Are a cell's speed intervals honest? Reruns one tiny CPU cell N times, each a fresh `python -m bench.run`
(its own process, the real harness, a private results folder), takes each run's reported 95% interval for
steps/s (the record's timing.steps_per_s_ci95; recomputed with bench.stats.rate_interval from its step times
where a record has none) and counts the runs whose interval contains the median of all reruns' steps/s.

About 95% is the goal. Far less means the intervals are too narrow for what a rerun actually does: the
batch-means interval sees the noise within one run, not what moves between runs (process start, memory
layout, the machine's load drifting between runs), so on a shared or drifting machine the coverage drops.
The coverage itself is a count out of N, so it is printed with its own 95% (Wilson) interval: with N = 10,
9/10 and 10/10 can't be told apart from 95%.

    python benchmarks/coverage.py [--runs 10] [--json out.json] [-- bench.run overrides]

The default cell is LoRA on `tiny`, batch 4 x 128, 5 warm-up + 25 timed steps (5 batches of 5 steps).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import stats  # noqa: E402

CELL = ["method=lora", "model=tiny", "train.batch_size=4", "train.seq_len=128", "train.steps=30",
        "train.warmup_steps=5"]


def rerun(index: int, overrides: list[str], work: Path) -> dict:
    """One run in a fresh `python -m bench.run`; its steps/s, interval and where the interval came from."""
    name = f"coverage-{index:02d}"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "bench.run", *CELL, *overrides, f"experiment_name={name}",
                           f"results_dir={work}"], cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"run {index} failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
    [path] = sorted((work / name).glob("*.json"))
    record = json.loads(path.read_text())
    timing = record["timing"]
    times = timing["step_times_s"]
    ci, source = timing.get("steps_per_s_ci95"), "record"
    if not ci:
        rate = stats.rate_interval(times)
        ci, source = ([rate.lo, rate.hi] if rate else None), "recomputed"
    if ci:  # an unbounded end (the step-time interval reached 0) is stored as null: infinite here
        ci = [ci[0] if ci[0] is not None else 0.0, ci[1] if ci[1] is not None else math.inf]
    return {"run": index, "steps_per_s": timing["steps_per_s"], "ci95": ci, "ci_source": source,
            "measured_steps": len(times), "median_step_s": statistics.median(times),
            "outlier_steps": stats.outlier_steps(times)["count"], "cell_start": record["env"].get("cell_start"),
            "wall_s": wall, "step_times_s": times}


def wilson(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion hits / n."""
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def coverage(runs: list[dict]) -> dict:
    """The share of runs whose interval holds the median of all runs' steps/s, with the spreads behind it."""
    rates = [r["steps_per_s"] for r in runs]
    median = statistics.median(rates)
    for r in runs:
        r["covers_median"] = bool(r["ci95"]) and r["ci95"][0] <= median <= r["ci95"][1]
    hits = sum(r["covers_median"] for r in runs)
    halves = [(r["ci95"][1] - r["ci95"][0]) / 2 / r["steps_per_s"] for r in runs
              if r["ci95"] and math.isfinite(r["ci95"][1])]
    combined = stats.combine_runs([r["step_times_s"] for r in runs])
    lo, hi = wilson(hits, len(runs))
    return {"median_steps_per_s": median, "covered": hits, "runs": len(runs), "coverage": hits / len(runs),
            "coverage_ci95": [lo, hi],
            "between_run_cv": statistics.stdev(rates) / statistics.fmean(rates) if len(rates) > 1 else None,
            "mean_rel_half_width": statistics.fmean(halves) if halves else None,
            "unbounded_intervals": sum(1 for r in runs if r["ci95"] and not math.isfinite(r["ci95"][1])),
            "all_runs_combined": combined.to_json() if combined else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--json", type=Path, help="write every run and the coverage here")
    parser.add_argument("overrides", nargs="*", help="bench.run overrides after the default cell's")
    args = parser.parse_args()
    if args.runs < 2:
        sys.exit("--runs must be >= 2 (coverage is measured against the median of the reruns)")
    work = Path(tempfile.mkdtemp(prefix="bench-coverage-"))
    runs = []
    for i in range(args.runs):
        runs.append(rerun(i, args.overrides, work))
        print(f"run {i + 1}/{args.runs}: {runs[-1]['steps_per_s']:.3f} steps/s", file=sys.stderr, flush=True)
    result = coverage(runs)
    print(f"\ncell: {' '.join(CELL + args.overrides)}; {args.runs} reruns, each a fresh `python -m bench.run`\n")
    print("| run | steps/s | 95% CI (source) | contains the median | median step s | outlier steps |")
    print("|---|---|---|---|---|---|")
    for r in runs:
        ci = f"{r['ci95'][0]:.3f}-{r['ci95'][1]:.3f}" if r["ci95"] else "none"  # inf: unbounded above
        print(f"| {r['run'] + 1} | {r['steps_per_s']:.3f} | {ci} ({r['ci_source']}) | "
              f"{'yes' if r['covers_median'] else 'NO'} | {r['median_step_s']:.4f} | {r['outlier_steps']} |")
    lo, hi = result["coverage_ci95"]
    print(f"\ncoverage: {result['covered']}/{result['runs']} = {result['coverage']:.0%} (95% CI {lo:.0%}-{hi:.0%}) "
          f"of the runs' intervals contain the median of all runs, {result['median_steps_per_s']:.3f} steps/s "
          f"(goal about 95%)")
    if result["between_run_cv"] is not None and result["mean_rel_half_width"] is not None:
        print(f"between-run spread: CV {result['between_run_cv']:.1%}; a run's interval: +-"
              f"{result['mean_rel_half_width']:.1%} on average (a half-width well under 2 CVs means too narrow)")
    if args.json:
        for r in runs:  # strict JSON: an unbounded end as null, as in the records
            r["ci95"] = r["ci95"] and [v if math.isfinite(v) else None for v in r["ci95"]]
        args.json.write_text(json.dumps({"cell": CELL, "overrides": args.overrides, **result, "per_run": runs},
                                        indent=1))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
