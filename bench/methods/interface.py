"""The method interface: what one fine-tuning method declares in its own module (bench/methods/<name>.py).

A module defines `METHOD = SomeMethod()`; bench.methods finds it by listing this folder, so adding a method is
one module plus conf/method/<name>.yaml. Everything here is importable without torch: bench.config and the sweep
process bind the config dataclasses, and only the hooks that build or train a model import torch (inside them).

A method that gives no estimator terms (`terms` returns None) can still run; bench.estimate refuses it by name
rather than predicting it as some other method."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import torch

    from bench.config import RunConfig
    from bench.estimate.activations import Flow
    from bench.estimate.arch import Arch
    from bench.estimate.inventory import Inventory


class ConfigError(ValueError):
    """Bad user input: reported as one line naming the key, exit status 2, no record written."""


def name_list(names: str | list[str]) -> list[str]:
    items = names.split(",") if isinstance(names, str) else names
    return [n.strip() for n in items if n.strip()]


@dataclass
class MethodConfig:
    """The `method` group's keys every method takes; a method's own dataclass adds and validates the rest."""
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


@dataclass(frozen=True)
class Terms:
    """What bench.estimate needs from a method beyond the wrapped meta model it builds (which already shows
    which parameters train, their dtypes and the adapters)."""
    trains_base: bool  # every base weight gets a gradient: 6N FLOPs/token, trained linears' inputs saved
    fp32_master: bool = False  # fp32 weights under 16-bit autocast: cast copies saved, fp32 residual stream
    optimizer_library: str = "torch"  # galore-torch: single-tensor AdamW, its own Adafactor
    projection_rank: int | None = None  # GaLore: rank of the projected gradients' optimizer states
    # CPU runtime (bench/estimate/README.md): RSS growth of a 1-layer cell, and glibc's retention of small tensors
    cpu_runtime_bytes: int = 0
    cpu_retention: float = 0.0


class Method:
    """One fine-tuning method. Capability flags are class attributes; the hooks have the neutral default
    (no projection, no extra activations or FLOPs) so a variant overrides only what it changes."""
    name: ClassVar[str]
    config: ClassVar[type[MethodConfig]]
    quantized_base: ClassVar[bool] = False
    trains_all_weights: ClassVar[bool] = False
    supports_ddp: ClassVar[bool] = True
    supports_fsdp: ClassVar[bool] = True
    why_not_fsdp: ClassVar[str] = "with fsdp is not supported"  # the refusal after "parallel: <name> "; {bits}
    supports_layerwise: ClassVar[bool] = False  # steps inside backward (no DDP: before gradients are averaged)
    needs_gpu: ClassVar[bool] = False

    # --- training (bench.cell): these import torch and the method's library inside
    def weights_dtype(self, cfg: RunConfig, compute: torch.dtype) -> torch.dtype:
        return compute

    def autocast_dtype(self, cfg: RunConfig, compute: torch.dtype) -> torch.dtype | None:
        return None

    def wrap(self, model: torch.nn.Module, cfg: RunConfig) -> torch.nn.Module:
        raise NotImplementedError

    def make_optimizer(self, model: torch.nn.Module, cfg: RunConfig) -> Any:
        from bench.methods.base import make_adamw

        return make_adamw(model.parameters(), cfg.method.optimizer, cfg.method.lr, cfg.method.weight_decay)

    # --- estimation (bench.estimate): no torch work beyond the meta model
    def terms(self, cfg: RunConfig) -> Terms | None:
        """Each method class declares its own (a subclass too, if only as `super().terms(cfg)`): bench.estimate
        refuses a method whose class does not, so a new variant is never estimated as its parent."""
        return None

    def projected_params(self, model: torch.nn.Module, cfg: RunConfig) -> list[Any]:
        return []  # parameters whose gradients the optimizer projects (GaLore)

    def extra_layer_bytes(self, inv: Inventory, flow: Flow, dropout: float) -> float:
        return 0.0  # saved for backward per token per decoder layer, beyond the base model and LoRA adapters

    def extra_fixed_bytes(self, inv: Inventory, flow: Flow, dropout: float) -> int:
        return 0  # saved per decoder layer whatever the token count (e.g. weight copies)

    def transient_bytes(self, inv: Inventory) -> int:
        return 0  # the largest extra temporary of one layer's forward or backward

    def extra_flops(self, cfg: RunConfig, arch: Arch, inv: Inventory, tokens: int, passes: int) -> float:
        return 0.0  # hardware FLOPs per optimizer step beyond the model's (not in MFU); passes = forward passes

    def optimizer_flops(self, cfg: RunConfig, inv: Inventory) -> float:
        return 0.0
