"""Speed levers applied to a cell's model (docs/levers.md): liger-kernel's fused kernels (`train.liger`) and
torch.compile (`train.compile`). The attention kernel (`model.attn_implementation`) is chosen when the model
is built (bench.cell.models), padding-free packing where the synthetic batches are made (bench.tasks.synthetic).

`check` refuses, before any work, the levers this device can't run; `apply` changes the freshly built base
model before the method wraps it; `setup` is what the record's `setup` says about them.
"""
from __future__ import annotations

from typing import Any

import torch

from bench.config import ConfigError, RunConfig, check_levers


def check(cfg: RunConfig, device: str) -> None:
    """Refusals that need the resolved device (the config's own check ran with device=auto unknown)."""
    check_levers(cfg, device)
    if cfg.train.liger and device != "cuda":
        raise ConfigError(f"train.liger: liger-kernel's Triton kernels need CUDA (device is {device})")
    if cfg.train.liger:
        model_type = liger_model_type(cfg)
        if model_type not in liger_model_types():
            raise ConfigError(f"train.liger: liger-kernel has no kernels for model type {model_type!r} "
                              f"(it has: {', '.join(sorted(liger_model_types()))})")


def liger_model_type(cfg: RunConfig) -> str | None:
    if not cfg.model.pretrained:
        return cfg.model.arch.get("model_type")
    from bench.cell.models import hf_config

    return getattr(hf_config(cfg.model), "model_type", None)


def liger_model_types() -> set[str]:
    from liger_kernel.transformers.monkey_patch import MODEL_TYPE_TO_APPLY_LIGER_FN

    return set(MODEL_TYPE_TO_APPLY_LIGER_FN)


def apply(model: torch.nn.Module, cfg: RunConfig) -> torch.nn.Module:
    """Liger's kernels patched into this model instance, then each decoder layer compiled (lazily: tracing
    happens at the first step, a warm-up step, after the method has added its adapters)."""
    if cfg.train.liger:
        from liger_kernel.transformers import _apply_liger_kernel_to_instance

        _apply_liger_kernel_to_instance(model=model)
    if cfg.train.compile:
        compile_layers(model)
    return model


def compile_layers(model: torch.nn.Module) -> list[str]:
    """torch.compile each repeated block (the classes in the model's `_no_split_modules`: LlamaDecoderLayer,
    ...), as torchtune does: one graph compiled once and reused by every layer, so compiling costs seconds,
    not minutes. A model that names no such block is compiled whole. Returns the qualified names compiled."""
    blocks = set(getattr(model, "_no_split_modules", None) or ())
    names = [name for name, module in model.named_modules() if type(module).__name__ in blocks]
    if not names:
        model.compile()
        return [""]
    for name in names:
        model.get_submodule(name).compile()
    return names


def compiled_blocks(model: torch.nn.Module) -> int:
    """How many modules of `model` carry a compiled call (nn.Module.compile)."""
    return sum(getattr(m, "_compiled_call_impl", None) is not None for m in model.modules())


def setup(cfg: RunConfig, model_config: Any) -> dict[str, Any]:
    """The record's lever fields: the attention kernel the built model uses (transformers may resolve the
    configured one), compile, liger, packing and the examples' shortest length."""
    attn = getattr(model_config, "_attn_implementation", None) or cfg.model.attn_implementation
    return {"attn_implementation": attn, "compile": cfg.train.compile, "liger": cfg.train.liger,
            "packing": cfg.task.packing, "min_seq_len": cfg.task.min_seq_len}
