"""The time preflight: how long a cell would train on this device, from its FLOPs per step and this device's
throughput, so a cell that would take hours (QLoRA 13B on a 2-core CPU) is skipped before it loads anything.

    predicted = load + train.steps x hardware FLOPs per step x (share / k-bit rate + (1 - share) / rate)
    load      = quantised values / (quantise rate x 3) (random-init 4-/8-bit base on CPU; else 0: not modelled)

- hardware FLOPs per step: bench.estimate.flops (grad_accum micro-batches included); train.steps counts the
  warm-up steps, which do the same work.
- rate on a CPU: an F.linear probe here, now, in the cell's compute dtype (or autocast's), x CPU_FRACTION.
  On a GPU of the conf/gpu/ catalog: its dense 16-bit peak x GPU_FRACTION. Other GPUs, and fp32 on a GPU
  (the catalog has no fp32 rate): no prediction, no check.
- a 4-/8-bit base on CPU: `share` = quantised weights / matmul weights per token (0.99 for 13B, 0.75 for
  tiny, whose LM head stays fp32); that share runs at the rate of one bitsandbytes layer made as loading
  makes it (bench.cell.models.quantized_linear) and timed forward + backward (dequantisation included), the
  rest at the fp32 rate. The same layer's making gives the quantise rate.
Both fractions are the best seen, not the typical: the prediction is near a lower bound, and a cell is
skipped only when even that exceeds max_cell_minutes. Probes are cached per process.
"""
from __future__ import annotations

import functools
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from bench.config import RunConfig

PROBE_S = 0.2  # per dtype, then the matmul running finishes: ~0.3-0.7 s for fp32 here (n 256..2048)
MAX_N = 2048
GROW_LIMIT_S = 1.0
# Achieved hardware FLOP/s in training / this probe's, on this 2-vCPU AMD EPYC (AVX2, shared: load 2.4-3.7),
# from `python -m bench.run method=M [model.arch.* overrides] results_dir=/tmp/calib`, flops.hardware_flops
# x timing.steps_per_s / preflight.time.probe_flops_per_s (probe 39-51 GFLOP/s fp32):
#   tiny lora 0.22 (train 18.2 s measured, 2.4 s at fraction 1), 1024-wide x 4 layers full 0.41 (98.0 s vs
#   39.6 s) and lora 1.45 (23.6 s vs 27.0 s: the load eased after the probe), 2048-wide x 2 layers lora
#   0.65 (69.1 s vs 45.0 s); tiny qlora on the 4-bit layer probe (1.2 GFLOP/s) 0.79 (59.3 s vs 45.7 s).
#   At load 5-7 (an earlier probe) 0.15-0.82, and 1.49 once.
# 1.5 covers the highest seen: the prediction is a near lower bound (1.2-11x under these cells' times).
CPU_FRACTION = 1.5
# The probe's 1024 x 512 weight quantises slower per value than a real base's (per-call overhead): here
# 1024x512 2.8-3.4 M values/s, 2048x2048 6.6-8.1, 5504x2048 8.5, and a 2048-wide x 4 layer qlora cell made
# its 202M values in 17 s (11.9 M/s) where the probe said 5.0 (predicted 40 s). x3 covers that.
QUANT_FRACTION = 3.0
# results/gpu-h100 (one H100 SXM, bf16, batch 4 x 512, 16 successful cells): hardware FLOPs x steps/s /
# 989 TFLOP/s = 0.05 (QLoRA 1B) .. 0.24 (LoRA 13B); 0.25 is the best seen, rounded up.
GPU_FRACTION = 0.25
# The k-bit layer probe: 1024 x 512 (0.5M values), 128 tokens, best of two: ~0.5 s. At ~12M values/s a 13B
# 4-bit base takes ~18 min to make on this CPU.
KBIT_SHAPE, KBIT_TOKENS = (1024, 512), 128


@functools.lru_cache(maxsize=None)
def matmul_flops_per_s(device: str = "cpu", dtype: str = "float32", budget_s: float = PROBE_S) -> float:
    """The best FLOP/s of F.linear on `device` in `dtype` within ~budget_s (plus the one running); cached per
    process (the cell's own threads, so a shared machine's load is in it, as it will be in training)."""
    import torch

    dt = getattr(torch, dtype)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    gen = torch.Generator(device=device).manual_seed(0)  # leaves the global RNG (the cell's seed) alone
    best, n, start = 0.0, 256, time.perf_counter()
    while True:
        # F.linear((n/2 x n), (n x n)), n^3 FLOPs: an nn.Linear on 512 tokens at n = 2048. As nn.Linear, x @ W.T:
        # bf16 on this AVX2 CPU takes another kernel for it, 2-9x faster than x @ W with W (in, out) row-major
        # (512x1024x1024: 8.6 vs 1.0 GFLOP/s).
        a = torch.randn(n // 2, n, dtype=dt, device=device, generator=gen)
        w = torch.randn(n, n, dtype=dt, device=device, generator=gen)
        sync()
        t = time.perf_counter()
        torch.nn.functional.linear(a, w)
        sync()
        took = max(time.perf_counter() - t, 1e-9)
        best = max(best, n ** 3 / took)
        if time.perf_counter() - start > budget_s:
            return best
        # Bigger matmuls run nearer the peak, and training's are big: here fp32 1024^3 ran at 31.6 GFLOP/s,
        # 512x2048x2048 at 43.4, 2048^3 at 54.3 (best of 3, load ~4 on the 2 vCPUs). So grow to 2048 unless
        # the next (8x the work) would take over GROW_LIMIT_S. Not on the budget alone: with the cores shared
        # a 2-thread matmul has a ~30 ms floor (a thread descheduled at the barrier): 256 -> 30 ms, 512 ->
        # 30 ms, while 1 thread did 256 in 1 ms.
        if 8 * took < GROW_LIMIT_S and n < MAX_N:
            n *= 2


_kbit_cache: dict[tuple[Any, ...], tuple[float, float]] = {}


def kbit_rates(cfg: RunConfig, device: str) -> tuple[float, float]:
    """(values/s that bench.cell.models.quantized_linear makes and quantises, FLOP/s of that layer forward +
    backward to its input), best of two; cached per process and quantisation setting."""
    import torch

    from bench.cell import models

    m = cfg.method
    key = (device, m.base_bits, m.quant_type, m.double_quant, m.compute_dtype)
    if key not in _kbit_cache:
        out_f, in_f = KBIT_SHAPE
        with torch.device("meta"):
            child = torch.nn.Linear(in_f, out_f, bias=False, dtype=models.DTYPES[m.compute_dtype])
        state = torch.random.get_rng_state()  # random_tensor draws from the global RNG: put it back
        make, run = [], []
        x = torch.zeros(KBIT_TOKENS, in_f, device=device, requires_grad=True)  # fp32 hidden states, as kbit prep
        for _ in range(2):
            t = time.perf_counter()
            layer = models.quantized_linear(child, cfg, device, 0.02)
            make.append(time.perf_counter() - t)
            t = time.perf_counter()
            layer(x).float().sum().backward()
            run.append(time.perf_counter() - t)
        torch.random.set_rng_state(state)
        _kbit_cache[key] = (out_f * in_f / min(make), 4 * KBIT_TOKENS * in_f * out_f / min(run))
    return _kbit_cache[key]


def device_rate(device: str, dtype: str) -> tuple[float | None, float | None, float | None, str]:
    """(FLOP/s training is assumed to reach, the raw figure, the fraction, where it comes from)."""
    if device == "cpu":
        probe = matmul_flops_per_s("cpu", dtype)
        return probe * CPU_FRACTION, probe, CPU_FRACTION, "cpu matmul probe"
    import torch

    from bench.estimate import gpus

    name = torch.cuda.get_device_name()
    gpu = gpus.for_device(name, gpus.load_catalog().values())
    peak = gpu.peak_tflops(2 if dtype in ("bfloat16", "float16") else 4) if gpu else None
    if not peak:
        return None, None, None, f"none: {name} {dtype} has no catalog peak"
    return peak * 1e12 * GPU_FRACTION, peak * 1e12, GPU_FRACTION, f"catalog peak x fraction ({gpu.name})"


def human(seconds: float) -> str:
    if seconds < 120:
        return f"~{seconds:.0f} s"
    return f"~{seconds / 60:.0f} min" if seconds < 7200 else f"~{seconds / 3600:.1f} h"


def predict_time(cfg: RunConfig, flops: dict[str, Any], quantised_values: int, device: str, dtype: str) -> dict[str, Any]:
    """The record's preflight["time"]; `reason` is set (and too_slow true) when it exceeds max_cell_minutes.
    `dtype`: what the cell's unquantised matmuls compute in (autocast's dtype, else the compute dtype)."""
    rate, raw, fraction, source = device_rate(device, dtype)
    limit, steps, hw = cfg.max_cell_minutes, cfg.train.steps, flops["hardware_flops"]
    out: dict[str, Any] = {"predicted_seconds": None, "train_seconds": None, "load_seconds": None, "steps": steps,
                           "flops_per_step": hw, "device_flops_per_s": rate, "probe_flops_per_s": raw,
                           "fraction": fraction, "dtype": dtype, "source": source, "limit_minutes": limit,
                           "too_slow": False, "reason": None}
    if rate is None or raw is None or fraction is None:
        return out
    step_s, load_s, figure = hw / rate, 0.0, f"{raw / 1e9:.1f} GFLOP/s {dtype}"
    if cfg.method.base_bits < 16 and device == "cpu":
        make, kbit = kbit_rates(cfg, device)
        share = min(1.0, quantised_values / max(flops["matmul_params_per_token"], 1))
        step_s = hw * (share / (kbit * fraction) + (1 - share) / rate)
        load_s = 0.0 if cfg.model.pretrained else quantised_values / (make * QUANT_FRACTION)
        out.update(kbit_layer_flops_per_s=kbit, kbit_share=share, quantise_values_per_s=make)
        figure = f"{kbit / 1e9:.1f} GFLOP/s through a {cfg.method.base_bits}-bit layer, {figure}"
    train_s = steps * step_s
    t = cfg.train
    if t.until_ci:  # the measured window may run on, up to its caps (bench.cell.step_loop.measure_until_ci)
        extra = [c for c in (t.max_measure_s, t.max_measure_steps * step_s) if c]
        train_s += min(extra) if extra else 0.0
    out.update(train_seconds=train_s, load_seconds=load_s, predicted_seconds=train_s + load_s)
    if limit and out["predicted_seconds"] > limit * 60:
        where = "this CPU" if device == "cpu" else source.split("(")[-1].rstrip(")")
        if device != "cpu":
            figure = f"peak {raw / 1e12:.0f} TFLOP/s"
        out.update(too_slow=True, reason=(
            f"too slow here: {human(out['predicted_seconds'])} for {steps} steps on {where} (probe: {figure}; "
            f"x{fraction:g} assumed reached) > max_cell_minutes={limit:g}; run it on a GPU or raise "
            f"max_cell_minutes"))
    return out


def matmul_dtype(cfg: RunConfig, compute: torch.dtype, autocast: torch.dtype | None) -> str:
    """The dtype the cell's unquantised matmuls run in: autocast's, else the compute dtype."""
    return str(autocast or compute).removeprefix("torch.")
