"""What the methods' training hooks share: the optimizer factory, a no-op optimizer for in-backward updates and
activation checkpointing. torch is imported inside (bench.methods is imported by the config, which must not)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterable

from bench.methods.interface import ConfigError

if TYPE_CHECKING:
    import torch


ADAMW_KINDS = ("adamw", "adamw8bit", "paged_adamw", "paged_adamw8bit")


def adamw_class(kind: str) -> type:
    """The optimizer class of an AdamW kind: adamw (torch) | adamw8bit | paged_adamw | paged_adamw8bit
    (bitsandbytes; paged optimizers keep their states in CUDA managed memory)."""
    import torch

    if kind == "adamw":
        return torch.optim.AdamW
    from bench.cell.models import import_bitsandbytes

    bnb = import_bitsandbytes()
    return {"adamw8bit": bnb.optim.AdamW8bit, "paged_adamw": bnb.optim.PagedAdamW,
            "paged_adamw8bit": bnb.optim.PagedAdamW8bit}[kind]


def trainable(params: Iterable[torch.nn.Parameter]) -> list[torch.nn.Parameter]:
    found = [p for p in params if p.requires_grad]
    if not found:
        raise ConfigError("method: no trainable parameters (nothing for the optimizer to update)")
    return found


def make_adamw(params: Iterable[torch.nn.Parameter], kind: str, lr: float, weight_decay: float) -> Any:
    """adamw (torch) | adamw8bit | paged_adamw | paged_adamw8bit (bitsandbytes)."""
    return adamw_class(kind)(trainable(params), lr=lr, weight_decay=weight_decay)


def projected_optimizer(model: torch.nn.Module, projected: list[torch.nn.Parameter], projected_keys: dict[str, Any],
                        build: Callable[[list[dict[str, Any]]], Any], layerwise: bool) -> Any:
    """A GaLore-style optimizer: `projected` weights in a group carrying `projected_keys` (rank, gap, ...), every
    other trainable parameter in a plain group; `build(groups)` makes the optimizer. layerwise: one optimizer
    per parameter, stepped by a hook as soon as its gradient is accumulated (then the gradient is freed)."""
    projected_ids = {id(p) for p in projected}
    regular = [p for p in model.parameters() if p.requires_grad and id(p) not in projected_ids]
    if not layerwise:
        return build([{"params": regular}, {"params": projected, **projected_keys}])
    per_param: dict[torch.nn.Parameter, Any] = {}
    for p in regular + projected:
        per_param[p] = build([{"params": [p], **(projected_keys if id(p) in projected_ids else {})}])

    def step_now(param: torch.nn.Parameter) -> None:
        per_param[param].step()
        per_param[param].zero_grad(set_to_none=True)

    for p in per_param:
        p.register_post_accumulate_grad_hook(step_now)
    return SteppedInBackward(per_param)


class SteppedInBackward:
    """Stands in for the optimizer when each parameter is updated by a hook during backward."""

    def __init__(self, per_param: dict[torch.nn.Parameter, Any]) -> None:
        self.per_param = per_param

    def step(self) -> None:
        pass

    def zero_grad(self, set_to_none: bool = True) -> None:
        pass


def enable_checkpointing(model: torch.nn.Module, input_grads: bool = False) -> None:
    """Activation (gradient) checkpointing, non-reentrant. It only sets flags and a forward hook, so it works on
    the meta device too (an FSDP model built there keeps it once its shards are materialised).
    `input_grads`: make embeddings' outputs require grad, needed when the base is frozen (adapters)."""
    if not getattr(model, "supports_gradient_checkpointing", True):
        raise ConfigError(f"train.gradient_checkpointing: {type(model).__name__} does not support activation "
                          f"checkpointing")
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    if input_grads:
        model.enable_input_require_grads()


def refuse_without_cuda(cfg: Any, why: str) -> None:
    """A GPU-only method (Method.needs_gpu) refuses a cell on any other device: one line, exit 2, no record.
    Called from a hook the cell's plan runs on the meta model before anything is loaded (see loftq.py)."""
    from bench.cell.models import resolve_device

    device = resolve_device(cfg.device)
    if device != "cuda":
        raise ConfigError(f"method: {cfg.method.name} runs on CUDA only ({why}); this cell's device is {device}")
