"""Activation memory: the tensors autograd saves for backward, per token, tensor by tensor, for Llama-style
decoders as transformers 5 and peft 0.2x run them (checked against a saved-tensor trace in the tests).

Dtypes follow the method (see `flow_for`): e.g. QLoRA's prepared model has fp32 embeddings and norms, so its
residual stream, bitsandbytes outputs (cast back to the input dtype) and attention all run in fp32.
Per decoder layer and token, bytes (e* = element sizes of the flow):
  2 RMSNorms   fp32 input (4h) + rsqrt (4) [+ normalised input, e_res h, when the norm weight trains]
  attention    rotated q and k, v, output (2 q_out + 2 kv_out) e_act + logsumexp 4 x heads (flash /
               memory-efficient / CPU flash kernels); math kernel or eager: + heads x seq probabilities
               (+ fp32 softmax for eager, + repeated k, v for grouped-query attention)
  MLP          SwiGLU: gate, silu(gate), up (3 I e_act) [+ product I e_act when down_proj trains];
               top-k experts: k x (3 I + h) e_act + fp32 router probabilities [+ k (h + I) when experts train]
  trained base linears  their inputs (one copy per linear under autocast, else shared with the producer)
  LoRA         per adapted module: dropout output (in x 4) + mask (CPU: 4 B, CUDA: 1 B) + A output (r x 4);
               without dropout the fp32 input (shared when it already is fp32)
  peft ParamWrapper (fused MoE experts) W + BA materialised per layer and saved by F.linear (from peft's
               code; not measured: no MoE fits this machine)
  the method's own (its extra_layer_bytes / extra_fixed_bytes / transient_bytes hooks, bench/methods/): e.g.
               DoRA's saved base and adapter outputs and weight copies
Head: final norm, LM-head input when it trains, log-softmax output (4 V). Gradient checkpointing keeps only
each layer's input (e_res h) plus one recomputed layer. When nothing before the first layer trains (frozen
embeddings, no input-grad hook), its first norm and its q/k/v dropout masks save nothing.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench.estimate.arch import Arch

if TYPE_CHECKING:
    from bench.config import RunConfig
    from bench.estimate.inventory import Inventory

DENSE_ROLES = {"q_proj": "norm", "k_proj": "norm", "v_proj": "norm", "gate_proj": "norm", "up_proj": "norm",
               "o_proj": "act", "down_proj": "act"}


@dataclass(frozen=True)
class Flow:
    residual: int  # bytes per element of the residual stream
    norm_out: int
    act: int  # linear outputs, attention, MLP intermediates
    autocast: bool  # linears cast their (fp32) input: one saved copy per trained linear
    base_trainable: bool
    norm_trainable: bool
    mask: int  # dropout mask bytes per element


def flow_for(cfg: RunConfig, compute_bytes: int, device: str) -> Flow:
    from bench.estimate.inventory import method_terms

    m = cfg.method
    terms = method_terms(cfg)
    c = compute_bytes
    mask = 1 if device == "cuda" else 4
    if terms.trains_base and terms.fp32_master:
        return Flow(4, 4, c, c < 4, True, True, mask)
    if terms.trains_base:
        return Flow(c, c, c, False, True, True, mask)
    if m.base_bits < 16:  # kbit preparation: fp32 embeddings, norms and head; bnb casts back to the input dtype
        return Flow(4, 4, 4, False, False, False, mask)
    return Flow(c, c, c, False, False, False, mask)


def attention_kernel(cfg: RunConfig, arch: Arch, flow: Flow, device: str) -> str:
    """Which SDPA kernel torch picks: flash (16-bit, grouped-query allowed), memory-efficient (fp32, equal
    heads only), else math; CPU has a flash kernel for every float dtype. `eager` is transformers' own.
    The CUDA choices are read from torch's documented constraints, not measured here (no GPU)."""
    impl = cfg.model.attn_implementation
    if impl == "eager":
        return "eager"
    if device != "cuda":  # the CPU's flash kernel takes no dropout: encoders' attention dropout runs in math
        return "math" if arch.encoder and arch.attention_dropout > 0 else "cpu_flash"
    if flow.act < 4 and arch.head_dim <= 256:
        return "flash"
    return "mem_efficient" if arch.heads == arch.kv_heads else "math"


def _adapter_modules(inv: Inventory, layer: int = 0) -> list[tuple[str, int, int]]:
    """(module role, in_features, rank) of every LoRA adapter on nn.Linear modules of one decoder layer."""
    return inv.memo(("adapter_modules", layer), lambda: _find_adapter_modules(inv, layer))


def _find_adapter_modules(inv: Inventory, layer: int) -> list[tuple[str, int, int]]:
    found = []
    pattern = re.compile(rf"\.layers\.{layer}\.(?:.*\.)?(\w+)\.lora_A\.[^.]+\.weight$")
    for r in inv.rows:
        match = pattern.search(r.name)
        if match and r.kind == "adapter" and len(r.shape) == 2 and match.group(1) in DENSE_ROLES:
            found.append((match.group(1), r.shape[1], r.shape[0]))
    return found


def _adapter_bytes(inv: Inventory, flow: Flow, dropout: float) -> float:
    """Per token, one layer: what the LoRA adapters save."""
    total = 0.0
    inputs = {"q_proj": "norm1", "k_proj": "norm1", "v_proj": "norm1", "gate_proj": "norm2",
              "up_proj": "norm2", "o_proj": "attn_out", "down_proj": "product"}
    already_saved = {"attn_out"} | ({"norm1", "norm2", "product"} if flow.base_trainable else set())
    for role, fan_in, rank in _adapter_modules(inv):
        in_bytes = flow.norm_out if DENSE_ROLES[role] == "norm" else flow.act
        total += rank * 4
        if dropout > 0:  # each adapter has its own dropout: output (fp32) and mask
            total += fan_in * (4 + flow.mask)
        elif in_bytes < 4:  # each adapter casts its input to fp32 itself
            total += fan_in * 4
        elif inputs[role] not in already_saved:  # lora_A saves the fp32 input tensor, once per producer
            already_saved.add(inputs[role])
            total += fan_in * 4
    return total


def layer_bytes_per_token(arch: Arch, flow: Flow, inv: Inventory, kernel: str, seq: int,
                          dropout: float) -> dict[str, float]:
    h, i, f = arch.hidden, arch.intermediate, flow
    norm = h * 4 + 4 + (h * f.residual if f.norm_trainable else 0)
    parts = {"norms": 2.0 * norm}
    if kernel in ("math", "eager"):  # repeated k and v, probabilities; q only if k trains, output if o does
        adapted = {role for role, _, _ in _adapter_modules(inv)}
        q = arch.q_out if f.base_trainable or "k_proj" in adapted else 0
        out = arch.q_out if f.base_trainable or "o_proj" in adapted else 0
        attn = (2 * arch.q_out + q + out) * f.act + arch.heads * seq * f.act
        attn += arch.heads * seq * 4 if f.act < 4 else 0  # fp32 softmax, then cast
    else:  # fused kernels save rotated q and k, v, output and the fp32 logsumexp
        attn = (2 * arch.q_out + 2 * arch.kv_out) * f.act + arch.heads * 4
    parts["attention"] = float(attn)
    experts_train = f.base_trainable or inv.memo("wrapped_experts", lambda: any(
        r.materialised and ".layers.0." in r.name and len(r.shape) == 3 for r in inv.rows))
    if arch.experts:
        k = arch.active_experts
        parts["mlp"] = float(k * (3 * i + h) * f.act + arch.experts * 4
                             + (k * (h * f.norm_out + i * f.act) if experts_train else 0))
    else:
        parts["mlp"] = float(3 * i * f.act + (i * f.act if f.base_trainable else 0))
    if f.base_trainable:  # inputs of the trained q, k, v, gate, up (o and down reuse saved tensors)
        parts["linear_inputs"] = float(5 * h * f.act if f.autocast else 2 * h * f.norm_out)
    parts["lora"] = _adapter_bytes(inv, f, dropout)
    extra = inv.memo(("extra_layer_bytes", f, dropout), lambda: _method(inv).extra_layer_bytes(inv, f, dropout))
    if extra:
        parts[inv.method] = extra
    return parts


def _method(inv: Inventory):  # noqa: ANN202  (bench.methods.interface.Method)
    from bench import methods

    return methods.get(inv.method)


def first_layer_savings_per_token(arch: Arch, flow: Flow, inv: Inventory, dropout: float) -> float:
    """With frozen embeddings (and no input-grad hook), the first layer's input needs no gradient: its first
    norm saves nothing and its q/k/v adapters' dropouts keep no mask."""
    masks = sum(fan_in * flow.mask for role, fan_in, _ in _adapter_modules(inv)
                if dropout > 0 and role in ("q_proj", "k_proj", "v_proj"))
    return float(arch.hidden * 4 + 4 + masks)


def materialised_bytes_per_layer(inv: Inventory) -> int:
    """peft ParamWrapper: W + BA of each wrapped 3-D expert tensor, built once per layer per forward, and the
    low-rank factors cast to W's dtype for it (a copy when W is 16-bit)."""
    return inv.memo("materialised_bytes_per_layer", lambda: _materialised_bytes(inv))


def _materialised_bytes(inv: Inventory) -> int:
    wrapped = [r for r in inv.rows if r.materialised and ".layers.0." in r.name and len(r.shape) == 3]
    total = sum(r.numel * int(r.element_bytes) for r in wrapped)
    if wrapped and wrapped[0].element_bytes < 4:
        total += sum(r.numel * int(wrapped[0].element_bytes) for r in inv.rows
                     if r.kind == "adapter" and ".layers.0." in r.name and ".experts." in r.name)
    return total


def head_bytes_per_token(arch: Arch, flow: Flow) -> float:
    norm = arch.hidden * 4 + 4 + (arch.hidden * flow.residual if flow.norm_trainable else 0)
    head_input = (arch.hidden * (flow.act if flow.autocast else flow.norm_out)) if flow.base_trainable else 0
    return float(norm + head_input + arch.vocab * 4)


def backward_work_per_token(arch: Arch, flow: Flow) -> float:
    """Gradient buffers alive while one layer back-propagates: the larger of the MLP's (three I-sized) and
    attention's (dq, dk, dv and the incoming gradient)."""
    mlp = 3 * arch.intermediate * flow.act * max(1, arch.active_experts)
    attn = (2 * arch.q_out + 2 * arch.kv_out) * flow.act + arch.hidden * flow.residual
    return float(max(mlp, attn))


def dequantised_weight_bytes(inv: Inventory) -> int:
    """bitsandbytes multiplies a batch of tokens by a 4-bit weight by first expanding it to 16 bits: the
    largest quantised weight, at 2 bytes per value, is a transient of every forward and backward."""
    return inv.memo("dequantised_weight_bytes", lambda: max(
        (r.numel * 2 for r in inv.rows if r.kind == "quantized" and r.storage != "int8"), default=0))


def coarse_layer_bytes_per_token(arch: Arch, flow: Flow) -> dict[str, float]:
    """Families with no per-tensor rule (neither Llama-style nor BERT-style): the first-order
    rule, ~8h + 4I values per token."""
    return {"coarse": float((8 * arch.hidden + 4 * arch.intermediate) * flow.act)}


def model_totals(arch: Arch, flow: Flow, inv: Inventory, parts: dict[str, float], batch: int, seq: int,
                 dropout: float, checkpointing: bool, causal_lm: bool, head_per_token: float) -> dict[str, int]:
    """Whole-model bytes: `saved` (the most saved at once), the logit-gradient transient (`loss`), one layer's
    gradient buffers (`work`) and `peak`: activations at the moment backward peaks. Backward starts with
    everything saved plus the logit gradients; a layer's own buffers come after the head's are freed. With
    checkpointing only layer inputs stay, and the head's backward and a layer's recompute are separate."""
    tokens = batch * seq
    per_layer = sum(parts.values())
    fixed = materialised_bytes_per_layer(inv) + inv.memo(("extra_fixed_bytes", flow, dropout),
                                                         lambda: _method(inv).extra_fixed_bytes(inv, flow, dropout))
    head = tokens * head_per_token
    head += 2 * seq * arch.head_dim * flow.residual + tokens * 8  # rotary cos/sin tables, int64 labels
    loss = tokens * arch.vocab * 8 if causal_lm else 0
    work = (tokens * backward_work_per_token(arch, flow) + dequantised_weight_bytes(inv)
            + inv.memo("transient_bytes", lambda: _method(inv).transient_bytes(inv)))
    if checkpointing:
        inputs = tokens * arch.layers * arch.hidden * flow.residual
        saved = inputs + tokens * per_layer + fixed + head
        peak = inputs + max(head + loss, tokens * per_layer + fixed + work)
    else:
        saved = tokens * arch.layers * per_layer + arch.layers * fixed + head
        if arch.detailed and not flow.base_trainable:
            saved -= tokens * first_layer_savings_per_token(arch, flow, inv, dropout)
        peak = max(saved + loss, saved - head + work)
    return {"saved": int(saved), "loss": int(loss), "work": int(work), "peak": int(peak)}
