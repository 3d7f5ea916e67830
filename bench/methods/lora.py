"""LoRA: frozen base in the run's precision, trainable low-rank adapters (peft) on the target modules."""
from __future__ import annotations

from typing import Any

import torch

from bench.config import LORA_PRESETS, ConfigError, RunConfig
from bench.methods.base import enable_checkpointing, make_adamw


def weights_dtype(cfg: RunConfig, compute: torch.dtype) -> torch.dtype:
    return compute


def autocast_dtype(cfg: RunConfig, compute: torch.dtype) -> torch.dtype | None:
    return None  # base already in the compute dtype; peft casts inputs to the fp32 adapters itself


# Presets are written in Llama naming; BERT-style encoders call the same projections these names.
BERT_NAMES = {"q_proj": "query", "k_proj": "key", "v_proj": "value", "o_proj": "attention.output.dense"}
PEFT_TASK_TYPES = {"ForSequenceClassification": "SEQ_CLS", "ForQuestionAnswering": "QUESTION_ANS"}


def model_targets(model: torch.nn.Module, cfg: RunConfig) -> str | list[str]:
    targets = cfg.method.target_module_list()
    if targets == ["all-linear"]:
        return "all-linear"
    if isinstance(cfg.method.target_modules, str) and cfg.method.target_modules in LORA_PRESETS:
        leaves = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
        if not set(targets) & leaves and "query" in leaves:
            targets = [BERT_NAMES[t] for t in targets]
    return targets


def peft_task_type(model: torch.nn.Module) -> str:
    """SEQ_CLS / QUESTION_ANS make peft train the new task head in full (modules_to_save)."""
    name = type(model).__name__
    return next((task for suffix, task in PEFT_TASK_TYPES.items() if name.endswith(suffix)), "CAUSAL_LM")


def add_adapters(model: torch.nn.Module, cfg: RunConfig) -> torch.nn.Module:
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as exc:
        raise RuntimeError("LoRA needs peft: pip install 'peft>=0.17'") from exc
    m = cfg.method
    lora = LoraConfig(r=m.rank, lora_alpha=m.alpha, lora_dropout=m.dropout, bias=m.bias,
                      target_modules=model_targets(model, cfg), task_type=peft_task_type(model))
    from bench.cell import progress

    where = "planning: " if model.device.type == "meta" else "loading: "
    try:  # ~6 s for 13B's 280 targets even on meta: the phase speaks up past 5 s
        with progress.phase(f"{where}adding LoRA adapters (peft)"):
            # On the meta device (planning) adapters are created without initialising real memory.
            return get_peft_model(model, lora, low_cpu_mem_usage=model.device.type == "meta")
    except ValueError as exc:
        if "lora_dropout" in str(exc):  # peft's ParamWrapper: fused MoE experts (Mixtral in transformers 5)
            raise ConfigError(f"method.dropout must be 0 when target_modules reach {cfg.model.name!r}'s fused "
                              f"expert weights (peft can't apply dropout there; got {m.dropout})") from None
        if "not found" in str(exc) or "target" in str(exc).lower():
            raise ConfigError(f"method.target_modules={m.target_modules!r} matches no module of model "
                              f"{cfg.model.name!r} (Llama-style names: q_proj, k_proj, v_proj, o_proj, "
                              f"gate_proj, up_proj, down_proj)") from None
        raise


def wrap(model: torch.nn.Module, cfg: RunConfig) -> torch.nn.Module:
    if cfg.train.gradient_checkpointing:
        enable_checkpointing(model, input_grads=True)
    return add_adapters(model, cfg)


def make_optimizer(model: torch.nn.Module, cfg: RunConfig) -> Any:
    return make_adamw(model.parameters(), cfg.method.optimizer, cfg.method.lr, cfg.method.weight_decay)
