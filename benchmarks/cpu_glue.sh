#!/usr/bin/env bash
# The CPU GLUE quality study (issue 16), about two hours on a quiet 2-core CPU: records in results/cpu-glue/,
# report in reports/cpu-glue/. Reruns skip finished cells (a sweep never redoes a success record).
#   bash benchmarks/cpu_glue.sh            # learning-rate search, then SST-2, MRPC, RTE
#   bash benchmarks/cpu_glue.sh study      # the study only (conf/lr/cpu_glue.yaml already written)
# GLUE data: $BENCH_GLUE_DIR, else ../shared/data/glue (a glue_data folder).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
stamp() { echo "== $(date -u +%H:%M:%S) $*"; }
if [ "${1:-all}" != study ]; then
  stamp "learning rates (held-out SST-2)"
  python -m bench.lr_search +experiment=lr_search_cpu_glue \
    --grid full=3e-5,1e-4,3e-4 --grid galore=1e-4,3e-4,1e-3 \
    --grid lora=1e-3,3e-3,1e-2 --grid qlora=1e-3,3e-3,1e-2 --out conf/lr/cpu_glue.yaml
fi
# SST-2: single sentences, length 64, batch 32, 64 steps (2,048 sentences, one epoch), dev = 872.
# task.target: the accuracy whose first crossing on the curve gives steps-to-target (QLoRA vs LoRA).
stamp "sst2"
python -m bench.run -m +experiment=cpu_glue task=sst2 task.train_limit=2048 task.max_length=64 \
  train.batch_size=32 train.steps=64 task.eval_every=16 task.target=0.75
# MRPC and RTE: sentence pairs, length 128, batch 16, 48 steps (768 pairs), dev = 408 and 277.
stamp "mrpc"
python -m bench.run -m +experiment=cpu_glue task=mrpc task.train_limit=768 task.max_length=128 \
  train.batch_size=16 train.steps=48 task.eval_every=12
stamp "rte"
python -m bench.run -m +experiment=cpu_glue task=rte task.train_limit=768 task.max_length=128 \
  train.batch_size=16 train.steps=48 task.eval_every=12
stamp "report"
python -m bench.report results/cpu-glue --out reports/cpu-glue
stamp "done"
