"""QLoRA: LoRA adapters over a frozen bitsandbytes 4-bit (NF4/FP4, optional double quantisation) or
8-bit base, prepared with peft's prepare_model_for_kbit_training (norms and embeddings upcast to fp32,
gradient checkpointing). The quantised base is built by bench.cell.models (method.base_bits)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from bench.methods.interface import ConfigError, Terms
from bench.methods.lora import Lora, LoraConfig, add_adapters

if TYPE_CHECKING:
    import torch

    from bench.config import RunConfig


@dataclass
class QLoraConfig(LoraConfig):
    # Dettmers et al. 2023: r=64, alpha=16, dropout 0.1 (<=13B), all linear layers, lr 2e-4,
    # NF4 + double quantisation, bf16 compute, paged AdamW, gradient checkpointing.
    rank: int = 64
    alpha: float = 16.0
    dropout: float = 0.1
    target_modules: str | list[str] = "all-linear"
    base_bits: int = 4
    quant_type: str = "nf4"
    double_quant: bool = True
    compute_dtype: str = "bf16"
    optimizer: str = "paged_adamw"
    gradient_checkpointing: bool = True

    QUANTIZED_BASE: ClassVar[bool] = True

    def validate(self) -> None:
        super().validate()
        if self.base_bits not in (4, 8):
            raise ConfigError(f"method.base_bits must be 4 or 8 for qlora (got {self.base_bits})")
        if self.quant_type not in ("nf4", "fp4"):
            raise ConfigError(f"method.quant_type must be nf4 or fp4 (got {self.quant_type!r})")
        if self.compute_dtype not in ("bf16", "fp16", "fp32"):
            raise ConfigError(f"method.compute_dtype must be bf16, fp16 or fp32 (got {self.compute_dtype!r})")


class QLora(Lora):
    name = "qlora"
    config = QLoraConfig
    quantized_base = True
    supports_fsdp = False
    why_not_fsdp = ("({bits}-bit bitsandbytes base) with fsdp is not supported yet (bitsandbytes' quantised params "
                    "need bnb_4bit_quant_storage and FSDP1-style flat params)")
    needs_gpu = False  # bitsandbytes has a CPU backend (tests/test_methods_cpu.py trains it)

    def weights_dtype(self, cfg: RunConfig, compute: torch.dtype) -> torch.dtype:
        from bench.cell.models import DTYPES

        return DTYPES[cfg.method.compute_dtype]  # the unquantised parts before kbit preparation

    def wrap(self, model: torch.nn.Module, cfg: RunConfig) -> torch.nn.Module:
        from peft import prepare_model_for_kbit_training

        checkpointing = cfg.method.gradient_checkpointing or cfg.train.gradient_checkpointing
        if model.device.type != "meta":
            from bench.cell import progress

            with progress.phase("loading: preparing the quantised base (peft kbit: norms and embeddings to fp32)"):
                model = prepare_model_for_kbit_training(
                    model, use_gradient_checkpointing=checkpointing,
                    gradient_checkpointing_kwargs={"use_reentrant": False})
        return add_adapters(model, cfg, **self.peft_variant)

    def terms(self, cfg: RunConfig) -> Terms:
        # Linear4bit computes in method.compute_dtype itself (no autocast); CPU runtime as in full.py
        return Terms(trains_base=False, cpu_runtime_bytes=28_200_000, cpu_retention=2.306)


METHOD = QLora()
