"""HQQ-LoRA: LoRA adapters over a frozen base quantised by HQQ (Badri & Shaji 2023, "Half-Quadratic Quantization of
Large Machine Learning Models", mobiusml/hqq), to 2, 3, 4 or 8 bits without calibration data; peft wraps each
HQQLinear in its HqqLoraLinear. `method=hqq` is the 2-bit base, `method=hqq3` the 3-bit one.

The base: each nn.Linear of the blocks (never the task head) becomes an HQQLinear holding the packed weights
(W_q) and, per group of `group_size` values along `axis`, a scale and a zero point in the compute dtype. Random
init quantises one layer at a time as it is made (`quantized_linear`, called by bench.cell.models like the
bitsandbytes path), so no 16-bit copy of the model ever exists; a pretrained model loads through transformers'
HqqConfig (`hf_quantization_config`), which transformers allows on a GPU only: on a CPU that cell is refused with
one line. Forward and backward run on HQQ's pure-PyTorch backend (dequantise, then matmul), on CPU and GPU alike.

Unlike QLoRA there is no kbit preparation: norms and embeddings stay in the compute dtype (HQQ's own peft
recipe). bench.estimate does not model the HQQ base (its bytes per weight and dequantised temporaries are not in
the estimator's tables), so `terms` gives none and the estimator refuses the method by name."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from bench.methods.interface import ConfigError
from bench.methods.lora import Lora, LoraConfig, add_adapters
from bench.methods.qlora import random_linear, refuse_fused_experts

if TYPE_CHECKING:
    import torch

    from bench.config import RunConfig

HQQ_BITS = (2, 3, 4, 8)  # hqq.core.quantize.Quantizer.SUPPORTED_BITS (1-bit is not packed by HQQLinear)


@dataclass
class HqqLoraConfig(LoraConfig):
    # The adapters and optimizer are QLoRA's (Dettmers et al. 2023: r=64, alpha 16, dropout 0.1, all linear layers,
    # lr 2e-4, paged AdamW, gradient checkpointing), so the row differs from QLoRA's in the base only. The base is
    # HQQ's own example setting (mobiusml/hqq README and examples): 2-bit groups of 16, 3- and 4-bit groups of 64,
    # axis 1 (groups along the input dimension, as HQQLinear's kernels expect).
    rank: int = 64
    alpha: float = 16.0
    dropout: float = 0.1
    target_modules: str | list[str] = "all-linear"
    base_bits: int = 2
    group_size: int = 16
    axis: int = 1
    optimizer: str = "paged_adamw"
    gradient_checkpointing: bool = True

    QUANTIZED_BASE: ClassVar[bool] = True

    def validate(self) -> None:
        super().validate()
        if self.base_bits not in HQQ_BITS:
            raise ConfigError(f"method.base_bits must be one of {', '.join(map(str, HQQ_BITS))} for hqq "
                              f"(got {self.base_bits})")
        if self.group_size <= 0 or self.group_size % 8:
            raise ConfigError(f"method.group_size must be a positive multiple of 8 (got {self.group_size})")
        if self.axis not in (0, 1):
            raise ConfigError(f"method.axis must be 0 or 1 (got {self.axis})")


def import_hqq() -> Any:
    try:
        from hqq.core import quantize
    except ImportError as exc:
        raise RuntimeError("method=hqq needs hqq: pip install 'finetune-bench[lowbit]' (README: install torch "
                           "first)") from exc
    return quantize


def quant_config(cfg: RunConfig) -> dict[str, Any]:
    m = cfg.method
    return import_hqq().BaseQuantizeConfig(nbits=m.base_bits, group_size=m.group_size, axis=m.axis)


def hqq_linears(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    return {name: mod for name, mod in model.named_modules() if type(mod).__name__ == "HQQLinear"}


def quantised_targets(model: torch.nn.Module, cfg: RunConfig, quantised: list[str]) -> RunConfig:
    """peft resolves `all-linear` to nn.Linear layers only: name the quantised layers' leaves instead."""
    import dataclasses

    if cfg.method.target_module_list() != ["all-linear"]:
        return cfg
    leaves = sorted({name.rsplit(".", 1)[-1] for name in quantised})
    return dataclasses.replace(cfg, method=dataclasses.replace(cfg.method, target_modules=leaves))


class Hqq(Lora):
    name = "hqq"
    config = HqqLoraConfig
    quantized_base = True
    supports_fsdp = False
    why_not_fsdp = "({bits}-bit HQQ base) with fsdp is not supported (HQQLinear keeps its scales outside parameters)"
    storage: ClassVar[str] = "hqq"  # the params tracker's label prefix: hqq2-g16

    def autocast_dtype(self, cfg: RunConfig, compute: torch.dtype) -> torch.dtype | None:
        # the cell calls this before loading (bench.cell.runner.setup), bench.estimate never (see loftq.py)
        if cfg.model.pretrained:
            from bench.methods.base import refuse_without_cuda

            refuse_without_cuda(cfg, "transformers' HqqConfig refuses a CPU device map; a random-init model "
                                     "(model.pretrained=false) quantises on the CPU")
        return None

    def hf_quantization_config(self, cfg: RunConfig) -> Any:
        """A pretrained base: transformers quantises each nn.Linear as it loads (bench.cell.models)."""
        from transformers import HqqConfig as TransformersHqqConfig

        from bench.cell.models import HEAD_MODULES

        import_hqq()
        m = cfg.method
        return TransformersHqqConfig(nbits=m.base_bits, group_size=m.group_size, axis=m.axis,
                                     skip_modules=list(HEAD_MODULES))

    def quantized_linear(self, child: torch.nn.Linear, cfg: RunConfig, device: str, std: float) -> torch.nn.Module:
        """A random-init layer made on `device` and quantised at once (its 16-bit weight freed)."""
        quantize = import_hqq()
        linear = random_linear(child, device, std)
        new = quantize.HQQLinear(linear, quant_config(cfg), del_orig=True, compute_dtype=child.weight.dtype,
                                 device=device)
        m = cfg.method
        # bench.trackers.params counts W_q as the values it packs (meta["shape"]), labelled hqq<bits>-g<group>
        new.W_q.bench_logical_shape = tuple(new.meta["shape"])
        new.W_q.bench_storage = f"{self.storage}{m.base_bits}-g{m.group_size}"
        return new

    def wrap(self, model: torch.nn.Module, cfg: RunConfig) -> torch.nn.Module:
        from bench.methods.base import enable_checkpointing

        refuse_fused_experts(model, cfg, "HQQ")
        if model.device.type != "meta":
            quantised = hqq_linears(model)
            if not quantised:  # never train a base quantised some other way under this method's name
                raise RuntimeError("method=hqq: the base has no HQQLinear layer (bench.cell.models must build it "
                                   "through Method.quantized_linear / hf_quantization_config)")
            cfg = quantised_targets(model, cfg, list(quantised))
        if cfg.method.gradient_checkpointing or cfg.train.gradient_checkpointing:
            enable_checkpointing(model, input_grads=True)
        return add_adapters(model, cfg)

    def terms(self, cfg: RunConfig) -> None:
        return None  # not modelled: bench.estimate refuses hqq by name (module docstring)


METHOD = Hqq()
