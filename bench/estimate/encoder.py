"""Activation memory of BERT-style encoders (post-LayerNorm, GELU MLP, dropout), per token and layer, as
transformers 5 runs them; checked against autograd's saved tensors on all-MiniLM-L6-v2 in the tests.

Per layer and token, bytes (e: the flow's activation size, m: dropout mask, 4 on CPU and 1 on CUDA):
  attention   q, k, v (3h e); fused kernels (CUDA) add the output and an fp32 logsumexp; the CPU runs
              attention with dropout in the math kernel: probabilities, their dropout mask and the dropped
              probabilities (3 x heads x seq e)
  sub-blocks  each of the two: a dropout mask (h m), the LayerNorm's input (h e) and its mean/rstd (8)
  MLP         GELU input (I e)
  trained base linears  their inputs: LayerNorm outputs (2h e), attention context (h e), GELU output (I e)
  LoRA        per adapted linear: dropout output + mask (in x (4 + m)) and A's output (r x 4)
Embeddings add a LayerNorm and a dropout once; the classification / QA head is a few values per example.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from bench.estimate.arch import Arch

if TYPE_CHECKING:
    from bench.estimate.activations import Flow
    from bench.estimate.inventory import Inventory

def _adapters(inv: Inventory) -> list[tuple[int, int]]:
    """(in_features, rank) of every LoRA adapter in the first encoder layer."""
    pattern = re.compile(r"\.layer\.0\.(?:.*\.)?(\w+)\.(\w+)\.lora_A\.[^.]+\.weight$")
    return [(r.shape[1], r.shape[0]) for r in inv.rows
            if r.kind == "adapter" and len(r.shape) == 2 and pattern.search(r.name)]


def encoder_layer_bytes_per_token(arch: Arch, flow: Flow, inv: Inventory, kernel: str, seq: int,
                                  dropout: float) -> dict[str, float]:
    h, i, e, m = arch.hidden, arch.intermediate, flow.act, flow.mask
    attn = 3 * h * e
    if kernel in ("math", "eager"):
        attn += arch.heads * seq * (2 * e + (m if arch.attention_dropout > 0 else 0))
    else:
        attn += h * e + arch.heads * 4
    blocks = 2 * (h * (m if arch.hidden_dropout > 0 else 0) + h * e + 8)
    parts = {"attention": float(attn), "sub_blocks": float(blocks), "mlp": float(i * e)}
    if flow.base_trainable:
        parts["linear_inputs"] = float(3 * h * e + i * e)
    lora = 0.0
    for fan_in, rank in _adapters(inv):
        lora += rank * 4 + (fan_in * (4 + m) if dropout > 0 else (fan_in * 4 if e < 4 else 0))
    parts["lora"] = lora
    return parts


def encoder_head_bytes_per_token(arch: Arch, flow: Flow) -> float:
    """Embedding LayerNorm (input, stats) and dropout mask, once per token."""
    return float(arch.hidden * flow.act + 8 + arch.hidden * (flow.mask if arch.hidden_dropout > 0 else 0))
