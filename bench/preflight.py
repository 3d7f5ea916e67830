"""Does-not-fit preflight: a first-order memory estimate from the meta-device model, before anything loads.

It exists so a cell that can't fit ends in seconds with a `skipped` record instead of swapping or being
killed. It is deliberately simple and documented, and recorded with its breakdown so it can be checked
against the measured peak; the full memory model (per-kernel activations, allocator behaviour,
calibration) belongs to bench.estimate.

Components, bytes:
  weights       each parameter at its storage dtype; a quantised linear weight at 0.5 B (4-bit) or 1 B
                (8-bit) per value plus its block constants (fp32 absmax per 64 values, or 1 B with double
                quantisation); QLoRA's unquantised parts in fp32 (peft's kbit preparation upcasts them)
  cast copies   full fine-tuning in mixed precision keeps a 16-bit copy of each weight for backward
  gradients     trainable parameters at their dtype
  optimizer     AdamW: 2 states at the parameter dtype; bitsandbytes paged AdamW: 2 fp32 states;
                8-bit: 2 B per value; GaLore: 2 states of max(m, n) x r plus the r x min(m, n) projector
  activations   per layer and token: ~8 h + 4 I values at the compute dtype (I x active experts for MoE),
                only h with gradient checkpointing (plus one layer's worth); logits: 2 x vocab fp32 per token
  runtime       CUDA context and kernels: 0.5 GiB on GPU
The host also has to hold a random-init quantised model in its compute dtype before quantisation.
"""
from __future__ import annotations

from typing import Any

import torch

from bench.config import RunConfig
from bench.models import HEAD_MODULES

GB = 1e9  # decimal gigabytes in messages
CUDA_RUNTIME_BYTES = 512 * 1024**2


def host_available_bytes() -> int | None:
    from bench.trackers.memory import proc_kib_field

    return proc_kib_field("/proc/meminfo", "MemAvailable")


def _quantised_weight_bytes(n: int, bits: int, rows: int, double_quant: bool) -> float:
    if bits == 8:
        return n + rows * 4.0
    blocks = n / 64
    constants = blocks * 1.0 + blocks / 256 * 4.0 if double_quant else blocks * 4.0
    return n * 0.5 + constants


def estimate(cfg: RunConfig, meta_model: torch.nn.Module, compute: torch.dtype, device: str) -> dict[str, Any]:
    m, t = cfg.method, cfg.train
    bits = m.base_bits
    el = torch.finfo(compute).bits // 8
    weights = quantised_bytes = grads = optim = cast_copies = 0.0
    quantised_values = 0
    projected = {}
    if m.name == "galore":
        from bench.methods.galore import projected_params

        projected = {id(p) for p in projected_params(meta_model, cfg)}
    seen: set[int] = set()  # tied embeddings are one tensor
    for name, module in meta_model.named_modules():
        for pname, p in module.named_parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            n = p.numel()
            is_base_linear = (isinstance(module, torch.nn.Linear) and pname == "weight" and "lora_" not in name
                              and not set(name.split(".")) & set(HEAD_MODULES))
            if bits < 16 and is_base_linear:
                quantised_bytes += _quantised_weight_bytes(n, bits, p.shape[0], getattr(m, "double_quant", False))
                quantised_values += n
                continue
            size = 4 if bits < 16 else p.element_size()
            weights += n * size
            if not p.requires_grad:
                continue
            grads += n * size
            if m.name == "full" and getattr(m, "precision", "") == "mixed" and compute != torch.float32:
                cast_copies += n * el
            if id(p) in projected:
                r, big, small = m.rank, max(p.shape), min(p.shape)
                state = {"adamw8bit": 1, "adafactor": 0}.get(m.optimizer, size)
                optim += 2 * big * r * state + r * small * size + (big + r) * 4 * (m.optimizer == "adafactor")
            elif m.optimizer in ("adamw8bit", "paged_adamw8bit"):
                optim += 2 * n
            elif m.optimizer == "paged_adamw":
                optim += 2 * n * 4
            else:
                optim += 2 * n * size

    hf = meta_model.config
    h, layers = hf.hidden_size, hf.num_hidden_layers
    inter = (getattr(hf, "intermediate_size", None) or 4 * h) * (getattr(hf, "num_experts_per_tok", None) or 1)
    seq_len = t.seq_len if cfg.task.kind == "synthetic" else cfg.task.max_length  # text: padded to <= max_length
    tokens = t.batch_size * seq_len
    per_layer = tokens * (8 * h + 4 * inter) * el
    checkpointing = t.gradient_checkpointing or (m.name == "qlora" and m.gradient_checkpointing)
    acts = (layers * tokens * h * el + per_layer) if checkpointing else layers * per_layer
    if cfg.task.kind == "synthetic":  # causal-LM logits; classification / QA heads are a few values per token
        acts += tokens * hf.vocab_size * 4 * 2
    runtime = CUDA_RUNTIME_BYTES if device == "cuda" else 0
    breakdown = {"weights": weights + quantised_bytes, "cast_copies": cast_copies, "gradients": grads, "optimizer": optim,
                 "activations": acts, "runtime": runtime}
    need_device = int(sum(breakdown.values()))
    # A random-init quantised model is materialised on the host in its compute dtype first.
    host_load = 0
    if bits < 16 and not cfg.model.pretrained:
        from bench.models import DTYPES

        host_load = int(quantised_values * DTYPES[m.compute_dtype].itemsize + weights)
    result: dict[str, Any] = {"breakdown_bytes": {k: int(v) for k, v in breakdown.items()},
                              "needs_device_bytes": need_device, "needs_host_bytes": host_load,
                              "host_available_bytes": host_available_bytes(), "device": device,
                              "model": "bench.preflight first-order estimate"}
    if device == "cuda":
        free, _ = torch.cuda.mem_get_info()
        result["device_available_bytes"] = int(free)
    else:  # training on the host: the device *is* the host
        result["needs_host_bytes"] = max(host_load, need_device)
        result["device_available_bytes"] = result["host_available_bytes"]
    reasons = []
    if result["device_available_bytes"] is not None and need_device > result["device_available_bytes"]:
        reasons.append(f"needs ~{need_device / GB:.1f} GB to train on {device}, "
                       f"have {result['device_available_bytes'] / GB:.1f} GB")
    host_need, host_have = result["needs_host_bytes"], result["host_available_bytes"]
    if host_have is not None and host_need > host_have and (device == "cuda" or host_load > need_device):
        why = " to materialise the random-init weights before quantisation" if host_load >= need_device else ""
        reasons.append(f"needs ~{host_need / GB:.1f} GB of host memory{why}, have {host_have / GB:.1f} GB "
                       f"(training itself: ~{need_device / GB:.1f} GB)")
    result["fits"] = not reasons
    result["reason"] = "; ".join(reasons) or None
    return result
