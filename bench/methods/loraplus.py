"""LoRA+ (Hayou, Ghosh and Yu 2024, "LoRA+: Efficient Low Rank Adaptation of Large Models"; peft
`create_loraplus_optimizer`): LoRA's adapters and forward, trained with a larger learning rate for B than for A,
lr_B = lr_ratio x lr_A (the authors recommend a ratio of 2^4 = 16, and an lr_A about half of LoRA's). Adapters on
embedding layers get their own small rate (`lr_embedding`, peft's default 1e-6).

A delta of LoRA: only the optimizer's parameter groups change (peft's groups: A; embedding adapters; B and 1-D
trainables with decay; B without), with any of LoRA's optimizer kinds (adamw, adamw8bit, paged ...)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bench.methods.interface import ConfigError
from bench.methods.lora import Lora, LoraConfig

if TYPE_CHECKING:
    import torch

    from bench.config import RunConfig
    from bench.methods.interface import Terms


@dataclass
class LoraplusConfig(LoraConfig):
    lr: float = 1e-4  # lr_A: half of LoRA's 2e-4, as the authors advise with the ratio
    lr_ratio: float = 16.0  # lr_B / lr_A
    lr_embedding: float = 1e-6  # adapters on embedding layers (peft's default)

    def validate(self) -> None:
        super().validate()
        if self.lr_ratio < 1:
            raise ConfigError(f"method.lr_ratio must be >= 1 (lr_B / lr_A; got {self.lr_ratio})")
        if self.lr_embedding <= 0:
            raise ConfigError(f"method.lr_embedding must be > 0 (got {self.lr_embedding})")


class Loraplus(Lora):
    name = "loraplus"
    config = LoraplusConfig

    def make_optimizer(self, model: torch.nn.Module, cfg: RunConfig) -> Any:
        from peft.optimizers import create_loraplus_optimizer

        from bench.methods.base import adamw_class, trainable

        m = cfg.method
        trainable(model.parameters())  # none: the same one-line refusal as every other method
        return create_loraplus_optimizer(model, adamw_class(m.optimizer), lr=m.lr, loraplus_lr_ratio=m.lr_ratio,
                                         loraplus_lr_embedding=m.lr_embedding, loraplus_weight_decay=m.weight_decay)

    def terms(self, cfg: RunConfig) -> Terms:
        # exact: the same parameters and optimizer states as LoRA, split into groups that differ in lr only
        return super().terms(cfg)


METHOD = Loraplus()
