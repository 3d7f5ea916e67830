"""GaLore: every weight trained; the gradients of the 2-D weights in the target modules are projected to
rank r (galore-torch), so their optimizer states are r x n instead of m x n. Optionally layer-wise:
each parameter steps inside backward and its gradient is freed at once."""
from __future__ import annotations

import contextlib
import sys
from typing import Any, Iterator

import torch

from bench.config import ConfigError, RunConfig
from bench.methods.base import SteppedInBackward, enable_checkpointing


def weights_dtype(cfg: RunConfig, compute: torch.dtype) -> torch.dtype:
    return compute  # the GaLore authors train in pure bf16


def autocast_dtype(cfg: RunConfig, compute: torch.dtype) -> torch.dtype | None:
    return None


def projected_params(model: torch.nn.Module, cfg: RunConfig) -> list[torch.nn.Parameter]:
    targets = cfg.method.target_module_list()
    return [module.weight for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and any(t in name for t in targets)
            and module.weight.dim() == 2]


def wrap(model: torch.nn.Module, cfg: RunConfig) -> torch.nn.Module:
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
    m = cfg.method
    cls, extra = _optimizer_class(m.optimizer)
    projected = projected_params(model, cfg)
    galore_keys = {"rank": m.rank, "update_proj_gap": m.update_proj_gap, "scale": m.scale,
                   "proj_type": m.proj_type}
    projected_ids = {id(p) for p in projected}
    print(f"bench: GaLore: the first step computes the projection of {len(projected)} matrices (one fp32 SVD "
          f"each; minutes at 7B and up), and again every {m.update_proj_gap} steps", file=sys.stderr, flush=True)
    regular = [p for p in model.parameters() if p.requires_grad and id(p) not in projected_ids]
    if not m.layerwise:
        groups = [{"params": regular}, {"params": projected, **galore_keys}]
        return _build(cls, groups, m, extra)
    per_param: dict[torch.nn.Parameter, Any] = {}
    for p in regular + projected:
        group = {"params": [p], **(galore_keys if id(p) in projected_ids else {})}
        per_param[p] = _build(cls, [group], m, extra)

    def step_now(param: torch.nn.Parameter) -> None:
        per_param[param].step()
        per_param[param].zero_grad(set_to_none=True)

    for p in per_param:
        p.register_post_accumulate_grad_hook(step_now)
    return SteppedInBackward(per_param)
