#!/usr/bin/env bash
# The published comparisons measured on one GPU (issue 8), in parts that each fit a 10-minute slot.
# Run from the repository root on the GPU machine; records go to results/gpu-<gpu>/ (e.g. gpu-h100).
#
#   bash benchmarks/gpu_truth.sh 1|2|3|4|5|6 [ARCHIVE_DIR]
#     1  GPU and versions, SVD cost; the 1B cells; the 7B LoRA cell x 3 repeats
#     2  the 7B QLoRA cell x 3 repeats; harness overhead (trackers on vs off) and bench's loop vs the
#        transformers Trainer, both on the 7B LoRA cell; 7B full; full in pure bf16 at 1B and 3B; 3B cells
#     3  the GPU tests; QLoRA 70B; GaLore 7B
#     4  GaLore 8B; the amortised-refresh check at 1B (benchmarks/galore_refresh.py)
#     5  GaLore 13B
#        (GaLore's first projection is an fp32 SVD of every projected matrix, 1.1 s per 4096-wide matrix on
#        an H100: minutes per cell at 7B and up, so these cells get a slot each)
#     6  the 8B, 13B and 70B grid (full, LoRA, QLoRA); GaLore 3B (resume skips cells already recorded)
#   ARCHIVE_DIR (e.g. $OUT): where part N leaves results-N.tgz (records, logs, benchmark rows)
#
# Offline machine: bring the missing wheels (../shared/device/README.md) in .whl; they are installed into
# .site first. Every step runs under a share of BENCH_PART_SECONDS (default 540) so the archive is always
# written. The sweep settings themselves are in conf/experiment/gpu_truth.yaml.
set -uo pipefail
part=${1:?part 1 to 6}
case $part in 1|2|3|4|5|6) ;; *) echo "part must be 1 to 6, not '$part'" >&2; exit 2 ;; esac
archive=${2:-}
budget=${BENCH_PART_SECONDS:-540}
deadline=$((SECONDS + budget))
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false

if [ -d .whl ] && [ ! -d .site ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target .site .whl/*.whl .whl/*.tar.gz || exit 1
fi
export PYTHONPATH=$PWD:$PWD/.site${PYTHONPATH:+:$PYTHONPATH}
gpu=$(python3 -c "import torch; n = torch.cuda.get_device_name(); print(next((w for w in n.lower().split() if w[:1] in 'ahlbv' and any(c.isdigit() for c in w)), 'gpu'))") || exit 1
exp=gpu-$gpu
logs=results/$exp/logs
mkdir -p "$logs"

left() { echo $((deadline - SECONDS > 5 ? deadline - SECONDS : 5)); }
step() {  # step NAME COMMAND...: run under the time left, log to results/<exp>/logs/NAME.log
  local name=$1; shift
  echo "== $name ($(left) s left)"
  timeout -k 15 "$(left)" "$@" 2>&1 | tee "$logs/$name.log" | grep -E '^bench: \[|^\| |^cells:|rror' | tail -60
}
sweep() { step "$1" python3 -m bench.run -m +experiment=gpu_truth experiment_name="$exp" "${@:2}"; }
lora7b=(method=lora_all model=7b method.rank=16 train.batch_size=4 train.seq_len=512 train.precision=bf16
        train.gradient_checkpointing=true experiment_name="$exp")

case $part in
  1)
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit --format=csv | tee "$logs/gpu.csv"
    python3 - <<'EOF' | tee "$logs/versions.txt"
import torch, transformers, peft, bitsandbytes, galore_torch, time
print("torch", torch.__version__, "cuda", torch.version.cuda, "| transformers", transformers.__version__,
      "| peft", peft.__version__, "| bitsandbytes", bitsandbytes.__version__)
for shape in [(4096, 4096), (4096, 11008)]:  # what GaLore's projection refresh costs per matrix
    m = torch.randn(*shape, device="cuda")
    torch.linalg.svd(m, full_matrices=False); torch.cuda.synchronize()
    t = time.perf_counter(); torch.linalg.svd(m, full_matrices=False); torch.cuda.synchronize()
    print(f"svd fp32 {shape}: {time.perf_counter() - t:.3f} s")
EOF
    sweep grid-1b model=1b
    sweep repeats-7b-lora model=7b method=lora_all repeats=3
    ;;
  2)
    sweep repeats-7b-qlora model=7b method=qlora repeats=3
    step overhead-7b python3 benchmarks/overhead.py --methods lora_all --rounds 3 --steps 10 \
      --json "$logs/overhead-7b.json" -- "${lora7b[@]:1}"
    for loop in native trainer; do
      step "trainer-vs-native-$loop" python3 benchmarks/trainer_vs_native.py --loop $loop \
        --json "$logs/loop-$loop.json" -- "${lora7b[@]}"
    done
    python3 benchmarks/trainer_vs_native.py --table "$logs"/loop-*.json | tee "$logs/trainer-vs-native.md"
    sweep full-7b model=7b method=full
    sweep full-pure-1b-3b model=1b,3b method=full method.precision=pure
    sweep grid-3b model=3b method=full,lora_all,qlora
    ;;
  3)
    step gpu-tests python3 -m pytest -q -m gpu tests/test_gpu.py -p no:cacheprovider
    sweep qlora-70b model=70b method=qlora
    sweep galore-7b model=7b method=galore cell_timeout_s="$(( $(left) - 20 ))"
    ;;
  4)
    sweep galore-8b model=8b method=galore cell_timeout_s="$(( $(left) - 150 ))"
    step galore-refresh-1b python3 benchmarks/galore_refresh.py --model 1b --hidden 0 -- method.rank=16 \
      train.precision=bf16 train.batch_size=4 train.seq_len=512 train.gradient_checkpointing=true
    ;;
  5)
    sweep galore-13b model=13b method=galore cell_timeout_s="$(( $(left) - 20 ))"
    ;;
  6)
    sweep grid-8b-13b-70b model=8b,13b,70b method=full,lora_all,qlora
    sweep galore-3b model=3b method=galore
    ;;
esac

echo "== records in results/$exp"
python3 benchmarks/gpu_summary.py "results/$exp"
if [ -n "$archive" ]; then tar czf "$archive/results-$part.tgz" "results/$exp"; fi
