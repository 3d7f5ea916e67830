#!/usr/bin/env bash
# Quality acceptance on CPU: all-MiniLM-L6-v2 on SST-2 (dev: all 872 sentences), the four methods.
# Records go to results/cpu-quality-sst2/. Wall time of each command is printed after it.
# GLUE data: $BENCH_GLUE_DIR, else ../shared/data/glue.
set -uo pipefail
cd "$(dirname "$0")/.."
GLUE=${BENCH_GLUE_DIR:-../shared/data/glue}
COMMON=(model=minilm task=sst2 task.data_dir=$GLUE task.max_length=64 train.batch_size=32 train.warmup_steps=5
        task.target=0.83 experiment_name=cpu-quality-sst2)
run() { local t0=$SECONDS; HF_HUB_OFFLINE=1 python -m bench.run "${COMMON[@]}" "$@" 2>&1 | grep '^bench:'; echo "wall: $((SECONDS - t0)) s  ($*)"; }
[ "${1:-all}" = rest ] || {
run method=full   method.lr=1e-4 task.train_limit=4000 train.steps=125 task.eval_every=25
run method=galore method.lr=1e-4 task.train_limit=4000 train.steps=125 task.eval_every=25
}
run method=qlora  method.lr=1e-3 method.rank=8 method.target_modules=qv task.train_limit=4000 train.steps=125 task.eval_every=25
# LoRA: one epoch of 8,000 (250 steps, kept: lora-...-a9b48e95b1.json) reached 0.826; two epochs:
run method=lora   method.lr=1e-3 task.train_limit=8000 train.steps=500 task.eval_every=100
