"""Q-GaLore (Zhang et al. 2024, "Q-GaLore: Quantized GaLore with INT4 Projection and Layer-Adaptive Low-Rank
Gradients"; the authors' `q-galore-torch`, class QGaLoreAdamW8bit): GaLore with 8-bit Adam states, the projection
matrices stored in INT4 (groups of proj_group_size values, a scale and zero point each), and a lazy, layer-adaptive
subspace: when a layer's last queue_size projections stayed within cos_threshold of each other, its
update_proj_gap is multiplied by gamma_proj, so converged layers run fewer SVDs.

What bench trains: that optimizer on weights in the compute dtype. The paper's third part, INT8 weights with
stochastic rounding (QGaLoreLinear), is not in the q-galore-torch 1.0 wheel (it lives in the authors' repository's
q_galore_torch/utils/quantization.py), so weights here are 16-bit as in GaLore.

Compatibility, both fixed here rather than in the user's environment: q-galore-torch 1.0 passes
percentile_clipping / block_wise positionally into bitsandbytes' max_unorm / skip_zeros (as galore-torch 1.0
does: restored to the defaults), and its update_step calls bitsandbytes < 0.45 functions; its own update_step
differs from bitsandbytes' only for INT8 weights (float_grad), which bench does not build, so bitsandbytes' own
update_step runs. It calls torch.cuda.synchronize() per parameter: a no-op on CPU (galore.py's guard).

Estimator: not modelled (INT4 projections, adaptive gaps); bench.estimate refuses it by name."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from bench.methods.galore import Galore, GaloreConfig, GuardedOptimizer, projected_params
from bench.methods.interface import ConfigError

if TYPE_CHECKING:
    import torch

    from bench.config import RunConfig
    from bench.methods.interface import Terms


@dataclass
class QGaloreConfig(GaloreConfig):
    # the authors' scripts (scripts/pretrain_c4): rank 256, gap 200, scale 0.25, INT4 projection in groups of 256,
    # cos_threshold 0.4, gamma_proj 2, queue 5; their learning rates are for pre-training, so GaLore's fine-tuning
    # lr (1e-5) here
    rank: int = 256
    proj_bits: int = 4
    proj_group_size: int = 256
    cos_threshold: float = 0.4
    gamma_proj: int = 2
    queue_size: int = 5
    optimizer: str = "adamw8bit"

    OPTIMIZERS: ClassVar[tuple[str, ...]] = ("adamw8bit",)

    def validate(self) -> None:
        super().validate()
        if self.proj_type != "std":
            raise ConfigError(f"method.proj_type must be std for q_galore (q-galore-torch implements only std; "
                              f"got {self.proj_type!r})")
        if self.proj_bits not in (4, 8):
            raise ConfigError(f"method.proj_bits must be 4 or 8 (got {self.proj_bits})")
        if self.proj_group_size <= 0:
            raise ConfigError(f"method.proj_group_size must be > 0 (got {self.proj_group_size})")
        if not 0 < self.cos_threshold <= 1:
            raise ConfigError(f"method.cos_threshold must be in (0, 1] (got {self.cos_threshold})")
        if self.gamma_proj < 1 or self.queue_size < 1:
            raise ConfigError(f"method.gamma_proj and method.queue_size must be >= 1 "
                              f"(got {self.gamma_proj}, {self.queue_size})")


def optimizer_class() -> type:
    try:
        from q_galore_torch import QGaLoreAdamW8bit
    except ImportError as exc:
        raise RuntimeError("Q-GaLore needs q-galore-torch: pip install --no-deps q-galore-torch") from exc
    from bitsandbytes.optim.optimizer import Optimizer2State

    from bench.cell.models import import_bitsandbytes

    import_bitsandbytes()

    class QGaloreAdamW8bit(QGaLoreAdamW8bit):
        def update_step(self, group: dict, p: Any, gindex: int, pindex: int, flag_use_float_grad: bool = False) -> None:
            assert not flag_use_float_grad, "INT8 weights (float_grad) are not built by bench"
            Optimizer2State.update_step(self, group, p, gindex, pindex)

    return QGaloreAdamW8bit


class QGalore(Galore):
    name = "q_galore"
    config = QGaloreConfig
    why_not_fsdp = "with fsdp is not supported (q-galore-torch projects full, unsharded gradients)"

    def wrap(self, model: torch.nn.Module, cfg: RunConfig) -> torch.nn.Module:
        model = super().wrap(model, cfg)
        group = cfg.method.proj_group_size
        for p in projected_params(model, cfg):
            if cfg.method.rank * min(p.shape) % group:
                raise ConfigError(f"method.proj_group_size={group} must divide each projection's size (rank x "
                                  f"smaller side: {cfg.method.rank} x {min(p.shape)})")
        return model

    def make_optimizer(self, model: torch.nn.Module, cfg: RunConfig) -> Any:
        from bench.methods.base import projected_optimizer

        m = cfg.method
        cls = optimizer_class()
        keys = {"rank": m.rank, "update_proj_gap": m.update_proj_gap, "scale": m.scale, "proj_type": m.proj_type,
                "quant": True, "quant_n_bit": m.proj_bits, "quant_group_size": m.proj_group_size,
                "cos_threshold": m.cos_threshold, "gamma_proj": m.gamma_proj, "queue_size": m.queue_size}

        def build(groups: list[dict[str, Any]]) -> GuardedOptimizer:
            optimizer = cls(groups, lr=m.lr, weight_decay=m.weight_decay)
            optimizer.args.max_unorm = 0.0  # see the module docstring
            optimizer.args.skip_zeros = False
            return GuardedOptimizer(optimizer)

        return projected_optimizer(model, projected_params(model, cfg), keys, build, m.layerwise)

    def terms(self, cfg: RunConfig) -> Terms | None:
        return None  # INT4 projections and adaptive gaps: not in the estimator's optimizer table

    def optimizer_flops(self, cfg: RunConfig, inv: Any) -> float:
        return 0.0  # not modelled (adaptive SVD gaps)


METHOD = QGalore()
