"""DoRA (Liu et al. 2024, peft `use_dora=True`): LoRA whose adapted weight is split into a direction, W + s BA
normalised per output row, and a trainable magnitude vector (out_features values per adapted layer).

A delta of LoRA: the same config keys, adapters and optimizer; what changes is what peft 0.2x does in each
adapted nn.Linear's forward (peft/tuners/lora/dora.py, variants.py), which the estimator terms below model:
  - parameters: the magnitude vectors are rows of the meta model's inventory already (trainable, fp32, named
    `lora_magnitude_vector`), so weights, gradients and optimizer states count them with no code here
  - transient: ||W + s BA|| builds BA (through an in x in identity) and W cast to the adapters' fp32, both
    weight-sized, one adapted layer at a time (detached: freed before the next layer); counted once, for the
    largest adapted weight, as fp32 W + BA + the identity
  - saved per token per adapted layer: the base output and the adapter output, each out_features wide, kept
    for the magnitude's gradient (fp32 with dropout, where peft re-runs the base layer on the dropped-out fp32
    input; else the base output in the flow's dtype)
  - saved per layer with dropout > 0: that re-run F.linear saves its fp32 copy of W for the input gradient
    when W is 16-bit (with an fp32 W the copy is W itself): one weight copy per adapted layer (an assumption
    read from peft's code, not yet measured on a GPU)
  - FLOPs per forward pass: BA via the identity (2 in r (in + out)) and the norm (~3 in out) per adapted layer,
    plus, with dropout > 0, the re-run base matmul and its input gradient (4 in out per token). Hardware
    FLOPs, not model FLOPs (MFU counts the model's work only)."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, ClassVar

from bench.methods.lora import Lora, LoraConfig

if TYPE_CHECKING:
    from bench.config import RunConfig
    from bench.estimate.activations import Flow
    from bench.estimate.arch import Arch
    from bench.estimate.inventory import Inventory, ParamRow
    from bench.methods.interface import Terms

MAGNITUDE = re.compile(r"^(.*)\.lora_magnitude_vector\.[^.]+\.weight$")


class DoraConfig(LoraConfig):
    """LoRA's keys and defaults (Liu et al. use LoRA's settings with half the rank; conf/method/dora.yaml)."""


def adapted(inv: Inventory, layer: int | None = None) -> list[tuple[ParamRow, ParamRow]]:
    """(magnitude, base weight) of each DoRA-adapted linear, of one decoder layer or of the whole model."""
    weights = {r.name: r for r in inv.rows if r.name.endswith(".base_layer.weight")}
    found = []
    for r in inv.rows:
        match = MAGNITUDE.match(r.name)
        base = f"{match.group(1)}.base_layer.weight" if match else ""
        if base in weights and (layer is None or f".layers.{layer}." in r.name):
            found.append((r, weights[base]))
    return found


class Dora(Lora):
    name = "dora"
    config = DoraConfig
    peft_variant: ClassVar[dict[str, Any]] = {"use_dora": True}

    def terms(self, cfg: RunConfig) -> Terms:
        return super().terms(cfg)  # LoRA's, plus the hooks below; CPU runtime not measured for DoRA (LoRA's)

    def extra_layer_bytes(self, inv: Inventory, flow: Flow, dropout: float) -> float:
        return float(sum(w.shape[0] * ((4 if dropout > 0 else flow.act) + 4) for _, w in adapted(inv, 0)))

    def extra_fixed_bytes(self, inv: Inventory, flow: Flow, dropout: float) -> int:
        if dropout <= 0:
            return 0
        return sum(w.numel * 4 for _, w in adapted(inv, 0) if w.element_bytes < 4)

    def transient_bytes(self, inv: Inventory) -> int:
        return max((w.numel * 4 * 2 + w.shape[1] ** 2 * 4 for _, w in adapted(inv)), default=0)

    def extra_flops(self, cfg: RunConfig, arch: Arch, inv: Inventory, tokens: int, passes: int) -> float:
        r = cfg.method.rank
        per_pass = sum(2 * w.shape[1] * r * (w.shape[0] + w.shape[1]) + 3 * w.numel for _, w in adapted(inv))
        rerun = 4 * tokens * sum(w.numel for _, w in adapted(inv)) if cfg.method.dropout > 0 else 0
        return float(per_pass * passes + rerun)


METHOD = Dora()
