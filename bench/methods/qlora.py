"""QLoRA: LoRA adapters over a frozen bitsandbytes 4-bit (NF4/FP4, optional double quantisation) or
8-bit base, prepared with peft's prepare_model_for_kbit_training (norms and embeddings upcast to fp32,
gradient checkpointing). The quantised base is built by bench.cell.models (method.base_bits)."""
from __future__ import annotations

from typing import Any

import torch

from bench.config import RunConfig
from bench.methods import lora
from bench.cell.models import DTYPES


def weights_dtype(cfg: RunConfig, compute: torch.dtype) -> torch.dtype:
    return DTYPES[cfg.method.compute_dtype]  # the unquantised parts before kbit preparation


def autocast_dtype(cfg: RunConfig, compute: torch.dtype) -> torch.dtype | None:
    return None  # Linear4bit computes in method.compute_dtype itself


def wrap(model: torch.nn.Module, cfg: RunConfig) -> torch.nn.Module:
    from peft import prepare_model_for_kbit_training

    checkpointing = cfg.method.gradient_checkpointing or cfg.train.gradient_checkpointing
    if model.device.type != "meta":
        from bench.cell import progress

        with progress.phase("loading: preparing the quantised base (peft kbit: norms and embeddings to fp32)"):
            model = prepare_model_for_kbit_training(
                model, use_gradient_checkpointing=checkpointing,
                gradient_checkpointing_kwargs={"use_reentrant": False})
    return lora.add_adapters(model, cfg)


def make_optimizer(model: torch.nn.Module, cfg: RunConfig) -> Any:
    return lora.make_optimizer(model, cfg)
