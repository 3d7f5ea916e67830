"""How bench's read-side commands scale with the number of records and configurations.

Synthetic record sets of 10, 100, 1,000 and 10,000 records are made from the committed H100 records
(results/gpu-h100/): record k is a copy of committed record k mod (their number) with its own config_hash, a LoRA-family
rank from RANKS (so labels multiply as they would in a rank sweep) and its peak and step times scaled by a
seeded factor within +-6% (so the per-group medians have a spread). Each set is timed through the real
commands, each a fresh process (import time included, as a user sees it):

    python -m bench.report SET --out OUT             time, report.html / report.md / figures size
    python -m bench.compare SET SET                  time
    python -m bench.estimate --calibrate SET --json  time
and the estimator alone for 10 / 100 / 1,000 configurations (a sweep of batch x seq_len x rank on LoRA 1B)
and `--blog`. Goals on a 2-core machine (issue 20): report of 1,000 records <= 5 s with HTML <= 2 MB;
1,000 estimates <= 10 s; --blog <= 5 s; time growing no faster than linearly (the log-log slope column:
d log(time) / d log(n) between neighbouring sizes; <= 1 is linear or better).

    python benchmarks/scale.py [--sizes 10,100,1000,10000] [--configs 10,100,1000] [--max-report N] [--json out.json]

--max-report N skips the report (only) for sets larger than N: on a busy 2-core machine the 10,000-record report
alone can take many minutes; compare and calibrate still run at every size.

Timings depend on the machine's load; the script prints the load average beside them.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "results" / "gpu-h100"
RANKS = (4, 8, 16, 32, 64, 128)
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}


def _scale_times(timing: dict, factor: float) -> None:
    for key in ("step_times_s", "warmup_step_times_s"):
        if isinstance(timing.get(key), list):
            timing[key] = [t * factor if isinstance(t, (int, float)) else t for t in timing[key]]
    for key in ("steps_per_s", "samples_per_s", "tokens_per_s"):
        if isinstance(timing.get(key), (int, float)):
            timing[key] = timing[key] / factor


def synthesize(n: int, out_dir: Path, source: Path = SOURCE, seed: int = 0) -> list[Path]:
    """Write n records made from the committed ones into out_dir (see the module docstring); their paths."""
    bases = [json.loads(p.read_text()) for p in sorted(source.glob("*.json"))]
    if not bases:
        raise SystemExit(f"scale.py: error: {source}: no records")
    rng = random.Random(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n):
        rec = json.loads(json.dumps(bases[k % len(bases)]))
        copy = k // len(bases)
        rec["config_hash"] = f"{k:08x}" + str(rec.get("config_hash", ""))[8:]
        if rec["cell"].get("rank") is not None:
            rank = RANKS[copy % len(RANKS)]
            rec["cell"]["rank"] = rank
            if isinstance(rec.get("config", {}).get("method"), dict):
                rec["config"]["method"]["rank"] = rank
        factor = 1 + rng.uniform(-0.06, 0.06)
        memory = rec.get("memory") or {}
        if isinstance(memory.get("peak_bytes"), (int, float)):
            memory["peak_bytes"] = int(memory["peak_bytes"] * factor)
        if isinstance(rec.get("timing"), dict):
            _scale_times(rec["timing"], 1 + rng.uniform(-0.06, 0.06))
        path = out_dir / f"{rec['cell']['method']}-{rec['cell']['model']}-{k:05d}.json"
        path.write_text(json.dumps(rec))
        paths.append(path)
    return paths


CPU_S: dict[str, float] = {}  # the last command's CPU seconds (user + system), by its first arguments


def timed(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds of one command (its exit status beside); its CPU seconds go to CPU_S[' '.join(cmd[2:4])]:
    on a loaded machine the wall time is mostly waiting for a core, the CPU time is the command's own cost."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU_S[" ".join(cmd[2:4])] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode not in (0, 1):  # bench.compare exits 1 on a regression; that is still a result
        print(f"  ! {' '.join(cmd[2:4])}: exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}")
    return elapsed, proc.returncode


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def estimate_sweep(n: int) -> list[str]:
    """Overrides that make n configurations of LoRA on llama3.2-1b (batch x seq_len x rank)."""
    batches = [str(b) for b in range(1, 11)]
    seqs = [str(128 * s) for s in range(1, 11)]
    ranks = [str(r) for r in (2, 4, 8, 12, 16, 24, 32, 48, 64, 96)]
    axes = [batches[:min(n, 10)]]
    if n >= 100:
        axes.append(seqs[:min(n // 10, 10)])
    if n >= 1000:
        axes.append(ranks[:min(n // 100, 10)])
    keys = ("train.batch_size", "train.seq_len", "method.rank")
    return ["method=lora", "model=llama3.2-1b", "gpu=h100"] + [f"{k}={','.join(v)}" for k, v in zip(keys, axes)]


def measure(row: dict, name: str, cmd: list[str]) -> None:
    row[f"{name}_s"], _ = timed(cmd)
    row[f"{name}_cpu_s"] = CPU_S[" ".join(cmd[2:4])]


def slope(rows: list[dict], key: str) -> None:
    """Fill row['slope_'+key]: d log(key) / d log(n) from the previous row (None on the first)."""
    for prev, row in zip([None] + rows[:-1], rows):
        ok = prev and prev.get(key) and row.get(key) and row["n"] != prev["n"]
        row[f"slope_{key}"] = (math.log(row[key] / prev[key]) / math.log(row["n"] / prev["n"])) if ok else None


def cell(row: dict, name: str) -> str:
    """'wall (CPU) slope' of one measurement, slope on the CPU seconds."""
    if row.get(f"{name}_s") is None:
        return " | "
    slope_ = row.get(f"slope_{name}_cpu_s")
    return f"{row[f'{name}_s']:.2f} ({row[f'{name}_cpu_s']:.2f}) | {'' if slope_ is None else f'{slope_:+.2f}'}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000,10000")
    parser.add_argument("--configs", default="10,100,1000")
    parser.add_argument("--skip", default="", help="comma list of report,compare,calibrate,estimate,blog")
    parser.add_argument("--max-report", type=int, default=0, help="no report for sets larger than this (0: all)")
    parser.add_argument("--json", help="write the measurements here")
    args = parser.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    py = sys.executable
    print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)", flush=True)
    records, estimates, blog = [], [], {}
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        for n in [int(s) for s in args.sizes.split(",") if s]:
            data, out = Path(tmp) / f"set-{n}", Path(tmp) / f"report-{n}"
            synthesize(n, data)
            row: dict = {"n": n}
            if "report" not in skip and not (args.max_report and n > args.max_report):
                measure(row, "report", [py, "-m", "bench.report", str(data), "--out", str(out)])
                if (out / "report.html").exists():
                    row["html_bytes"] = (out / "report.html").stat().st_size
                    row["md_bytes"] = (out / "report.md").stat().st_size
                    row["figures_bytes"] = folder_bytes(out / "figures")
            if "compare" not in skip:
                measure(row, "compare", [py, "-m", "bench.compare", str(data), str(data)])
            if "calibrate" not in skip:
                measure(row, "calibrate", [py, "-m", "bench.estimate", "--calibrate", str(data), "--json",
                                           str(Path(tmp) / f"calibrate-{n}.json")])
            records.append(row)
            print(f"  {n} records: {row}  (load {os.getloadavg()[0]:.2f})", flush=True)
        if "estimate" not in skip:
            for n in [int(s) for s in args.configs.split(",") if s]:
                dest, row = Path(tmp) / f"estimate-{n}.json", {"n": n}
                measure(row, "estimate", [py, "-m", "bench.estimate", *estimate_sweep(n), "--json", str(dest)])
                row["rows"] = len(json.loads(dest.read_text())) if dest.exists() else None
                estimates.append(row)
                print(f"  {n} configurations: {row}  (load {os.getloadavg()[0]:.2f})", flush=True)
        if "blog" not in skip:
            measure(blog, "blog", [py, "-m", "bench.estimate", "--blog"])
    for key in ("report_cpu_s", "html_bytes", "compare_cpu_s", "calibrate_cpu_s"):
        slope(records, key)
    slope(estimates, "estimate_cpu_s")
    mb = lambda v, d: "" if v is None else f"{v / d:,.2f}"  # noqa: E731
    print("\nseconds: wall (CPU, user + system); slope: d log(CPU s) / d log(records), <= 1 is linear or better")
    print("\n| records | report s | slope | report.html MB | slope | report.md KB | figures KB | compare s | slope "
          "| calibrate s | slope |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in records:
        html_slope = r.get("slope_html_bytes")
        print(f"| {r['n']:,} | {cell(r, 'report')} | {mb(r.get('html_bytes'), 1e6)} | "
              f"{'' if html_slope is None else f'{html_slope:+.2f}'} | {mb(r.get('md_bytes'), 1e3)} "
              f"| {mb(r.get('figures_bytes'), 1e3)} | {cell(r, 'compare')} | {cell(r, 'calibrate')} |")
    if estimates:
        print("\n| configurations | estimate s | slope |\n|---:|---:|---:|")
        for e in estimates:
            print(f"| {e['n']:,} ({e['rows']} rows) | {cell(e, 'estimate')} |")
    if blog:
        print(f"\n--blog: {blog['blog_s']:.2f} s wall ({blog['blog_cpu_s']:.2f} s CPU)")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"records": records, "estimates": estimates, "blog": blog}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
