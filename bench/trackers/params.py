"""Exact parameter counts. A bitsandbytes 4-bit weight is stored packed (two values per uint8 byte),
so it is counted as the logical parameters its quant_state describes, not the bytes that hold them."""
from __future__ import annotations

import math
from typing import Any

import torch


def logical_numel(param: torch.Tensor) -> int:
    shape = getattr(param, "bench_logical_shape", None)  # a packed quantised weight that says its own shape
    if shape:
        return math.prod(shape)
    if type(param).__name__ == "Params4bit":
        state = getattr(param, "quant_state", None)
        if state is not None and getattr(param, "bnb_quantized", True):
            return math.prod(state.shape)
    return param.numel()


def storage_label(param: torch.Tensor) -> str:
    label = getattr(param, "bench_storage", None)  # a quantised weight that names its own storage (HQQ)
    if label:
        return label
    kind = type(param).__name__
    if kind == "Params4bit" and getattr(param, "bnb_quantized", False):
        return f"4bit-{getattr(param, 'quant_type', 'nf4')}"
    if kind == "Int8Params":
        return "int8"
    return str(param.dtype).removeprefix("torch.")


def count_parameters(model: torch.nn.Module) -> dict[str, Any]:
    """Total / trainable / % trainable / by storage dtype. Tied weights are counted once."""
    total = trainable = 0
    by_dtype: dict[str, int] = {}
    for param in model.parameters():  # parameters() yields a shared tensor once
        n = logical_numel(param)
        total += n
        if param.requires_grad:
            trainable += n
        label = storage_label(param)
        by_dtype[label] = by_dtype.get(label, 0) + n
    return {"total": total, "trainable": trainable,
            "trainable_pct": 100.0 * trainable / total if total else 0.0, "by_dtype": by_dtype}
