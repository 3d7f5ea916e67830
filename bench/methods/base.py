"""What the methods' training hooks share: the optimizer factory, a no-op optimizer for in-backward updates and
activation checkpointing. torch is imported inside (bench.methods is imported by the config, which must not)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from bench.methods.interface import ConfigError

if TYPE_CHECKING:
    import torch


def make_adamw(params: Iterable[torch.nn.Parameter], kind: str, lr: float, weight_decay: float) -> Any:
    """adamw (torch) | adamw8bit | paged_adamw | paged_adamw8bit (bitsandbytes)."""
    import torch

    params = [p for p in params if p.requires_grad]
    if not params:
        raise ConfigError("method: no trainable parameters (nothing for the optimizer to update)")
    if kind == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    from bench.cell.models import import_bitsandbytes

    bnb = import_bitsandbytes()
    cls = {"adamw8bit": bnb.optim.AdamW8bit, "paged_adamw": bnb.optim.PagedAdamW,
           "paged_adamw8bit": bnb.optim.PagedAdamW8bit}[kind]
    return cls(params, lr=lr, weight_decay=weight_decay)


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
