"""GaLore: every weight trained; the gradients of the 2-D weights in the target modules are projected to
rank r (galore-torch), so their optimizer states are r x n instead of m x n. Optionally layer-wise:
each parameter steps inside backward and its gradient is freed at once."""
from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Iterator

from bench.methods.interface import ConfigError, Method, MethodConfig, Terms, name_list

if TYPE_CHECKING:
    import torch

    from bench.config import RunConfig
    from bench.estimate.inventory import Inventory


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
        return name_list(self.target_modules)


def projected_params(model: torch.nn.Module, cfg: RunConfig) -> list[torch.nn.Parameter]:
    import torch

    targets = cfg.method.target_module_list()
    return [module.weight for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and any(t in name for t in targets)
            and module.weight.dim() == 2]


def wrap(model: torch.nn.Module, cfg: RunConfig) -> torch.nn.Module:
    from bench.methods.base import enable_checkpointing

    for param in model.parameters():
        param.requires_grad_(True)
    projected = projected_params(model, cfg)
    if not projected:
        raise ConfigError(f"method.target_modules={cfg.method.target_modules!r} matches no linear layer of "
                          f"model {cfg.model.name!r} (Llama-style names contain self_attn and mlp)")
    if cfg.method.layerwise and cfg.train.grad_accum > 1:
        raise ConfigError("method.layerwise: layer-wise GaLore steps inside backward, so it can't "
                          f"accumulate gradients (train.grad_accum={cfg.train.grad_accum})")
    smallest = min(min(p.shape) for p in projected)
    if cfg.method.rank > smallest:
        raise ConfigError(f"method.rank={cfg.method.rank} exceeds the smallest projected dimension "
                          f"({smallest}) of model {cfg.model.name!r}")
    if cfg.train.gradient_checkpointing:
        enable_checkpointing(model)
    return model


@contextlib.contextmanager
def cuda_sync_guard() -> Iterator[None]:
    """galore-torch's 8-bit AdamW calls torch.cuda.synchronize() unconditionally; make it a no-op on CPU."""
    import torch

    if torch.cuda.is_available():
        yield
        return
    original = torch.cuda.synchronize
    torch.cuda.synchronize = lambda *args, **kwargs: None
    try:
        yield
    finally:
        torch.cuda.synchronize = original


class GuardedOptimizer:
    def __init__(self, optimizer: Any) -> None:
        self.optimizer = optimizer
        self.state = optimizer.state
        self.param_groups = optimizer.param_groups

    def step(self) -> None:
        with cuda_sync_guard():
            self.optimizer.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)


def _optimizer_class(kind: str) -> tuple[type, dict[str, Any]]:
    try:
        import galore_torch
    except ImportError as exc:
        raise RuntimeError("GaLore needs galore-torch: pip install galore-torch") from exc
    if kind == "adamw8bit":
        from bench.cell.models import import_bitsandbytes

        import_bitsandbytes()
        return galore_torch.GaLoreAdamW8bit, {}
    if kind == "adafactor":
        return galore_torch.GaLoreAdafactor, {"relative_step": False, "scale_parameter": False,
                                              "warmup_init": False}
    return galore_torch.GaLoreAdamW, {}


def _build(cls: type, groups: list[dict], m: Any, extra: dict[str, Any]) -> GuardedOptimizer:
    optimizer = cls(groups, lr=m.lr, weight_decay=m.weight_decay, **extra)
    if m.optimizer == "adamw8bit":
        # galore-torch 1.0 passes percentile_clipping and block_wise positionally into bitsandbytes'
        # max_unorm and skip_zeros slots, which turns on update-norm clipping against the weight norm:
        # projected gradients under 4096 values then get exactly zero updates. Restore the defaults.
        optimizer.args.max_unorm = 0.0
        optimizer.args.skip_zeros = False
    return GuardedOptimizer(optimizer)


def make_optimizer(model: torch.nn.Module, cfg: RunConfig) -> Any:
    from bench.methods.base import projected_optimizer

    m = cfg.method
    cls, extra = _optimizer_class(m.optimizer)
    projected = projected_params(model, cfg)
    galore_keys = {"rank": m.rank, "update_proj_gap": m.update_proj_gap, "scale": m.scale,
                   "proj_type": m.proj_type}
    print(f"bench: GaLore: the first step computes the projection of {len(projected)} matrices (one fp32 SVD "
          f"each; minutes at 7B and up), and again every {m.update_proj_gap} steps", file=sys.stderr, flush=True)
    return projected_optimizer(model, projected, galore_keys, lambda groups: _build(cls, groups, m, extra),
                               m.layerwise)


class Galore(Method):
    name = "galore"
    config = GaloreConfig
    trains_all_weights = True
    supports_fsdp = False
    why_not_fsdp = "with fsdp is not supported (galore-torch projects full, unsharded gradients)"
    supports_layerwise = True

    def wrap(self, model: torch.nn.Module, cfg: RunConfig) -> torch.nn.Module:
        return wrap(model, cfg)  # the GaLore authors train in pure bf16: weights in the compute dtype, no autocast

    def make_optimizer(self, model: torch.nn.Module, cfg: RunConfig) -> Any:
        return make_optimizer(model, cfg)

    def projected_params(self, model: torch.nn.Module, cfg: RunConfig) -> list[Any]:
        return projected_params(model, cfg)

    def terms(self, cfg: RunConfig) -> Terms:
        # CPU runtime as in full.py
        return Terms(trains_base=True, optimizer_library="galore-torch", projection_rank=cfg.method.rank,
                     cpu_runtime_bytes=63_600_000, cpu_retention=0.547)

    def optimizer_flops(self, cfg: RunConfig, inv: Inventory) -> float:
        """2 matmuls of m x n x r per projected weight per step (project, project back) and an SVD
        (~4 m n min(m, n)) every update_proj_gap steps, amortised."""
        gap = max(1, cfg.method.update_proj_gap)
        flops = 0.0
        for r in inv.rows:
            if r.projected and len(r.shape) == 2:
                m_, n_ = r.shape
                flops += 4 * m_ * n_ * cfg.method.rank + 4 * m_ * n_ * min(m_, n_) / gap
        return flops


METHOD = Galore()
