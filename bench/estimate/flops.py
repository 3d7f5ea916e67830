"""FLOPs per optimizer step and the time floor they set on a GPU, so reports can show MFU.

Conventions (Kaplan et al. 2020; PaLM's MFU, Chowdhery et al. 2022, appendix B):
  N      weights one token is multiplied by (attention, active experts, router, LM head; not the input
         embedding, a lookup)
  attn   2 x 2 x seq x heads x head_dim per layer per token forward (QK^T and AV, causal masking ignored)
  full / GaLore   6N + 3 attn per token: forward 2N, backward 2N (input grads) + 2N (weight grads)
  LoRA / QLoRA    4N + 3 attn per token: the frozen base needs input grads only; + 6 x adapter parameters
                  (dense adapters; fused-expert adapters use the active share)
  gradient checkpointing recomputes the forward: + 2N + attn per token, counted in hardware FLOPs, not in
  model FLOPs (MFU uses model FLOPs; HFU would use hardware FLOPs)
  QLoRA dequantisation: every 4-/8-bit weight is expanded once per forward, backward and recompute pass per
  micro-batch; reported as element operations, not tensor-core FLOPs
  GaLore's projection: 2 matmuls of m x n x r per projected weight per step (project, project back) and an
  SVD (~4 m n min(m, n)) every update_proj_gap steps, amortised
Time floor = hardware FLOPs / the GPU's dense 16-bit tensor peak: no run can be faster; MFU = model FLOPs /
(measured step time x peak).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bench.estimate.arch import Arch

if TYPE_CHECKING:
    from bench.config import RunConfig
    from bench.estimate.inventory import Inventory


def flops_per_step(cfg: RunConfig, arch: Arch, inv: Inventory, checkpointing: bool, seq: int,
                   lm_head: bool = True) -> dict[str, Any]:
    t = cfg.train
    tokens = t.batch_size * seq * t.grad_accum
    n = arch.matmul_params_per_token(lm_head)
    attn = 4 * seq * arch.q_out * arch.layers
    method = cfg.method.name
    adapters = 0.0
    for r in inv.rows:
        if r.kind == "adapter" and r.trainable:
            share = arch.active_experts / arch.experts if arch.experts and ".experts." in r.name else 1.0
            adapters += r.numel * share
    if method in ("full", "galore"):
        model = (6 * n + 3 * attn) * tokens
    else:
        model = (4 * n + 3 * attn + 6 * adapters) * tokens
    recompute = (2 * n + attn) * tokens if checkpointing else 0
    optimizer = 0.0
    if method == "galore":
        gap = max(1, getattr(cfg.method, "update_proj_gap", 200))
        for r in inv.rows:
            if r.projected and len(r.shape) == 2:
                m_, n_ = r.shape
                optimizer += 4 * m_ * n_ * cfg.method.rank + 4 * m_ * n_ * min(m_, n_) / gap
    quantised = sum(r.numel for r in inv.rows if r.kind == "quantized")
    passes = (3 if checkpointing else 2) * t.grad_accum
    return {"tokens_per_step": tokens, "matmul_params_per_token": n, "adapter_params": int(adapters),
            "model_flops": model, "recompute_flops": recompute, "optimizer_flops": optimizer,
            "hardware_flops": model + recompute + optimizer,
            "dequant_element_ops": quantised * passes, "model_flops_per_token": model / tokens}


def time_floor_s(flops: dict[str, Any], tflops: float | None) -> float | None:
    """Seconds per step at the GPU's dense 16-bit tensor-core peak (None when it has none)."""
    if not tflops:
        return None
    return flops["hardware_flops"] / (tflops * 1e12)
