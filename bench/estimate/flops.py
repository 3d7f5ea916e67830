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
  the method's own work (its `optimizer_flops` and `extra_flops` hooks, bench/methods/): e.g. GaLore's
  projection, DoRA's weight norm; hardware FLOPs, not model FLOPs
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
    from bench import methods

    method = methods.get(cfg.method.name)
    adapters = inv.memo(("adapter_flop_params", arch.active_experts, arch.experts), lambda: _adapter_params(arch, inv))
    if inv.terms is not None and inv.terms.trains_base:
        model = (6 * n + 3 * attn) * tokens
    else:
        model = (4 * n + 3 * attn + 6 * adapters) * tokens
    recompute = (2 * n + attn) * tokens if checkpointing else 0
    optimizer = inv.memo(("optimizer_flops", repr(cfg.method)), lambda: method.optimizer_flops(cfg, inv))
    quantised = inv.memo("quantised_params", lambda: sum(r.numel for r in inv.rows if r.kind == "quantized"))
    passes = (3 if checkpointing else 2) * t.grad_accum
    extra = method.extra_flops(cfg, arch, inv, tokens, (2 if checkpointing else 1) * t.grad_accum)
    return {"tokens_per_step": tokens, "matmul_params_per_token": n, "adapter_params": int(adapters),
            "model_flops": model, "recompute_flops": recompute, "optimizer_flops": optimizer,
            "method_flops": extra, "hardware_flops": model + recompute + optimizer + extra,
            "dequant_element_ops": quantised * passes, "model_flops_per_token": model / tokens}


def _adapter_params(arch: Arch, inv: Inventory) -> float:
    """Trained adapter parameters a token meets: fused-expert adapters at the active experts' share."""
    adapters = 0.0
    for r in inv.rows:
        if r.kind == "adapter" and r.trainable:
            share = arch.active_experts / arch.experts if arch.experts and ".experts." in r.name else 1.0
            adapters += r.numel * share
    return adapters


def time_floor_s(flops: dict[str, Any], tflops: float | None) -> float | None:
    """Seconds per step at the GPU's dense 16-bit tensor-core peak (None when it has none)."""
    if not tflops:
        return None
    return flops["hardware_flops"] / (tflops * 1e12)
