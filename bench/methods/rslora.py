"""rsLoRA (Kalajdzievski 2023, "A Rank Stabilization Scaling Factor for Fine-Tuning with LoRA"; peft
`use_rslora=True`): LoRA whose adapter output is scaled by alpha / sqrt(r) instead of alpha / r, so the update's
size does not shrink as the rank grows (the paper's case for it is ranks well above 8).

A delta of LoRA: the same keys, adapters, optimizer and memory; only a scalar in each adapter's forward changes."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from bench.methods.lora import Lora, LoraConfig

if TYPE_CHECKING:
    from bench.config import RunConfig
    from bench.methods.interface import Terms


class RsloraConfig(LoraConfig):
    """LoRA's keys and defaults (conf/method/rslora.yaml): the two methods differ only in the scaling."""


class Rslora(Lora):
    name = "rslora"
    config = RsloraConfig
    peft_variant: ClassVar[dict[str, Any]] = {"use_rslora": True}

    def terms(self, cfg: RunConfig) -> Terms:
        # exact: the scaling is one Python float per adapter (peft's `scaling` dict); parameters, gradients,
        # optimizer states, saved activations and FLOPs are LoRA's at the same rank and targets
        return super().terms(cfg)


METHOD = Rslora()
