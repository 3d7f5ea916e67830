#!/usr/bin/env bash
# The CPU GLUE quality study (issue 16): MiniLM, full / LoRA / QLoRA / GaLore, three seeds each, on SST-2,
# MRPC and RTE; records in results/cpu-glue/, report in reports/cpu-glue/. About 45 minutes on a quiet
# 2-core CPU (it ran at nice -10 beside other work). Reruns skip finished cells.
#   bash benchmarks/cpu_glue.sh
# GLUE data: $BENCH_GLUE_DIR, else ../shared/data/glue (a glue_data folder).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
stamp() { echo "== $(date -u +%H:%M:%S) $*"; }
# SST-2: single sentences, length 64, batch 32, 40 steps (1,280 sentences), dev = all 872.
# task.target: the accuracy whose first crossing on the curve gives steps-to-target (QLoRA vs LoRA).
stamp "sst2"
python -m bench.run -m +experiment=cpu_glue task=sst2 task.train_limit=1280 task.max_length=64 \
  train.batch_size=32 train.steps=40 task.eval_every=10 task.target=0.75
# MRPC and RTE: sentence pairs, length 128, batch 16, 32 steps (512 pairs), dev = 408 and 277.
stamp "mrpc"
python -m bench.run -m +experiment=cpu_glue task=mrpc task.train_limit=512 task.max_length=128 \
  train.batch_size=16 train.steps=32 task.eval_every=8
stamp "rte"
python -m bench.run -m +experiment=cpu_glue task=rte task.train_limit=512 task.max_length=128 \
  train.batch_size=16 train.steps=32 task.eval_every=8
stamp "report"
python -m bench.report results/cpu-glue --out reports/cpu-glue
stamp "done"
