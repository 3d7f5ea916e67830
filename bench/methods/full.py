"""Full fine-tuning: every weight trained.
mixed precision: fp32 weights/grads/optimizer states, forward and backward under autocast;
pure: everything held in the run's precision (bf16 on CUDA by default)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from bench.methods.interface import ConfigError, Method, MethodConfig, Terms

if TYPE_CHECKING:
    import torch

    from bench.config import RunConfig


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


class Full(Method):
    name = "full"
    config = FullConfig
    trains_all_weights = True

    def weights_dtype(self, cfg: RunConfig, compute: torch.dtype) -> torch.dtype:
        import torch

        return torch.float32 if cfg.method.precision == "mixed" else compute

    def autocast_dtype(self, cfg: RunConfig, compute: torch.dtype) -> torch.dtype | None:
        import torch

        return compute if cfg.method.precision == "mixed" and compute != torch.float32 else None

    def wrap(self, model: torch.nn.Module, cfg: RunConfig) -> torch.nn.Module:
        from bench.methods.base import enable_checkpointing

        for param in model.parameters():
            param.requires_grad_(True)
        if cfg.train.gradient_checkpointing:
            enable_checkpointing(model)
        return model

    def terms(self, cfg: RunConfig) -> Terms:
        # CPU runtime: measured on a 1-layer cell and fitted on `tiny` (bench/estimate/README.md)
        return Terms(trains_base=True, fp32_master=cfg.method.precision == "mixed",
                     cpu_runtime_bytes=14_500_000, cpu_retention=0.437)


METHOD = Full()
