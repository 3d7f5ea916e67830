"""APOLLO (Zhu et al. 2024, "APOLLO: SGD-like Memory, AdamW-level Performance"; the authors' `apollo-torch`,
class APOLLOAdamW): full-parameter training where, for each projected 2-D weight, Adam's moments are kept only
for a random projection of the gradient (rank r, regenerated from a seed every update_proj_gap steps, no SVD);
the ratio of the projected Adam update to the projected gradient gives one scaling factor per channel
(scale_type=channel) or per tensor (scale_type=tensor, APOLLO-Mini: bench/methods/apollo_mini.py), applied to the
raw full-rank gradient, times sqrt(scale); Fira's norm-growth limiter caps the update's growth (disable_nl).

GaLore's shape (bench/methods/galore.py): the same weights projected, embeddings, norms and heads on plain
AdamW inside the same optimizer, weights in the compute dtype (pure bf16 on a GPU, as the authors fine-tune),
optionally layer-wise. Runs on CPU.

Estimator: not modelled. The states match GaLore's (two rank-r moments and an r-row projection per weight), but
the temporaries (no SVD; the scaled full-size gradient) and the FLOPs differ, so bench.estimate refuses it by name
rather than predict it as GaLore."""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from bench.methods.galore import Galore, GaloreConfig, projected_params
from bench.methods.interface import ConfigError

if TYPE_CHECKING:
    import torch

    from bench.config import RunConfig
    from bench.methods.interface import Terms


@dataclass
class ApolloConfig(GaloreConfig):
    # the authors' full-parameter fine-tuning example (LLaMA-Factory examples/extras/apollo): rank 128, scale 32
    # (hidden size / rank at 8B), channel-wise, random projection refreshed every 200 steps, lr 1e-5, pure bf16
    lr: float = 1e-5
    rank: int = 128
    scale: float = 32.0  # the update is multiplied by sqrt(scale) (apollo-torch)
    scale_type: str = "channel"  # channel (APOLLO) | tensor (APOLLO-Mini)
    proj: str = "random"  # random (APOLLO) | svd (GaLore's projection)
    scale_front: bool = False  # apply sqrt(scale) before the norm-growth limiter (short warm-ups)
    disable_nl: bool = False  # turn off Fira's norm-growth limiter

    OPTIMIZERS: ClassVar[tuple[str, ...]] = ("adamw",)

    def validate(self) -> None:
        super().validate()
        if self.scale_type not in ("channel", "tensor"):
            raise ConfigError(f"method.scale_type must be channel or tensor (got {self.scale_type!r})")
        if self.proj not in ("random", "svd"):
            raise ConfigError(f"method.proj must be random or svd (got {self.proj!r})")
        if self.proj_type == "full":
            raise ConfigError("method.proj_type must be std, reverse_std, left or right for APOLLO (got 'full')")


class Apollo(Galore):
    name = "apollo"
    config = ApolloConfig
    why_not_fsdp = "with fsdp is not supported (apollo-torch projects full, unsharded gradients)"

    def make_optimizer(self, model: torch.nn.Module, cfg: RunConfig) -> Any:
        try:
            from apollo_torch import APOLLOAdamW
        except ImportError as exc:
            raise RuntimeError(f"{self.name} needs apollo-torch: pip install apollo-torch") from exc
        from bench.methods.base import projected_optimizer

        m = cfg.method
        keys = {"rank": m.rank, "update_proj_gap": m.update_proj_gap, "scale": m.scale, "proj_type": m.proj_type,
                "proj": m.proj, "scale_type": m.scale_type}
        seeds = itertools.count(1)

        def build(groups: list[dict[str, Any]]) -> Any:
            optimizer = APOLLOAdamW(groups, lr=m.lr, weight_decay=m.weight_decay, scale_front=m.scale_front,
                                    disable_nl=m.disable_nl)
            if m.layerwise:  # apollo-torch seeds each random projection by the parameter's index in its
                for p in groups[0]["params"]:  # optimizer: one optimizer per parameter would seed all alike
                    optimizer.state[p]["seed"] = next(seeds)
            return optimizer

        return projected_optimizer(model, projected_params(model, cfg), keys, build, m.layerwise)

    def terms(self, cfg: RunConfig) -> Terms | None:
        return None  # GaLore's states, but not its temporaries or FLOPs: not predicted as GaLore

    def optimizer_flops(self, cfg: RunConfig, inv: Any) -> float:
        return 0.0  # not modelled (no SVD; GaLore's figure would be wrong)


METHOD = Apollo()
