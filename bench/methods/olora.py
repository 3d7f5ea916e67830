"""OLoRA (Büyükakyüz 2024, "OLoRA: Orthonormal Low-Rank Adaptation of Large Language Models"; peft
`init_lora_weights="olora"`): LoRA whose adapters start from the QR decomposition of each adapted weight,
W = QR: B = Q[:, :r], A = R[:r], and the base weight becomes W - s B A, so the model's output is unchanged at
step 0 while the adapters start in the weight's own leading subspace.

A delta of LoRA: what changes is the initialisation, done once at load (one fp32 QR per adapted weight, one
weight at a time); training runs LoRA's forward and backward on the modified base."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from bench.methods.lora import Lora, LoraConfig

if TYPE_CHECKING:
    from bench.config import RunConfig
    from bench.methods.interface import Terms


class OloraConfig(LoraConfig):
    """LoRA's keys and defaults (conf/method/olora.yaml)."""


class Olora(Lora):
    name = "olora"
    config = OloraConfig
    peft_variant: ClassVar[dict[str, Any]] = {"init_lora_weights": "olora"}

    def terms(self, cfg: RunConfig) -> Terms:
        # exact for training: the base keeps its dtype and shape (W - sBA written back in place), the adapters
        # their shapes; the QR at load is a transient of one weight, freed before training starts
        return super().terms(cfg)


METHOD = Olora()
