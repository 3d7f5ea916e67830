"""Fine-tuning methods, one module each (bench/methods/<name>.py defines `METHOD`, an instance of
bench.methods.interface.Method). Discovered by listing this folder: the modules import neither torch nor peft,
bitsandbytes or galore-torch at module level, so importing them all costs milliseconds and bench.config can
bind every method's config dataclass. `method=<name>` picks conf/method/<name>.yaml, whose `name:` picks here."""
from __future__ import annotations

import functools
import importlib
import pkgutil
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.methods.interface import Method, MethodConfig

NOT_METHODS = {"base", "interface"}


@functools.cache
def registry() -> dict[str, Method]:
    """{name: Method}, in the order full, lora, qlora, galore, then the rest alphabetically."""
    found: dict[str, Method] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name in NOT_METHODS or info.name.startswith("_"):
            continue
        method = getattr(importlib.import_module(f"{__name__}.{info.name}"), "METHOD", None)
        if method is not None:
            found[method.name] = method
    first = [n for n in ("full", "lora", "qlora", "galore") if n in found]  # the paper's order in reports
    return {n: found[n] for n in first + sorted(set(found) - set(first))}


def get(name: str) -> Method:
    """The method: weights_dtype(cfg, dtype), autocast_dtype(cfg, dtype), wrap(model, cfg),
    make_optimizer(model, cfg), and its estimator terms (bench.methods.interface.Method)."""
    return registry()[name]


def __getattr__(attr: str) -> Any:
    # METHODS / METHOD_CLASSES are computed on first use (and see methods registered by tests since)
    if attr == "METHODS":
        return tuple(registry())
    if attr == "METHOD_CLASSES":
        return method_classes()
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


# Method families, in report order, from each method's capability flags (so a new method needs no list here):
# every weight trained (full fine-tuning and the full-weight optimizers: GaLore, APOLLO, Adam-mini, Q-GaLore);
# adapters over a base in the compute dtype (the LoRA family); adapters over a quantised frozen base.
FAMILIES = ("full weights", "adapters", "quantised base")


def family(name: str) -> str | None:
    """The family of method `name` (FAMILIES), or None for a name bench does not know (an old record's)."""
    method = registry().get(name)
    if method is None:
        return None
    if method.trains_all_weights:
        return FAMILIES[0]
    return FAMILIES[2] if method.quantized_base else FAMILIES[1]


def method_classes() -> dict[str, type[MethodConfig]]:
    return {name: method.config for name, method in registry().items()}
