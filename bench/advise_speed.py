"""Expected speed of an advised configuration on a GPU, from records: measured where a successful record on
that GPU has the same cell (method, bits, model, rank, optimizer, checkpointing, micro-batch, seq_len; the
accumulation may differ: tokens/s does not depend on it but for the optimizer step), else the FLOP floor on
that GPU divided by the utilisation bench measured for the same method on the nearest GPU in the records.

Utilisation here is hardware FLOPs (bench.estimate.flops: recomputation included) x steps/s / the GPU's dense
16-bit peak, so a checkpointed record predicts an unchecked configuration without charging it the recompute
it does not do. The estimate keeps the record's 95% interval (bench.stats.Estimate.scaled); nothing about
how utilisation moves with shape, model size or GPU is modelled: the label names the record it rests on.
No torch: records and the GPU catalog only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.stats import Estimate

SIXTEEN_BIT = ("bfloat16", "float16")


@dataclass(frozen=True)
class Speed:
    tokens_per_s: Estimate | None
    label: str  # "measured (file)", "est. from H100 SXM 80GB HFU 0.24 (llama2-7b, 4 x 512)", or why there is none
    measured: bool = False


@dataclass(frozen=True)
class Ask:
    """What a speed is asked for: one configuration on one GPU, with its predicted FLOPs."""
    method: str
    bits: int
    model: str
    params_total: int
    rank: int | None
    optimizer: str
    checkpointing: bool
    batch_size: int
    seq_len: int
    hardware_flops: float  # per optimizer step (bench.estimate.flops)
    tokens_per_step: int
    settings: tuple[Any, ...] = ()  # settings_of(the method config)


@dataclass(frozen=True)
class Measured:
    """What one GPU record offers: its cell and its measured rate, with the GPU's catalog peak."""
    file: str
    gpu_name: str
    peak_tflops: float | None
    method: str
    bits: int | None
    model: str
    params_total: int | None
    rank: int | None
    optimizer: str | None
    checkpointing: bool
    batch_size: int | None
    seq_len: int | None
    hardware_flops: float | None
    steps: Estimate  # steps/s with its 95% interval (bench.report.load: the gate's rule)
    tokens: Estimate | None
    settings: tuple[Any, ...] = ()


def settings_of(method: dict[str, Any]) -> tuple[Any, ...]:
    """Method settings that change speed but are not in a record's `cell`: full's precision,
    GaLore's layer-wise step, the adapters' targets."""
    return tuple(method.get(k) for k in ("precision", "layerwise", "target_modules"))


def load_measured(dirs: list[str | Path]) -> list[Measured]:
    """Successful GPU records under `dirs` (absent or empty folders: none), read by bench.report.load."""
    from bench.estimate.gpus import for_device, load_catalog
    from bench.report.load import ReportInputError, load_records

    existing = [d for d in dirs if Path(d).is_dir()]
    if not existing:
        return []
    try:
        records = load_records(existing, warn=lambda _m: None)
    except ReportInputError:
        return []
    catalog = list(load_catalog().values())
    out = []
    for rec in records:
        steps = rec.est.get("steps")
        if not rec.ok or not rec["gpu_name"] or steps is None or rec["device"] != "cuda":
            continue
        gpu = for_device(rec["gpu_name"], catalog)
        peak = gpu.peak_tflops(2) if gpu and rec["compute_dtype"] in SIXTEEN_BIT else None
        flops = (rec.raw.get("preflight") or {}).get("flops") or {}
        hw = flops.get("hardware_flops")
        out.append(Measured(file=Path(rec.path).name, gpu_name=gpu.name if gpu else rec["gpu_name"],
                            peak_tflops=peak, method=rec["method"], bits=rec["bits"], model=rec["model"],
                            params_total=rec["params_total"], rank=rec["rank"], optimizer=rec["optimizer"],
                            checkpointing=bool(rec["gradient_checkpointing"]), batch_size=rec["batch_size"],
                            seq_len=rec["seq_len"], hardware_flops=float(hw) if isinstance(hw, (int, float)) else None,
                            steps=steps, tokens=rec.est.get("tokens"),
                            settings=settings_of((rec.raw.get("config") or {}).get("method") or {})))
    return out


def _same_cell(m: Measured, ask: Ask) -> bool:
    return (m.method, m.bits, m.model, m.rank, m.optimizer, m.checkpointing, m.batch_size, m.seq_len,
            m.settings) == (ask.method, ask.bits, ask.model, ask.rank, ask.optimizer, ask.checkpointing,
                            ask.batch_size, ask.seq_len, ask.settings)


def _log_gap(a: float | None, b: float | None) -> float:
    return abs(math.log(a / b)) if a and b else math.inf


def expected_speed(ask: Ask, gpu: Any, measured: list[Measured]) -> Speed:
    """Measured on this GPU when a record has this cell; else the FLOP floor over the nearest record's
    utilisation (same method and base bits; nearest GPU peak, then model size, then the same method settings
    and checkpointing)."""
    on_gpu = [m for m in measured if gpu.matches(m.gpu_name) or m.gpu_name == gpu.name]
    same = [m for m in on_gpu if _same_cell(m, ask) and m.tokens is not None]
    if same:
        best = max(same, key=lambda m: m.steps.n)  # the one with most repeats
        return Speed(best.tokens, f"measured ({best.file})", measured=True)
    peak = gpu.peak_tflops(2)
    if not peak:
        return Speed(None, f"n/a: no 16-bit peak for {gpu.name} in conf/gpu/")
    usable = [m for m in measured if m.method == ask.method and m.bits == ask.bits and m.peak_tflops
              and m.hardware_flops]
    if not usable:
        return Speed(None, f"n/a: no GPU record of {ask.method} {ask.bits}-bit")
    near = min(usable, key=lambda m: (_log_gap(m.peak_tflops, peak), _log_gap(m.params_total, ask.params_total),
                                      m.settings != ask.settings, m.checkpointing != ask.checkpointing, m.file))
    util = near.steps.scaled(near.hardware_flops / (near.peak_tflops * 1e12))  # type: ignore[operator]
    tokens = util.scaled(peak * 1e12 / ask.hardware_flops * ask.tokens_per_step)
    return Speed(tokens, f"est. from {near.gpu_name} HFU {util.value:.2f} ({near.model}, "
                         f"{near.batch_size} x {near.seq_len})")
