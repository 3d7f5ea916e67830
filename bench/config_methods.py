"""Typed configuration of the fine-tuning methods (the `method` group): one dataclass per method, each
validating its own keys. Defaults follow the methods' papers; conf/method/*.yaml states them again."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

METHODS = ("full", "lora", "qlora", "galore")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
LORA_PRESETS = {
    "qv": ["q_proj", "v_proj"],
    "attention": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "all-linear": ["all-linear"],
}


class ConfigError(ValueError):
    """Bad user input: reported as one line naming the key, exit status 2, no record written."""


def _name_list(names: str | list[str]) -> list[str]:
    items = names.split(",") if isinstance(names, str) else names
    return [n.strip() for n in items if n.strip()]


@dataclass
class MethodConfig:
    name: str
    lr: float = 2e-4
    weight_decay: float = 0.0
    optimizer: str = "adamw"
    base_bits: int = 16  # 16 = unquantised base; 4 or 8 = bitsandbytes-quantised frozen base

    OPTIMIZERS: ClassVar[tuple[str, ...]] = ("adamw",)
    QUANTIZED_BASE: ClassVar[bool] = False

    def validate(self) -> None:
        if self.lr <= 0:
            raise ConfigError(f"method.lr must be > 0 (got {self.lr})")
        if self.weight_decay < 0:
            raise ConfigError(f"method.weight_decay must be >= 0 (got {self.weight_decay})")
        if self.optimizer not in self.OPTIMIZERS:
            raise ConfigError(f"method.optimizer must be one of {', '.join(self.OPTIMIZERS)} for "
                              f"{self.name} (got {self.optimizer!r})")
        if self.base_bits != 16 and not self.QUANTIZED_BASE:
            raise ConfigError(f"method.base_bits: {self.name} updates the base weights, which a "
                              f"{self.base_bits}-bit base can't hold; use method=qlora (got {self.base_bits})")


@dataclass
class FullConfig(MethodConfig):
    lr: float = 2e-5
    rank: int | None = None  # accepted so rank sweeps compose; full fine-tuning has no rank (always null)
    # mixed: fp32 master weights + autocast in train.precision (16 bytes/param with AdamW);
    # pure: weights, grads and optimizer states all in train.precision.
    precision: str = "mixed"

    OPTIMIZERS: ClassVar[tuple[str, ...]] = ("adamw", "adamw8bit")

    def validate(self) -> None:
        super().validate()
        self.rank = None  # `method.rank=8,16` over full is one cell: dedupe by the resolved config
        if self.precision not in ("mixed", "pure"):
            raise ConfigError(f"method.precision must be mixed or pure (got {self.precision!r})")


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
        return _name_list(self.target_modules)


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


@dataclass
class GaloreConfig(MethodConfig):
    # Zhao et al. 2024 reference settings (galore-torch README): rank 128, gap 200, scale 0.25, std.
    lr: float = 1e-5
    rank: int = 128
    update_proj_gap: int = 200
    scale: float = 0.25
    proj_type: str = "std"
    # substrings of module names whose 2-D linear weights are projected: Llama-style blocks (self_attn, mlp)
    # and BERT-style ones (attention, intermediate, output); embeddings and task heads get plain AdamW
    target_modules: str | list[str] = "attn,mlp,attention,intermediate,output"
    layerwise: bool = False  # per-parameter optimizer steps inside backward (frees grads early)

    OPTIMIZERS: ClassVar[tuple[str, ...]] = ("adamw", "adamw8bit", "adafactor")

    def validate(self) -> None:
        if self.base_bits != 16:
            raise ConfigError(f"method.base_bits: GaLore projects the gradients of full-precision weights; "
                              f"it can't train a {self.base_bits}-bit base (got {self.base_bits})")
        super().validate()
        if self.rank <= 0:
            raise ConfigError(f"method.rank must be > 0 (got {self.rank})")
        if self.scale <= 0:
            raise ConfigError(f"method.scale must be > 0 (got {self.scale})")
        if self.update_proj_gap <= 0:
            raise ConfigError(f"method.update_proj_gap must be > 0 (got {self.update_proj_gap})")
        if self.proj_type not in ("std", "reverse_std", "left", "right", "full"):
            raise ConfigError(f"method.proj_type must be std, reverse_std, left, right or full "
                              f"(got {self.proj_type!r})")
        if not self.target_module_list():
            raise ConfigError("method.target_modules is empty")

    def target_module_list(self) -> list[str]:
        return _name_list(self.target_modules)


METHOD_CLASSES: dict[str, type[MethodConfig]] = {
    "full": FullConfig, "lora": LoraConfig, "qlora": QLoraConfig, "galore": GaloreConfig,
}
