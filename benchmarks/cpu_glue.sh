#!/usr/bin/env bash
# The CPU GLUE quality study (issue 16): MiniLM, full / LoRA / QLoRA / GaLore, three seeds each, on SST-2,
# MRPC and RTE; records in results/cpu-glue/, report in reports/cpu-glue/. Reruns skip finished cells.
#   bash benchmarks/cpu_glue.sh [sst2|mrpc|rte|qlora-pairs|report ...]   (default: all, in that order)
# Cost on a 2-core CPU: 2-4 minutes per seed and cell, run beside other work.
# GLUE data: $BENCH_GLUE_DIR, else ../shared/data/glue (a glue_data folder).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
stamp() { echo "== $(date -u +%H:%M:%S) $*"; }
run() { python -m bench.run -m +experiment=cpu_glue "$@"; }
# QLoRA with LoRA's adapters (conf/method/lora.yaml) and fp32 compute, as LoRA computes on a CPU: the
# comparison isolates the 4-bit NF4 base. (bf16 matmuls run ~17x slower than fp32 on this CPU, which has no
# AVX-512 BF16/AMX: one 2048x384x1536 linear forward+backward 3.18 s vs 0.19 s; with compute_dtype=bf16 one
# QLoRA seed here took over 30 minutes. bench.run sets OMP_WAIT_POLICY=PASSIVE: on this shared VM, spinning
# OpenMP threads made a QLoRA step ~3x slower beside one other busy process; bench/cell/env.py.)
QLORA=(method=qlora method.rank=8 method.target_modules=qv method.dropout=0.05 method.compute_dtype=fp32)
# SST-2: single sentences, length 64, batch 32, 40 steps (1,280 sentences), dev = all 872, a curve every
# 10 steps; task.target: the accuracy whose first crossing gives steps-to-target (QLoRA vs LoRA).
SST2=(task=sst2 task.train_limit=1280 task.max_length=64 train.batch_size=32 train.steps=40 task.eval_every=10
      task.target=0.75)
# MRPC and RTE: sentence pairs, length 128, batch 16, 32 steps (512 pairs), scored once at the end on the
# whole dev split (408 and 277 pairs).
PAIRS=(task.train_limit=512 task.max_length=128 train.batch_size=16 train.steps=32)
for part in "${@:-sst2 mrpc rte qlora-pairs report}"; do
  for p in $part; do
    stamp "$p"
    case $p in
      sst2) run "${SST2[@]}"; run "${SST2[@]}" "${QLORA[@]}" ;;
      mrpc|rte) run task=$p "${PAIRS[@]}" ;;
      qlora-pairs) run task=mrpc "${PAIRS[@]}" "${QLORA[@]}"; run task=rte "${PAIRS[@]}" "${QLORA[@]}" ;;
      report) python -m bench.report results/cpu-glue --out reports/cpu-glue ;;
      *) echo "unknown part $p (sst2 | mrpc | rte | qlora-pairs | report)" >&2; exit 2 ;;
    esac
  done
done
stamp "done"
