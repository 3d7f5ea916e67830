"""Predicted figures for claim cells nothing measured, stored beside the registry (estimates.yaml) so the report
stays a pure function of records and imports no torch: `python -m bench.claims.estimates` rebuilds the file with
bench.estimate on the meta device, at the setting that stands in for every claim's open conditions (the one
results/gpu-h100 was measured at, so measured and estimated cells of a claim share it).

An estimate is marked "est." wherever it is shown. Its 95% band is the estimator's calibration on CUDA
(bench/estimate/README.md): predicted vs measured NVML peak within +-5% on all 16 H100 records, and within
+-5% (max 4.6%) when the runtime terms are refitted without the record's model size. Parameter counts are
exact (the meta model is the run's model), so they carry no band.
"""
from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from bench.stats import Estimate

ESTIMATES = Path(__file__).with_name("estimates.yaml")
BAND = 0.05
BAND_METHOD = ("bench.estimate on the meta device; band +-5%: its CUDA calibration (all 16 H100 records within "
               "5%, leave-one-model-size-out max 4.6%)")
# the setting that stands in for a claim's open conditions: the results/gpu-h100 setting (experiment gpu_truth)
STANDIN = ("task=synthetic", "train.batch_size=4", "train.seq_len=512", "train.precision=bf16",
           "train.gradient_checkpointing=true")
STANDIN_TEXT = "batch 4 x 512 tokens, bf16, activation checkpointing, rank 16 on every linear layer"
# a claim's method -> bench.run's method option (LoRA as measured on the H100: all linear layers)
RUN_METHOD = {"lora": "lora_all", "qlora": "qlora", "qlora8": "qlora8", "qlora2": "hqq", "full": "full",
              "galore": "galore"}
BASE_BITS = {"qlora2": 2}  # claim methods whose bench method needs method.base_bits
NOT_MODELLED = {"qlora2": "bench.estimate does not model an HQQ base: measure it"}  # no stored prediction


def modelled(cell: dict[str, Any]) -> bool:
    return cell["method"] not in NOT_MODELLED


def cell_key(cell: dict[str, Any]) -> str:
    """'lora llama2-7b', 'full llama2-7b mixed': method, model and, for full fine-tuning, its precision."""
    return " ".join(str(cell[k]) for k in ("method", "model", "precision") if cell.get(k))


def overrides(cell: dict[str, Any]) -> list[str]:
    """bench.run overrides of a claim cell at the stand-in setting."""
    out = [f"method={RUN_METHOD[cell['method']]}", f"model={cell['model']}", *STANDIN]
    if cell["method"] != "full":
        out.append("method.rank=16")
    if cell["method"] in BASE_BITS:
        out.append(f"method.base_bits={BASE_BITS[cell['method']]}")
    if cell["method"] in ("lora", "qlora", "qlora8") and cell["model"].startswith("mixtral"):
        out.append("method.dropout=0")  # peft applies no dropout to Mixtral's fused experts (bench refuses it)
    if cell.get("precision"):
        out.append(f"method.precision={cell['precision']}")
    return out


@lru_cache(maxsize=1)
def load() -> dict[str, dict[str, Any]]:
    """The stored predictions by cell_key (empty when the file is absent)."""
    if not ESTIMATES.exists():
        return {}
    data = yaml.safe_load(ESTIMATES.read_text(encoding="utf-8")) or {}
    return dict(data.get("cells") or {})


def peak(cell: dict[str, Any]) -> Estimate | None:
    """The predicted peak bytes with the calibration band, or None when not stored."""
    row = load().get(cell_key(cell))
    value = None if row is None else row.get("peak_bytes")
    if value is None:
        return None
    return Estimate(float(value), value * (1 - BAND), value * (1 + BAND), 1, BAND_METHOD)


def exact(cell: dict[str, Any], key: str) -> Estimate | None:
    """An exact figure of the meta model (trainable_pct, trainable, component bytes): no band."""
    row = load().get(cell_key(cell))
    value = None if row is None else row.get(key)
    if value is None:
        return None
    return Estimate(float(value), float(value), float(value), 1, "bench.estimate, exact count on the meta model")


def predict(cell: dict[str, Any]) -> dict[str, Any]:
    """One cell predicted (imports torch: only this command does)."""
    from bench.estimate.predict import predict_cell
    from bench.estimate.sweep import compose

    pred = predict_cell(compose(overrides(cell)), device="cuda")
    inv, comps = pred.inventory, pred.components
    return {"overrides": " ".join(overrides(cell)), "peak_bytes": int(pred.peak_bytes),
            "weights_bytes": int(comps.get("weights", 0)),
            "trainable": int(inv.trainable()), "total": int(inv.total()),
            "trainable_pct": 100.0 * inv.trainable() / inv.total(),
            "gradients_bytes": int(comps.get("gradients", 0)),
            "optimizer_states_bytes": int(comps.get("optimizer_states", 0))}


def main(argv: list[str]) -> int:
    from bench.claims.registry import load_claims

    cells = {cell_key(c): c for claim in load_claims() for c in claim.cells
             if not claim.unsupported and not c.get("task") and modelled(c)}
    known = dict(load()) if "--missing" in argv else {}
    out = dict(known)
    for key, cell in sorted(cells.items()):
        if key in out:
            continue
        print(f"bench.claims.estimates: {key}", file=sys.stderr, flush=True)
        out[key] = predict(cell)
        ESTIMATES.write_text(yaml.safe_dump({"setting": STANDIN_TEXT, "cells": out}, sort_keys=True), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
