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


def refuse_fused_experts(model: torch.nn.Module, cfg: RunConfig, quantiser: str) -> None:
    """A quantised-base method quantises nn.Linear layers only. transformers 5 keeps a mixture of experts' weights
    (Mixtral, Qwen-MoE) as fused 3-D tensors, which bitsandbytes, HQQ and torchao's loaders leave in 16 bits: the
    cell would measure most of the model unquantised under the method's name, so it is refused (one line, exit 2).
    Called on the meta model too, so the sweep's precheck, the cell's plan and bench.estimate refuse it alike."""
    fused = [p for p in model.parameters() if p.dim() >= 3]
    if fused:
        n, total = sum(p.numel() for p in fused), sum(p.numel() for p in model.parameters())
        raise ConfigError(f"method: {cfg.method.name} quantises nn.Linear layers only; model {cfg.model.name!r} holds "
                          f"{n / 1e9:.2f}B of its {total / 1e9:.2f}B parameters in fused 3-D expert tensors, which "
                          f"{quantiser} would leave in 16 bits, so this would measure a different method (method=lora "
                          f"trains the same adapters over a 16-bit base)")


def random_linear(child: torch.nn.Linear, device: str, std: float) -> torch.nn.Linear:
    """A real nn.Linear on `device` in place of a meta one, random-initialised as bench.cell.models does: what a
    quantised-base method's quantized_linear hook quantises, one layer at a time."""
    import torch

    from bench.cell.models import random_tensor

    weight = random_tensor(child.weight.shape, child.weight.dtype, device, std, "weight")
    new = torch.nn.Linear(child.in_features, child.out_features, bias=child.bias is not None, device="meta")
    new.weight = torch.nn.Parameter(weight, requires_grad=False)
    if child.bias is not None:
        new.bias = torch.nn.Parameter(random_tensor(child.bias.shape, child.bias.dtype, device, std, "bias"),
                                      requires_grad=False)
    return new


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

        refuse_fused_experts(model, cfg, "bitsandbytes")
        checkpointing = cfg.method.gradient_checkpointing or cfg.train.gradient_checkpointing
        if model.device.type != "meta":
            from bench.cell import progress

            with progress.phase("loading: preparing the quantised base (peft kbit: norms and embeddings to fp32)"):
                model = prepare_model_for_kbit_training(
                    model, use_gradient_checkpointing=checkpointing,
                    gradient_checkpointing_kwargs={"use_reentrant": False})
        return add_adapters(model, cfg, **self.peft_variant)

    def terms(self, cfg: RunConfig) -> Terms:
        arch = cfg.model.arch or {}
        if arch.get("num_local_experts") or arch.get("num_experts"):  # bench.estimate may build no meta model
            raise ConfigError(f"method: {self.name} quantises nn.Linear layers only; model {cfg.model.name!r} keeps "
                              f"its experts in fused 3-D tensors, which bitsandbytes would leave in 16 bits, so this "
                              f"would predict a different method (method=lora: the same adapters, 16-bit base)")
        # Linear4bit computes in method.compute_dtype itself (no autocast); CPU runtime as in full.py
        return Terms(trains_base=False, cpu_runtime_bytes=28_200_000, cpu_retention=2.306)


METHOD = QLora()
