"""Exact parameter accounting from the wrapped meta-device model: every parameter as the run will store it.

The meta model is built the way bench.cell.runner.plan builds it (base model at the method's weights dtype, then
the method's wrap). Three things the meta model does not show are applied here, as the run does them:
  - QLoRA quantises every nn.Linear outside the task heads (bench.cell.models.quantize_linears / transformers'
    bitsandbytes loader) to 4-bit (two values per byte) or int8;
  - peft's prepare_model_for_kbit_training then casts every remaining fp16/bf16 parameter to fp32
    (embeddings, norms, lm_head, and parameters that are not nn.Linear, such as Mixtral's fused experts);
  - GaLore projects the 2-D weights that bench.methods.galore.projected_params selects (any method's
    `projected_params` hook).
The method's estimator terms (bench.methods.interface.Terms) ride along; a method without them is refused here.
A parameter shared by two modules (tied embeddings) is one row.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import torch

    from bench.config import RunConfig
    from bench.methods.interface import Terms

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "int8": 1}


@dataclass(frozen=True)
class ParamRow:
    name: str
    shape: tuple[int, ...]
    storage: str  # float32 | bfloat16 | float16 | 4bit-nf4 | 4bit-fp4 | int8 (bench.trackers.params labels)
    trainable: bool
    kind: str  # base | quantized | adapter
    projected: bool = False  # GaLore: gradient projected to rank r
    materialised: bool = False  # peft ParamWrapper target: W + BA is built in full on every forward

    @cached_property  # read millions of times in a sweep's predictions: computed once per row
    def numel(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n

    @cached_property
    def element_bytes(self) -> float:
        if self.storage.startswith("4bit"):
            return 0.5
        return DTYPE_BYTES[self.storage]


@dataclass
class Inventory:
    rows: list[ParamRow]
    method: str
    quant_bits: int = 16
    terms: Terms | None = None  # None only for an inventory built by hand (tests): treated as plain torch AdamW
    notes: list[str] = field(default_factory=list)
    # what the estimator derives from the rows alone, by (function, arguments): rows don't change once built, and
    # one inventory serves every batch size and sequence length of a sweep (bench.estimate.predict.facts_for)
    derived: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    def memo(self, key: Any, compute: Callable[[], Any]) -> Any:
        if key not in self.derived:
            self.derived[key] = compute()
        return self.derived[key]

    def total(self) -> int:
        return sum(r.numel for r in self.rows)

    def trainable(self) -> int:
        return sum(r.numel for r in self.rows if r.trainable)

    def by_storage(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rows:
            out[r.storage] = out.get(r.storage, 0) + r.numel
        return out

    def summary(self) -> dict[str, Any]:
        """Same keys as bench.trackers.params.count_parameters, from the plan instead of the loaded model."""
        total, trainable = self.memo("total", self.total), self.memo("trainable", self.trainable)
        return {"total": total, "trainable": trainable, "trainable_pct": 100.0 * trainable / total if total else 0.0,
                "by_dtype": dict(self.memo("by_storage", self.by_storage))}


def _head_modules() -> tuple[str, ...]:
    from bench.cell import models

    return tuple(getattr(models, "HEAD_MODULES", ("lm_head",)))


def _is_quantised_linear(name: str, module: Any, heads: tuple[str, ...]) -> bool:
    """bench.cell.models.quantize_linears' rule, applied to the peft-wrapped names (`...q_proj.base_layer`)."""
    import torch

    if type(module) is not torch.nn.Linear or ".lora_" in name or name.startswith("lora_"):
        return False
    parts = [p for p in name.split(".") if p != "base_layer"]
    return not (parts and parts[-1] in heads) and not (len(parts) > 1 and parts[-2] in heads)


def method_terms(cfg: RunConfig) -> Terms:
    """The method's estimator terms, or a one-line refusal: never a guess from another method's figures."""
    from bench import methods
    from bench.config import ConfigError

    method = methods.get(cfg.method.name)
    # only terms the method's own class declares: a new variant of LoRA must not be estimated as LoRA by inheritance
    terms = method.terms(cfg) if "terms" in vars(type(method)) else None
    if terms is None:
        raise ConfigError(f"bench.estimate does not model method {cfg.method.name!r} (it gives no estimator terms)")
    return terms


def build_inventory(cfg: RunConfig, meta_model: torch.nn.Module) -> Inventory:
    import torch

    from bench import methods

    m = cfg.method
    terms = method_terms(cfg)
    bits = m.base_bits
    heads = _head_modules()
    projected = {id(p) for p in methods.get(m.name).projected_params(meta_model, cfg)}
    wrapped = {id(getattr(mod, "get_param")()) for _, mod in meta_model.named_modules()
               if type(mod).__name__ == "ParamWrapper" and hasattr(mod, "get_param")}
    quant_label = "int8" if bits == 8 else f"4bit-{getattr(m, 'quant_type', 'nf4')}"
    rows: list[ParamRow] = []
    seen: set[int] = set()
    for mod_name, module in meta_model.named_modules():
        quantised_linear = bits < 16 and _is_quantised_linear(mod_name, module, heads)
        for pname, p in module.named_parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            name = f"{mod_name}.{pname}" if mod_name else pname
            storage = str(p.dtype).removeprefix("torch.")
            kind = "adapter" if ".lora_" in name else "base"
            if quantised_linear and pname == "weight":
                storage, kind = quant_label, "quantized"
            elif bits < 16 and p.dtype in (torch.float16, torch.bfloat16):
                storage = "float32"  # prepare_model_for_kbit_training upcasts every non-quantised parameter
            rows.append(ParamRow(name=name, shape=tuple(p.shape), storage=storage, trainable=p.requires_grad,
                                 kind=kind, projected=id(p) in projected, materialised=id(p) in wrapped))
    inv = Inventory(rows=rows, method=m.name, quant_bits=bits, terms=terms)
    unquantised = [r for r in rows if r.kind == "base" and len(r.shape) >= 3]
    if bits < 16 and unquantised:
        n = sum(r.numel for r in unquantised)
        inv.notes.append(f"{n / 1e9:.2f}B parameters in fused 3-D expert tensors are not nn.Linear, so the "
                         f"{bits}-bit loader leaves them unquantised (then fp32 after kbit preparation)")
    return inv
