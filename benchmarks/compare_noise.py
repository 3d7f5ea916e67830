"""Does the regression gate cry wolf? Reruns one tiny cell N times, each as a separate experiment in a fresh
`python -m bench.run`, compares each rerun against the committed baseline with `python -m bench.compare`
(default tolerances, as CI would), and prints the spread of every metric relative to the baseline (min,
max, stdev) and the number of false alarms (reruns the gate calls a regression: nothing changed, so every
one is false), beside what the tolerance alone and the tolerance with each side's own interval (no repeats'
band) would have flagged, and how often a rerun's own 95% interval holds the baseline's mean. On a shared
CPU the timing noise is part of what this measures.

    python benchmarks/compare_noise.py [--runs 10] [--method lora] [--repeats 1] [--baseline DIR]
                                       [--json out.json] [-- bench.run overrides]

The cell is `+experiment=ci_cpu method=<method>`, so it matches the baseline under
results/baselines/<this machine's hardware id>/ (made with `python -m bench.run -m +experiment=ci_cpu`).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.compare.load import hardware_id, load_side, match_key  # noqa: E402
from bench.compare.verdict import DEFAULT_TOLERANCE, METRICS, Measure, judge, measure  # noqa: E402


def rerun(index: int, args: argparse.Namespace, work: Path, env: dict[str, str]) -> Path:
    name = f"noise-{index:02d}"
    cmd = [sys.executable, "-m", "bench.run", "+experiment=ci_cpu", f"method={args.method}",
           f"repeats={args.repeats}", f"experiment_name={name}", f"results_dir={work}", *args.overrides]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"run {index} failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
    return work / name


def gate(baseline: Path, candidate: Path, env: dict[str, str]) -> tuple[int, str]:
    proc = subprocess.run([sys.executable, "-m", "bench.compare", str(baseline), str(candidate),
                           "--summary", os.devnull], cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode == 2:
        sys.exit(f"bench.compare refused: {proc.stderr.strip()}")
    return proc.returncode, proc.stdout


def spread(values: list[float], relative: bool = True) -> str:
    """min / max / stdev of the reruns' changes from the baseline: percent, or points for quality."""
    if not values:
        return "n/a"
    scale, unit = (100, "%") if relative else (1, " pt")
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"min {scale * min(values):+.1f}{unit}  max {scale * max(values):+.1f}{unit}  stdev {scale * sd:.1f}{unit}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--method", default="lora")
    p.add_argument("--repeats", type=int, default=1, help="repeats per rerun (ci_cpu uses 3)")
    p.add_argument("--baseline", help="default: results/baselines/<this machine's hardware id>")
    p.add_argument("--json", help="write every number here")
    p.add_argument("overrides", nargs="*")
    args = p.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "GITHUB_STEP_SUMMARY"}
    env["HF_HUB_OFFLINE"] = "1"
    work = Path(tempfile.mkdtemp(prefix="compare-noise-"))
    rows, started = [], time.perf_counter()
    print(f"{args.runs} reruns of ci_cpu method={args.method} (repeats={args.repeats}) under {work}")
    base_cells = None
    for i in range(1, args.runs + 1):
        t0 = time.perf_counter()
        folder = rerun(i, args, work, env)
        (record,) = load_side(folder)
        if base_cells is None:
            baseline = Path(args.baseline or ROOT / "results" / "baselines" / hardware_id(record))
            base_cells = {match_key(r): r for r in load_side(baseline)}
        base = base_cells.get(match_key(record))
        if base is None:
            sys.exit(f"{baseline}: no baseline record for this cell")
        code, _ = gate(baseline, folder, env)
        row = {"run": i, "exit": code, "seconds": round(time.perf_counter() - t0, 1)}
        for metric in METRICS:
            b, c = measure(base, metric), measure(record, metric)
            if b is not None and c is not None:
                row[metric.name] = c.value
                row[f"{metric.name}_rel"] = c.value / b.value - 1 if metric.relative else c.value - b.value
                row[f"{metric.name}_limit"] = judge(metric, b, c, DEFAULT_TOLERANCE[metric.name]).threshold
                # the same comparison with the tolerance alone (no repeats, no noise band)
                bare = judge(metric, Measure(b.value), Measure(c.value), DEFAULT_TOLERANCE[metric.name])
                row[f"{metric.name}_tolerance_only"] = bare.verdict
                # tolerance + each side's own interval, no band: what a within-run interval alone would flag
                own = judge(metric, Measure(b.value, None, 1, b.lo, b.hi), Measure(c.value, None, 1, c.lo, c.hi),
                            DEFAULT_TOLERANCE[metric.name])
                row[f"{metric.name}_intervals_no_band"] = own.verdict
                row[f"{metric.name}_ci"] = [c.lo, c.hi]
                row[f"{metric.name}_ci_covers_baseline"] = (c.lo is not None and c.hi is not None
                                                             and c.lo <= b.value <= c.hi)
        rows.append(row)
        print(f"  run {i:2d}: steps/s {row.get('steps_per_s', 0):.3f} ({100 * row.get('steps_per_s_rel', 0):+.1f}%), "
              f"peak {row.get('peak_bytes', 0) / 1e9:.3f} GB ({100 * row.get('peak_bytes_rel', 0):+.1f}%), "
              f"gate exit {code} ({row['seconds']} s)", flush=True)
    alarms = sum(r["exit"] == 1 for r in rows)
    base_stats = (base.get("repeats") or {}).get("stats") or {}
    print(f"\nbaseline: {baseline} (repeats {(base.get('repeats') or {}).get('n', 1)})")
    for metric in METRICS:
        rel = [r[f"{metric.name}_rel"] for r in rows if f"{metric.name}_rel" in r]
        if rel:
            own = base_stats.get(metric.name, {}).get("rel_ci95_half_width")
            own_text = f"; baseline's own 95% CI ±{100 * own:.1f}%" if own is not None else ""
            limits = [r[f"{metric.name}_limit"] for r in rows if f"{metric.name}_limit" in r]
            unit = "%" if metric.relative else " pt"
            scale = 100 if metric.relative else 1
            print(f"{metric.label:>12} vs baseline: {spread(rel, metric.relative)}{own_text}; tolerance "
                  f"±{scale * DEFAULT_TOLERANCE[metric.name]:.1f}{unit}, limit applied ±{scale * min(limits):.1f}"
                  f"..{scale * max(limits):.1f}{unit}")
    bare = sum(any(r.get(f"{m.name}_tolerance_only") == "regressed" for m in METRICS) for r in rows)
    no_band = sum(any(r.get(f"{m.name}_intervals_no_band") == "regressed" for m in METRICS) for r in rows)
    covered = [r["steps_per_s_ci_covers_baseline"] for r in rows if "steps_per_s_ci_covers_baseline" in r]
    print(f"false alarms: {alarms} of {len(rows)} (default tolerances); with the tolerance alone (no noise band) "
          f"{bare} of {len(rows)}; with the tolerance and each side's own interval but no band {no_band} of "
          f"{len(rows)}; {time.perf_counter() - started:.0f} s in all")
    if covered:
        print(f"reruns whose own 95% interval of steps/s holds the baseline's mean: {sum(covered)} of {len(covered)} "
              "(far below 95% = run-to-run drift the within-run interval cannot see)")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": rows, "false_alarms": alarms, "baseline": str(baseline),
                                               "false_alarms_intervals_no_band": no_band,
                                               "method": args.method, "repeats": args.repeats}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
