"""Peak memory of one cell: the components, and when they coexist.

A training step has two candidate peaks (the larger one is the prediction):
  forward/backward   weights + optimizer states + autocast's 16-bit weight copies (mixed precision) + the
                     gradients already present (all of them when accumulating, else the LM head's, made
                     first in backward) + activations at their peak, the larger of: every saved tensor plus
                     the loss's logit gradients (8 V bytes per token, log-softmax gradient in and out), and
                     everything but the head plus one layer's gradient buffers. With checkpointing: the
                     layer inputs plus the larger of (head + logit gradients) and (one recomputed layer +
                     its gradient buffers), which happen at different times
  optimizer step     weights + optimizer states + all gradients + the step's largest temporary
Layer-wise GaLore steps inside backward, so only one gradient and one step temporary exist at a time.
Runtime, added on top:
  CUDA   the context (NVML process memory beyond torch's reserved: CUDA context, kernels loaded, cuBLAS) per
         optimizer library, and the caching allocator's reserved-but-unallocated bytes per training regime
         plus a share of the largest dequantised weight for a 4/8-bit base: CUDA_FIT, fitted on the committed
         H100 records by bench.estimate.cuda_fit (docs/estimator.md). bitsandbytes' paged optimizer states sit
         in CUDA managed memory, which neither torch nor NVML's per-process figure counts: their own component
         (`Peak.managed`), outside the peak
  CPU    RSS growth measured on a 1-layer, 8-token cell of each method (libraries and kernels first
         touched, imports made while loading) + glibc's retention: under its dynamic mmap threshold, freed
         tensors under 32 MiB stay in the heap; a per-method share of the tensors under that size, fitted on
         `tiny` (README beside this file). Zero when the threshold is fixed (MALLOC_MMAP_THRESHOLD_).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.methods.interface import Terms

# `python -m bench.estimate.cuda_fit results/gpu-h100` prints this dict; tests/test_calibrate.py checks it is the refit
CUDA_FIT: dict[str, Any] = {
    "source": "results/gpu-h100: 16 CUDA records (H100 80GB, bf16, batch 4 x 512 tokens, checkpointing)",
    "context_bytes": {"bitsandbytes": 778043392, "galore-torch": 897581056, "torch": 794820608},
    "allocator_bytes": {"adapters": 1041516134, "full 16-bit": 3300947456, "full mixed": 951697920,
                        "galore": 2345723392, "quantized base": 138755499},
    "allocator_per_dequantized_byte": 9.2927,
}
# CPU: each method's Terms carry its measured RSS growth of a 1-layer h=64, 8-token cell (torch 2.13 CPU build,
# glibc) and its extra RSS per byte of sub-32-MiB tensors at the peak under glibc's default malloc (mean of two
# b4 s128 runs of `tiny`; README.md). glibc never keeps larger blocks: its mmap threshold stops at 32 MiB.
GLIBC_MMAP_THRESHOLD_MAX = 32 * 1024**2


@dataclass
class PeakInputs:
    weights: int
    optimizer_states: int  # states + GaLore projectors
    optimizer_temporary: int
    gradients: int
    largest_gradient: int
    head_gradient: int
    activations: int  # saved for backward plus the transients of the moment backward peaks (predict.py)
    cast_copies: int
    grad_accum: int = 1
    layerwise: bool = False


@dataclass
class Peak:
    tensors: int
    phase: str
    at_peak: dict[str, int] = field(default_factory=dict)  # components present at the predicted peak
    runtime: dict[str, int] = field(default_factory=dict)
    managed: dict[str, int] = field(default_factory=dict)  # on the GPU but outside torch and NVML's process peak

    @property
    def total(self) -> int:
        return self.tensors + sum(self.runtime.values())


def tensor_peak(p: PeakInputs) -> Peak:
    persistent = {"weights": p.weights, "optimizer": p.optimizer_states}
    if p.layerwise:
        grads_live, step_temp = p.largest_gradient, p.optimizer_temporary
    else:
        grads_live = p.gradients if p.grad_accum > 1 else p.head_gradient
        step_temp = 0
    fwd = {**persistent, "gradients": grads_live, "cast_copies": p.cast_copies,
           "activations": p.activations + step_temp}
    phases = {"forward_backward": fwd}
    if not p.layerwise:
        phases["optimizer_step"] = {"weights": p.weights, "optimizer": p.optimizer_states + p.optimizer_temporary,
                                    "gradients": p.gradients, "cast_copies": 0, "activations": 0}
    phase, parts = max(phases.items(), key=lambda kv: sum(kv[1].values()))
    return Peak(tensors=int(sum(parts.values())), phase=phase, at_peak={k: int(v) for k, v in parts.items()})


def context_key(terms: Terms, optimizer: str) -> str:
    """What the records show drives NVML - reserved: the optimizer's library (kernels loaded; GaLore's SVD)."""
    if terms.optimizer_library == "galore-torch":
        return "galore-torch"
    return "bitsandbytes" if optimizer in ("adamw8bit", "paged_adamw", "paged_adamw8bit") else "torch"


def allocator_key(terms: Terms, base_bits: int) -> str:
    """The training regime the caching allocator's slack follows in the records."""
    if base_bits < 16:
        return "quantized base"
    if terms.optimizer_library == "galore-torch":
        return "galore"
    if terms.trains_base:
        return "full mixed" if terms.fp32_master else "full 16-bit"
    return "adapters"


def cuda_runtime(context: str, allocator: str, dequantized_bytes: int, fit: dict[str, Any] | None = None
                 ) -> dict[str, int]:
    """{cuda_context, allocator_slack} from a fit (CUDA_FIT unless given); a key the fit lacks raises KeyError."""
    fit = CUDA_FIT if fit is None else fit
    slack = fit["allocator_bytes"][allocator] + fit["allocator_per_dequantized_byte"] * dequantized_bytes
    return {"cuda_context": int(fit["context_bytes"][context]), "allocator_slack": int(max(0.0, slack))}


def add_runtime(peak: Peak, device: str, terms: Terms, small_tensor_bytes: int = 0, *, optimizer: str = "adamw",
                base_bits: int = 16, dequantized_bytes: int = 0, paged_bytes: int = 0) -> Peak:
    """`small_tensor_bytes`: the part of the tensor peak held in tensors under glibc's largest mmap threshold;
    `dequantized_bytes`: the largest quantised weight at its 16-bit compute size; `paged_bytes`: optimizer
    states in CUDA managed memory (already left out of the tensor peak)."""
    if device == "cuda":
        peak.runtime = cuda_runtime(context_key(terms, optimizer), allocator_key(terms, base_bits), dequantized_bytes)
        peak.managed = {"paged_optimizer_states": paged_bytes} if paged_bytes else {}
    else:
        peak.runtime = {"process_runtime": terms.cpu_runtime_bytes,
                        "allocator_retention": int(small_tensor_bytes * terms.cpu_retention)}
    return peak


def small_tensor_bytes(peak: Peak, row_bytes: list[int], largest_activation: int) -> int:
    """The share of the peak in tensors under GLIBC_MMAP_THRESHOLD_MAX: parameter-shaped components (weights,
    gradients, optimizer) pro rata the parameters under that size; activations if their largest tensor is."""
    small = sum(b for b in row_bytes if b < GLIBC_MMAP_THRESHOLD_MAX)
    share = small / sum(row_bytes) if row_bytes else 0.0
    at = peak.at_peak
    params = at.get("weights", 0) + at.get("gradients", 0) + at.get("optimizer", 0) + at.get("cast_copies", 0)
    acts = at.get("activations", 0) if largest_activation < GLIBC_MMAP_THRESHOLD_MAX else 0
    return int(params * share + acts)
