"""PiSSA (Meng et al. 2024, "PiSSA: Principal Singular Values and Singular Vectors Adaptation of Large Language
Models"; peft `init_lora_weights="pissa"` or `"pissa_niter_<n>"`): LoRA whose adapters start from the r principal
singular values and vectors of each adapted weight (B = U_r sqrt(S_r), A = sqrt(S_r) V_r^T, divided by the
scaling) and whose frozen base becomes the residual W - s B A, so the model is unchanged at step 0 and training
moves the principal part. `niter` > 0 uses peft's fast randomised SVD with that many subspace iterations (the
authors' recommended setting is 4, seconds at 7B instead of minutes); 0 the exact SVD.

A delta of LoRA: only the initialisation changes, done once at load."""
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
class PissaConfig(LoraConfig):
    # the PiSSA repository's fine-tuning script: r = alpha = 128 on every linear layer, no dropout, lr 2e-5
    rank: int = 128
    alpha: float = 128.0
    dropout: float = 0.0
    target_modules: str | list[str] = "all-linear"
    lr: float = 2e-5
    niter: int = 4  # subspace iterations of the fast SVD; 0 = exact SVD

    def validate(self) -> None:
        super().validate()
        if self.niter < 0:
            raise ConfigError(f"method.niter must be >= 0 (0 = exact SVD; got {self.niter})")

    def peft_init(self) -> str:
        return "pissa" if self.niter == 0 else f"pissa_niter_{self.niter}"


class Pissa(Lora):
    name = "pissa"
    config = PissaConfig

    def wrap(self, model: torch.nn.Module, cfg: RunConfig) -> torch.nn.Module:
        from bench.methods.base import enable_checkpointing

        if cfg.train.gradient_checkpointing:
            enable_checkpointing(model, input_grads=True)
        variant: dict[str, Any] = {"init_lora_weights": cfg.method.peft_init()}
        return add_adapters(model, cfg, **variant)

    def terms(self, cfg: RunConfig) -> Terms:
        # exact for training: the residual base keeps the base's dtype and shape, the adapters LoRA's shapes;
        # the SVD at load is a transient of one weight (fp32 copy and factors), freed before training starts
        return super().terms(cfg)


METHOD = Pissa()
