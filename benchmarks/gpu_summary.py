"""One line per record of a results folder: the quick look printed at the end of benchmarks/gpu_truth.sh.

    python benchmarks/gpu_summary.py results/gpu-h100
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.report.refresh import refresh_figures  # noqa: E402  (no torch)

GB = 1e9


def gb(value: float | None) -> str:
    return f"{value / GB:.2f}" if value else "-"


def line(r: dict) -> str:
    cell, setup = r.get("cell", {}), r.get("setup") or {}
    mem, timing = r.get("memory") or {}, r.get("timing") or {}
    train = (mem.get("phases") or {}).get("train", {})
    states = r.get("state_bytes") or {}
    steps = f"{timing['steps_per_s']:.3f}" if timing else "-"
    stats = (r.get("repeats") or {}).get("stats", {}).get("steps_per_s")
    if stats:
        steps += f" (n={stats['n']}, ±{stats['rel_ci95_half_width'] * 100:.1f}%)"
    refresh = refresh_figures(r)
    if refresh["steps_per_s_amortised"] is not None:
        steps += (f"; {refresh['steps_per_s_amortised']:.3f} with the {refresh['refresh_seconds']:.0f} s refresh "
                  f"every {refresh['refresh_every_steps']}")
    error = (r.get("error") or {}).get("message", "")[:70]
    return (f"| {cell.get('method')} | {cell.get('model')} | {cell.get('bits')} | {r['status']} | "
            f"{gb(mem.get('peak_bytes'))} | {gb(train.get('torch_max_reserved'))} | "
            f"{gb(train.get('torch_max_allocated'))} | {steps} | "
            f"{timing.get('tokens_per_s', 0):,.0f} | {gb(states.get('gradients'))} | {gb(states.get('optimizer'))} | "
            f"{setup.get('batch_size')}x{setup.get('seq_len')} | {r.get('wall_seconds', 0):.0f} | {error} |")


def main(folder: str) -> None:
    records = []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            print(f"warning: {path}: {exc}", file=sys.stderr)
    records.sort(key=lambda r: ((r.get("params") or {}).get("total", 0), str(r.get("cell", {}).get("method"))))
    print("| method | model | bits | status | peak GB (NVML) | torch reserved GB | torch allocated GB | steps/s | "
          "tokens/s | grads GB | optimizer GB | batch x seq | wall s | error |")
    print("|" + "---|" * 14)
    for r in records:
        print(line(r))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "results/gpu-h100")
