"""Bytes of the persistent training state: weights (by storage, quantisation constants included), gradients,
optimizer states, and the largest temporary an optimizer step allocates.

Quantised weights (bitsandbytes 0.4x, blocksize 64 as bench and transformers use it):
  4-bit   ceil(n/2) packed bytes + one absmax per 64 values: fp32, or with double quantisation a uint8 code
          plus one fp32 absmax per 256 blocks and one fp32 offset; code tables: NF4/FP4 16 x fp32, nested
          dynamic map 256 x fp32, per tensor
  8-bit   n int8 bytes + one fp32 scale per output row (SCB)
Optimizers:
  torch AdamW        2 states at the parameter's dtype; step temporaries: CUDA runs the foreach
                     implementation (one extra buffer the size of every parameter of a dtype group: sqrt(v)),
                     CPU the single-tensor one (two buffers the size of the largest parameter)
  bitsandbytes       paged_adamw: 2 fp32 states; adamw8bit / paged_adamw8bit: 2 uint8 states + one fp32 absmax
                     per 256 values each, for tensors of >= 4096 values (smaller ones: fp32); no temporaries.
                     Paged: a tensor of >= 1e5 values gets its states in CUDA managed memory (get_paged), which
                     neither torch's allocator nor NVML's per-process figure counts; smaller ones stay on the device
  GaLore (galore-torch 1.0, proj_type std)  a projected m x n weight keeps its states on the projected
                     gradient, max(m, n) x r, and a projection matrix r x min(m, n) (param dtype; fp32 for
                     Adafactor); AdamW8bit: bitsandbytes 8-bit states on that shape; Adafactor (beta1 None):
                     factored second moment, rows + cols fp32 for >= 2-D tensors, full for 1-D
  GaLore temporaries  per parameter, largest one counts: the SVD at a projection refresh (fp32 copy, U, Vh),
                     the projected-back update (two m x n buffers), 8-bit's saved copy of the weight
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from bench.estimate.inventory import Inventory, ParamRow

QUANT_BLOCK = 64
NESTED_BLOCK = 256
OPT8_BLOCK = 256
OPT8_MIN_VALUES = 4096
PAGED_MIN_VALUES = 100_000  # bitsandbytes Optimizer8bit.get_state_buffer: p.numel() < 1e5 is not paged


def quantised_bytes(row: ParamRow, double_quant: bool) -> tuple[int, int]:
    """(packed data bytes, constant bytes) of one bitsandbytes-quantised weight."""
    n = row.numel
    if row.storage == "int8":
        return n, row.shape[0] * 4
    blocks = math.ceil(n / QUANT_BLOCK)
    if double_quant:
        constants = blocks + math.ceil(blocks / NESTED_BLOCK) * 4 + 4 + 256 * 4 + 16 * 4
    else:
        constants = blocks * 4 + 16 * 4
    return math.ceil(n / 2), constants


def weight_bytes(inv: Inventory, double_quant: bool) -> dict[str, int]:
    """Weights by what holds them: '<dtype>' base tensors, 'adapters <dtype>', '<quant> packed', 'quant constants'."""
    return dict(inv.memo(("weight_bytes", double_quant), lambda: _weight_bytes(inv, double_quant)))


def _weight_bytes(inv: Inventory, double_quant: bool) -> dict[str, int]:
    out: dict[str, int] = {}

    def add(key: str, value: int) -> None:
        out[key] = out.get(key, 0) + value

    for r in inv.rows:
        if r.kind == "quantized":
            data, constants = quantised_bytes(r, double_quant)
            add(f"{r.storage} packed" if r.storage != "int8" else "int8", data)
            add("quant constants", constants)
        elif r.kind == "adapter":
            add(f"adapters {r.storage}", r.numel * int(r.element_bytes))
        else:
            add(r.storage, r.numel * int(r.element_bytes))
    return out


def gradient_bytes(inv: Inventory) -> tuple[int, int]:
    """(all gradients, the largest single gradient): one per trainable parameter, at its dtype."""
    def compute() -> tuple[int, int]:
        sizes = [r.numel * int(r.element_bytes) for r in inv.rows if r.trainable]
        return sum(sizes), max(sizes, default=0)

    return inv.memo("gradient_bytes", compute)


def _bnb8_state(n: int, states: int) -> int:
    if n < OPT8_MIN_VALUES:
        return states * n * 4
    return states * (n + math.ceil(n / OPT8_BLOCK) * 4)


@dataclass
class OptimizerBytes:
    states: int = 0  # all of them, paged ones included
    paged: int = 0  # of which in CUDA managed memory (bitsandbytes paged optimizers on CUDA)
    projectors: int = 0  # GaLore projection matrices
    step_temporary: int = 0  # largest temporary of one optimizer step (peak, not a sum)
    detail: dict[str, Any] = field(default_factory=dict)


def _galore_row(r: ParamRow, kind: str, rank: int) -> tuple[int, int, int]:
    """(states, projector, temporary) bytes of one GaLore-projected weight."""
    m, n = r.shape[0], r.shape[1]
    e = int(r.element_bytes)
    big, small = max(m, n), min(m, n)
    low = big * rank
    svd = (m * n * 4 if e < 4 else 0) + (m * small + small * n + small) * 4
    if kind == "adafactor":  # grad.float(): states, projection and update all fp32
        states, projector = (big + rank) * 4, rank * small * 4
        temp = (m * n * 4 if e < 4 else 0) * 2 + low * 4 * 2 + m * n * 4 * 2
    elif kind == "adamw8bit":
        states, projector = _bnb8_state(low, 2), rank * small * e
        temp = m * n * e * 3 + low * e * 2
    else:
        states, projector = 2 * low * e, rank * small * e
        temp = m * n * e * 2 + low * e * 3
    return states, projector, max(temp, svd)


def optimizer_bytes(inv: Inventory, optimizer: str, device: str, rank: int | None = None) -> OptimizerBytes:
    """A fresh OptimizerBytes (callers may rescale it: FSDP's share) from the inventory's memo."""
    out = inv.memo(("optimizer_bytes", optimizer, device, rank), lambda: _optimizer_bytes(inv, optimizer, device, rank))
    return dataclasses.replace(out, detail=dict(out.detail))


def _optimizer_bytes(inv: Inventory, optimizer: str, device: str, rank: int | None) -> OptimizerBytes:
    out = OptimizerBytes()
    trainable = [r for r in inv.rows if r.trainable]
    groups: dict[int, int] = {}  # foreach temporaries, per element size
    largest = 0
    galore_torch = inv.terms is not None and inv.terms.optimizer_library == "galore-torch"
    for r in trainable:
        n, e = r.numel, int(r.element_bytes)
        if r.projected and rank is not None and len(r.shape) == 2:
            states, projector, temp = _galore_row(r, optimizer, rank)
            out.states += states
            out.projectors += projector
            out.step_temporary = max(out.step_temporary, temp)
            continue
        if galore_torch and optimizer == "adafactor":
            out.states += (r.shape[0] + n // r.shape[0]) * 4 if len(r.shape) >= 2 else n * 4
            out.step_temporary = max(out.step_temporary, n * 4 * (3 if e < 4 else 2))
        elif optimizer in ("adamw8bit", "paged_adamw8bit", "paged_adamw"):
            states = _bnb8_state(n, 2) if optimizer.endswith("8bit") else 2 * n * 4
            out.states += states
            if optimizer.startswith("paged") and device == "cuda" and n >= PAGED_MIN_VALUES:
                out.paged += states
        else:  # torch AdamW (or galore-torch's AdamW on an unprojected tensor)
            out.states += 2 * n * e
            groups[e] = groups.get(e, 0) + n * e
            largest = max(largest, n * e)
    if groups:
        torch_temp = largest * 2 if galore_torch or device != "cuda" else max(groups.values())
        out.step_temporary = max(out.step_temporary, torch_temp)
    out.detail = {"optimizer": optimizer, "foreach": device == "cuda" and not galore_torch,
                  "paged": optimizer.startswith("paged") and device == "cuda"}
    return out
