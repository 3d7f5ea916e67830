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
  CUDA   the context (kernels, cuBLAS workspace; CUDA_CONTEXT_BYTES) and the caching allocator's slack
         (ALLOCATOR_SLACK of the tensor peak): assumptions to be calibrated against GPU records
  CPU    RSS growth measured on a 1-layer, 8-token cell of each method (libraries and kernels first
         touched, imports made while loading) + glibc's retention: under its dynamic mmap threshold, freed
         tensors under 32 MiB stay in the heap; a per-method share of the tensors under that size, fitted on
         `tiny` (README beside this file). Zero when the threshold is fixed (MALLOC_MMAP_THRESHOLD_).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.methods.interface import Terms

CUDA_CONTEXT_BYTES = 512 * 1024**2  # assumption (not measured here): CUDA context + cuBLAS workspace
ALLOCATOR_SLACK = 0.05  # assumption: reserved-but-unallocated share of the caching allocator at the peak
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


def add_runtime(peak: Peak, device: str, terms: Terms, small_tensor_bytes: int = 0) -> Peak:
    """`small_tensor_bytes`: the part of the tensor peak held in tensors under glibc's largest mmap threshold."""
    if device == "cuda":
        peak.runtime = {"cuda_context": CUDA_CONTEXT_BYTES, "allocator_slack": int(peak.tensors * ALLOCATOR_SLACK)}
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
