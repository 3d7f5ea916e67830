"""LoftQ (Li et al. 2023, "LoftQ: LoRA-Fine-Tuning-Aware Quantization for Large Language Models"; peft
`init_lora_weights="loftq"` with a LoftQConfig): the base weight W is replaced by its NF4 (or int8)
quantisation Q and the adapters start from the rank-r SVD of the residual W - Q, alternating `loftq_iter` times,
so Q + BA is closer to W than a quantised base with LoRA's zero-start adapters.

GPU-only: peft 0.21's loftq_init computes on "cuda" (or "xpu") whatever the weight's device, with bitsandbytes'
quantiser. The cell refuses any other device with one line before anything is loaded.

What is measured: peft's documented route, where the base stays in the run's 16-bit dtype holding the dequantised
Q (the adapters are what LoftQ initialises). The 4-bit memory of QLoRA needs that residual base saved and loaded
again quantised (peft's LoftQ recipe); bench does not do that step, so this cell has LoRA's memory at LoftQ's
initialisation, and its quality is LoftQ's."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bench.methods.interface import ConfigError
from bench.methods.lora import Lora, LoraConfig, add_adapters

if TYPE_CHECKING:
    import torch

    from bench.config import RunConfig
    from bench.methods.interface import Terms


@dataclass
class LoftqConfig(LoraConfig):
    # the LoftQ repository: 4-bit NF4, 5 alternating steps; its published Llama-2 adapters are rank 64 on every
    # linear layer; QLoRA's alpha 16 and dropout 0.1 around them
    rank: int = 64
    alpha: float = 16.0
    dropout: float = 0.1
    target_modules: str | list[str] = "all-linear"
    loftq_bits: int = 4  # 4 (NF4) | 8 (int8)
    loftq_iter: int = 5

    def validate(self) -> None:
        super().validate()
        if self.loftq_bits not in (4, 8):
            raise ConfigError(f"method.loftq_bits must be 4 or 8 (got {self.loftq_bits})")
        if self.loftq_iter < 1:
            raise ConfigError(f"method.loftq_iter must be >= 1 (got {self.loftq_iter})")


class Loftq(Lora):
    name = "loftq"
    config = LoftqConfig
    needs_gpu = True

    def autocast_dtype(self, cfg: RunConfig, compute: torch.dtype) -> torch.dtype | None:
        # The refusal lives in the first hook a cell calls that bench.estimate does not (the estimator predicts a
        # GPU cell from any host, and both wrap the meta model): the cell's preflight calls it on the meta
        # model, before anything is loaded, so a CPU cell stops there with one line and exit 2.
        from bench.methods.base import refuse_without_cuda

        refuse_without_cuda(cfg, "peft's LoftQ initialisation quantises and decomposes on the GPU")
        return super().autocast_dtype(cfg, compute)

    def wrap(self, model: torch.nn.Module, cfg: RunConfig) -> torch.nn.Module:
        from bench.methods.base import enable_checkpointing

        if cfg.train.gradient_checkpointing:
            enable_checkpointing(model, input_grads=True)
        variant: dict[str, Any] = {}
        if model.device.type != "meta":  # planning builds adapters of the same shapes, without the init
            from peft import LoftQConfig

            variant = {"init_lora_weights": "loftq",
                       "loftq_config": LoftQConfig(loftq_bits=cfg.method.loftq_bits,
                                                   loftq_iter=cfg.method.loftq_iter)}
        return add_adapters(model, cfg, **variant)

    def terms(self, cfg: RunConfig) -> Terms:
        # exact for training: the base keeps its 16-bit dtype and shape (it holds dequantised values), the
        # adapters LoRA's shapes; the quantise-and-SVD at load is a transient of one weight
        return super().terms(cfg)


METHOD = Loftq()
