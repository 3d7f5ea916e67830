"""Fine-tuning methods, one module each, looked up lazily so importing bench never imports peft,
bitsandbytes or galore-torch."""
from __future__ import annotations

import importlib
from types import ModuleType

REGISTRY = {"full": "bench.methods.full", "lora": "bench.methods.lora",
            "qlora": "bench.methods.qlora", "galore": "bench.methods.galore"}


def get(name: str) -> ModuleType:
    """The method module: weights_dtype(cfg, dtype), autocast_dtype(cfg, dtype), wrap(model, cfg),
    make_optimizer(model, cfg)."""
    return importlib.import_module(REGISTRY[name])
