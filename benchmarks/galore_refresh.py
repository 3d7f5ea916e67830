"""Checks the report's amortised GaLore speed against a run that measures it directly.

A GaLore cell runs with a short update_proj_gap G and warm-up G, then K*G measured steps: the measured window
is exactly K refresh cycles, each starting with a refresh step, so K*G / (their summed time) is the speed with
the refresh amortised, measured. The report's figure is predicted from what a normal cell has: the first
(warm-up) step's refresh and the steady steps between refreshes (bench/report/refresh.py, with the measured
refreshes hidden from it). Prints both and their ratio.

    python benchmarks/galore_refresh.py [--gap 10] [--cycles 4] [--model tiny] [--hidden 1024] [-- overrides]
CPU default: a 4-layer random-init Llama of hidden size 1024 (an fp32 SVD of each 1024-wide matrix per refresh).
On a GPU: `--model 1b --hidden 0 -- method.rank=16 train.precision=bf16 train.batch_size=4 train.seq_len=512`.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report.refresh import refresh_figures  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gap", type=int, default=10)
    ap.add_argument("--cycles", type=int, default=4)
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--hidden", type=int, default=1024, help="hidden size set on the model (0: leave it as it is)")
    ap.add_argument("overrides", nargs="*")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = ([f"model.arch.hidden_size={a.hidden}", f"model.arch.intermediate_size={a.hidden * 11 // 4}",
                  "train.batch_size=2", "train.seq_len=64"] if a.hidden else [])
        cmd = [sys.executable, "-m", "bench.run", "method=galore", f"model={a.model}", *model,
               f"method.update_proj_gap={a.gap}", f"train.warmup_steps={a.gap}",
               f"train.steps={a.gap * (1 + a.cycles)}", f"results_dir={tmp}", "experiment_name=galore-refresh",
               "preflight=false", *a.overrides]
        subprocess.run(cmd, cwd=ROOT, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        record = json.loads(next(Path(tmp).rglob("*.json")).read_text())
    if record["status"] != "success":
        print(f"cell ended {record['status']}: {record.get('error')}", file=sys.stderr)
        return 1
    timing = record["timing"]
    measured = timing["step_times_s"]
    direct = len(measured) / sum(measured)  # K whole cycles, each with its refresh
    # what a normal cell would have: the refresh in the warm-up, none in the measured window
    normal = json.loads(json.dumps(record))
    steady = [t for i, t in enumerate(measured) if i % a.gap != 0]
    normal["timing"]["step_times_s"] = steady
    normal["timing"]["warmup_steps"] = 1
    normal["timing"]["warmup_step_times_s"] = timing["warmup_step_times_s"][:1]
    normal["config"]["method"]["update_proj_gap"] = 10 ** 9  # no refresh inside `steady`
    figures = refresh_figures(normal)
    step = sum(steady) / len(steady)
    refresh = figures["refresh_seconds"]
    predicted = a.gap / (a.gap * step + refresh)
    refreshes = [measured[i] - step for i in range(0, len(measured), a.gap)]
    print(f"| gap | steady step (s) | first refresh (s) | later refreshes (s) | amortised predicted | "
          f"amortised measured | predicted / measured |\n|---|---|---|---|---|---|---|\n"
          f"| {a.gap} | {step:.4f} | {refresh:.3f} | {', '.join(f'{r:.3f}' for r in refreshes)} | "
          f"{predicted:.3f} | {direct:.3f} | {predicted / direct:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
