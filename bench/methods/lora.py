"""LoRA: frozen base in the run's precision, trainable low-rank adapters (peft) on the target modules."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from bench.methods.interface import ConfigError, Method, MethodConfig, Terms, name_list

if TYPE_CHECKING:
    import torch

    from bench.config import RunConfig

LORA_PRESETS = {
    "qv": ["q_proj", "v_proj"],
    "attention": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "all-linear": ["all-linear"],
}


@dataclass
class LoraConfig(MethodConfig):
    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.05
    # preset (qv, attention, all-linear), a list of module names ([q_proj,down_proj]) or "q_proj,down_proj"
    target_modules: str | list[str] = "qv"
    bias: str = "none"

    OPTIMIZERS: ClassVar[tuple[str, ...]] = ("adamw", "adamw8bit", "paged_adamw", "paged_adamw8bit")

    def validate(self) -> None:
        if self.rank <= 0:
            raise ConfigError(f"method.rank must be > 0 (got {self.rank})")
        if self.alpha <= 0:
            raise ConfigError(f"method.alpha must be > 0 (got {self.alpha})")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"method.dropout must be in [0, 1) (got {self.dropout})")
        if self.bias not in ("none", "all", "lora_only"):
            raise ConfigError(f"method.bias must be none, all or lora_only (got {self.bias!r})")
        if not self.target_module_list():
            raise ConfigError("method.target_modules is empty")
        super().validate()

    def target_module_list(self) -> list[str]:
        if isinstance(self.target_modules, str) and self.target_modules in LORA_PRESETS:
            return list(LORA_PRESETS[self.target_modules])
        return name_list(self.target_modules)


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


def add_adapters(model: torch.nn.Module, cfg: RunConfig, **variant: Any) -> torch.nn.Module:
    """`variant`: extra peft LoraConfig keys of a LoRA variant (DoRA: use_dora=True)."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as exc:
        raise RuntimeError("LoRA needs peft: pip install 'peft>=0.17'") from exc
    m = cfg.method
    lora = LoraConfig(r=m.rank, lora_alpha=m.alpha, lora_dropout=m.dropout, bias=m.bias,
                      target_modules=model_targets(model, cfg), task_type=peft_task_type(model), **variant)
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


class Lora(Method):
    name = "lora"
    config = LoraConfig
    peft_variant: ClassVar[dict[str, Any]] = {}  # LoraConfig keys a variant sets (DoRA: use_dora)

    def wrap(self, model: torch.nn.Module, cfg: RunConfig) -> torch.nn.Module:
        from bench.methods.base import enable_checkpointing

        if cfg.train.gradient_checkpointing:
            enable_checkpointing(model, input_grads=True)
        return add_adapters(model, cfg, **self.peft_variant)

    def terms(self, cfg: RunConfig) -> Terms:
        # the adapters themselves are rows of the meta model's inventory; CPU runtime as in full.py
        return Terms(trains_base=False, cpu_runtime_bytes=13_700_000, cpu_retention=1.043)


METHOD = Lora()
