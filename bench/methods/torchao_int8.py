"""torchao int8 weight-only base + LoRA: the adapters of QLoRA over a frozen base whose nn.Linear weights torchao
stores as int8 with one scale per output row (torchao's Int8WeightOnlyConfig, its defaults), dequantised in the
forward pass; peft wraps each such layer in its TorchaoLoraLinear (peft documents int8 weight-only as the torchao
scheme it trains on). Runs on CPU and GPU (torchao's Python path; its CUDA extensions are not needed).

The base is built as bench.cell.models builds a bitsandbytes one: random init makes and quantises one layer at a
time (`quantized_linear`), a pretrained model loads through transformers' TorchAoConfig
(`hf_quantization_config`). No kbit preparation: norms and embeddings stay in the compute dtype. bench.estimate
does not model torchao's tensors (an int8 tensor subclass with its scales; the dequantised copy per matmul), so
`terms` gives none and the estimator refuses the method by name."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from bench.methods.interface import ConfigError
from bench.methods.lora import Lora, LoraConfig, add_adapters
from bench.methods.qlora import random_linear, refuse_fused_experts

if TYPE_CHECKING:
    import torch

    from bench.config import RunConfig


@dataclass
class TorchaoInt8Config(LoraConfig):
    # QLoRA's adapters and optimizer (Dettmers et al. 2023), so the row differs from qlora8 (LLM.int8) in the
    # quantiser only; torchao's Int8WeightOnlyConfig defaults: symmetric int8, one scale per output row
    rank: int = 64
    alpha: float = 16.0
    dropout: float = 0.1
    target_modules: str | list[str] = "all-linear"
    base_bits: int = 8
    optimizer: str = "paged_adamw"
    gradient_checkpointing: bool = True

    QUANTIZED_BASE: ClassVar[bool] = True

    def validate(self) -> None:
        super().validate()
        if self.base_bits != 8:
            raise ConfigError(f"method.base_bits must be 8 for torchao_int8 (int8 weight-only; got {self.base_bits})")


def import_torchao() -> Any:
    import logging

    try:  # its optional CUDA extensions log a line each when they don't load (a CPU build of torch)
        logging.getLogger("torchao").setLevel(logging.ERROR)
        from torchao import quantization
    except ImportError as exc:
        raise RuntimeError("method=torchao_int8 needs torchao: pip install 'finetune-bench[lowbit]' (README: "
                           "install torch first)") from exc
    return quantization


def int8_config() -> Any:
    # set_inductor_config=False: nothing here is compiled; torchao would otherwise change inductor's global flags
    return import_torchao().Int8WeightOnlyConfig(set_inductor_config=False)


def is_int8_weight(module: torch.nn.Module) -> bool:
    return type(getattr(module, "weight", None)).__name__ == "Int8Tensor"


class TorchaoInt8(Lora):
    name = "torchao_int8"
    config = TorchaoInt8Config
    quantized_base = True
    supports_fsdp = False
    why_not_fsdp = "(torchao int8 base) with fsdp is not supported by bench yet"

    def hf_quantization_config(self, cfg: RunConfig) -> Any:
        from transformers import TorchAoConfig

        from bench.cell.models import HEAD_MODULES

        return TorchAoConfig(int8_config(), modules_to_not_convert=list(HEAD_MODULES))

    def quantized_linear(self, child: torch.nn.Linear, cfg: RunConfig, device: str, std: float) -> torch.nn.Module:
        linear = random_linear(child, device, std)
        import_torchao().quantize_(linear, int8_config())  # the module itself matches torchao's default filter
        linear.weight.bench_storage = "int8-torchao"  # bench.trackers.params' label
        return linear

    def wrap(self, model: torch.nn.Module, cfg: RunConfig) -> torch.nn.Module:
        from bench.methods.base import enable_checkpointing

        refuse_fused_experts(model, cfg, "torchao")
        if model.device.type != "meta" and not any(is_int8_weight(m) for m in model.modules()):
            raise RuntimeError("method=torchao_int8: the base has no torchao int8 weight (bench.cell.models must "
                               "build it through Method.quantized_linear / hf_quantization_config)")
        if cfg.method.gradient_checkpointing or cfg.train.gradient_checkpointing:
            enable_checkpointing(model, input_grads=True)
        return add_adapters(model, cfg)

    def terms(self, cfg: RunConfig) -> None:
        return None  # not modelled: bench.estimate refuses torchao_int8 by name (module docstring)


METHOD = TorchaoInt8()
