#!/usr/bin/env bash
# The speed-lever ablation on the CPU (issue 17, docs/levers.md): LoRA and QLoRA on tiny, rows eager -> sdpa
# -> packing -> checkpointing -> 8-bit AdamW (conf/experiment/levers.yaml); records in results/levers-cpu/,
# report in reports/levers-cpu/. Reruns skip finished cells; arguments go to bench.run (force=true remeasures).
#   bash benchmarks/levers_cpu.sh [force=true]
# Measure it on a quiet machine: the rows differ by tens of percent, and other work on 2 cores is as large.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
stamp() { echo "== $(date -u +%H:%M:%S) $*"; }
stamp "lora"
python -m bench.run -m +experiment=levers method=lora "$@"
# QLoRA's default turns checkpointing on; the checkpointing row measures it, so the baseline turns it off.
# fp32 compute, as LoRA computes on a CPU: bf16 matmuls run ~17x slower on a CPU without AVX-512-BF16/AMX
# (benchmarks/cpu_glue.sh), which would swamp every lever (a row took ~6 minutes instead of ~1.5).
stamp "qlora"
python -m bench.run -m +experiment=levers method=qlora method.gradient_checkpointing=false method.compute_dtype=fp32 "$@"
stamp "report"
python -m bench.report results/levers-cpu --out reports/levers-cpu
stamp "done"
