"""Full fine-tuning: every weight trained.
mixed precision: fp32 weights/grads/optimizer states, forward and backward under autocast;
pure: everything held in the run's precision (bf16 on CUDA by default)."""
from __future__ import annotations

from typing import Any

import torch

from bench.config import RunConfig
from bench.methods.base import enable_checkpointing, make_adamw


def weights_dtype(cfg: RunConfig, compute: torch.dtype) -> torch.dtype:
    return torch.float32 if cfg.method.precision == "mixed" else compute


def autocast_dtype(cfg: RunConfig, compute: torch.dtype) -> torch.dtype | None:
    return compute if cfg.method.precision == "mixed" and compute != torch.float32 else None


def wrap(model: torch.nn.Module, cfg: RunConfig) -> torch.nn.Module:
    for param in model.parameters():
        param.requires_grad_(True)
    if cfg.train.gradient_checkpointing:
        enable_checkpointing(model)
    return model


def make_optimizer(model: torch.nn.Module, cfg: RunConfig) -> Any:
    return make_adamw(model.parameters(), cfg.method.optimizer, cfg.method.lr, cfg.method.weight_decay)
