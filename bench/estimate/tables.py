"""Output: one row per predicted cell (markdown / JSON / CSV), the blog-shaped method x model table, and
the which-GPU-fits table. Pure functions of the predictions: no torch here."""
from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING, Any

from bench.estimate.flops import time_floor_s

if TYPE_CHECKING:
    from bench.config import RunConfig
    from bench.estimate.gpus import Gpu
    from bench.estimate.predict import Prediction

GB = 1e9


def cell_row(cfg: RunConfig, pred: Prediction, gpus: list[Gpu]) -> dict[str, Any]:
    m = cfg.method
    params = pred.inventory.summary()
    at = pred.peak.at_peak
    row: dict[str, Any] = {
        "method": m.name, "model": cfg.model.name, "bits": bits_label(cfg, pred.compute_dtype),
        "rank": getattr(m, "rank", None), "optimizer": m.optimizer, "target": pred.device,
        "compute_dtype": pred.compute_dtype,
        "batch_size": cfg.train.batch_size, "seq_len": pred.seq_len, "grad_accum": cfg.train.grad_accum,
        "checkpointing": pred.checkpointing, "attention_kernel": pred.attention_kernel,
        "params_total": params["total"], "params_trainable": params["trainable"],
        "trainable_pct": round(params["trainable_pct"], 4), "peak_phase": pred.peak.phase,
        "peak_bytes": pred.peak_bytes, "tensor_peak_bytes": pred.peak.tensors,
        **{f"at_peak_{k}_bytes": v for k, v in at.items()},
        **{f"{k}_bytes": v for k, v in pred.components.items()},
        **{f"weights_{k.replace(' ', '_')}_bytes": v for k, v in pred.weights.items()},
        "model_flops_per_step": pred.flops["model_flops"], "hardware_flops_per_step": pred.flops["hardware_flops"],
        "model_flops_per_token": pred.flops["model_flops_per_token"],
        "dequant_element_ops_per_step": pred.flops["dequant_element_ops"], "notes": "; ".join(pred.notes),
    }
    for gpu in gpus:
        row[f"fits_{gpu.key}"] = pred.peak_bytes <= gpu.memory_bytes
        floor = time_floor_s(pred.flops, gpu.peak_tflops(_dtype_bytes(pred.compute_dtype)))
        row[f"time_floor_s_{gpu.key}"] = floor
    return row


def _dtype_bytes(name: str) -> int:
    return {"float32": 4, "bfloat16": 2, "float16": 2}.get(name, 2)


def bits_label(cfg: RunConfig, compute_dtype: str) -> int:
    """The blog's "Bits": the base weights' storage (mixed precision keeps fp32 master weights)."""
    m = cfg.method
    if m.base_bits < 16:
        return m.base_bits
    if m.name == "full" and getattr(m, "precision", "") == "mixed":
        return 32
    return 8 * _dtype_bytes(compute_dtype)


def gb(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / GB:.2f}" if value < 10 * GB else f"{value / GB:.1f}"


def markdown(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def cells_table(rows: list[dict[str, Any]], floor_gpu: str | None = None) -> str:
    """Each component at its largest; `peak` is when they coexist (the phase named). `floor_gpu`: a catalog
    key whose step-time floor gets a column."""
    headers = ["method", "model", "bits", "trainable", "% trainable", "weights GB", "grads GB", "optimizer GB",
               "activations GB", "runtime GB", "peak GB", "peak during", "GFLOP/token"]
    if floor_gpu:
        headers.append(f"floor s/step {floor_gpu}")
    body = []
    for r in rows:
        if "error" in r:
            body.append([r["method"], r["model"], "-", f"not predicted: {r['error']}"] + [""] * (len(headers) - 4))
            continue
        runtime = sum(r.get(f"{k}_bytes", 0) or 0 for k in ("cuda_context", "allocator_slack", "process_runtime",
                                                           "allocator_retention"))
        body.append([r["method"], r["model"], r["bits"], f"{r['params_trainable']:,}", f"{r['trainable_pct']:.3f}",
                     gb(r["weights_bytes"]), gb(r["gradients_bytes"]),
                     gb(r["optimizer_states_bytes"] + r["galore_projectors_bytes"]),
                     gb(r["activations_peak_bytes"] + r["cast_copies_bytes"]), gb(runtime), gb(r["peak_bytes"]),
                     r["peak_phase"].replace("_", " "), f"{r['model_flops_per_token'] / 1e9:.1f}"])
        if floor_gpu:
            floor = r.get(f"time_floor_s_{floor_gpu}")
            body[-1].append("-" if floor is None else f"{floor:.3g}")
    return markdown(headers, body)


def gpu_fit_table(rows: list[dict[str, Any]], gpus: list[Gpu]) -> str:
    headers = ["method", "bits", "model", "peak GB"] + [g.key for g in gpus] + ["smallest that fits"]
    body = []
    for r in (r for r in rows if "error" not in r):
        fits = [g for g in gpus if r["peak_bytes"] <= g.memory_bytes]
        smallest = min(fits, key=lambda g: g.memory_gb).name if fits else "none (shard or offload)"
        body.append([r["method"], r["bits"], r["model"], gb(r["peak_bytes"])]
                    + ["yes" if g in fits else "no" for g in gpus] + [smallest])
    return markdown(headers, body)


def blog_table(grid: dict[tuple[str, int], dict[str, str]], columns: list[str]) -> str:
    """Rows (method label, bits) x columns (model labels): predicted peak, GB."""
    body = [[label, bits] + [cells.get(c, "n/a") for c in columns] for (label, bits), cells in grid.items()]
    return markdown(["Method", "Bits"] + columns, body)


def blog_assumptions(rows: list[dict[str, Any]]) -> list[str]:
    """What every number of the blog table assumes, read off the predicted cells themselves."""
    from bench.estimate.peak import CUDA_FIT

    if not rows:
        return []

    def values(key: str) -> str:
        return " / ".join(dict.fromkeys(str(r[key]) for r in rows))

    optimizers = " / ".join(dict.fromkeys(f"{r['method']} {r['optimizer']}" for r in rows))
    ckpt = {flag: ", ".join(dict.fromkeys(r["method"] for r in rows if r["checkpointing"] == flag))
            for flag in (True, False)}
    checkpointing = "; ".join(f"{'on' if flag else 'off'} for {methods}" for flag, methods in ckpt.items() if methods)
    ctx = CUDA_FIT["context_bytes"]
    slack = CUDA_FIT["allocator_bytes"]
    return [
        f"one {values('target').upper()} device holds the whole cell; compute {values('compute_dtype')} (Full (AMP): "
        f"fp32 weights, gradients and AdamW states under bf16 autocast); synthetic tokens, batch "
        f"{values('batch_size')} x {values('seq_len')} tokens, grad_accum {values('grad_accum')}; gradient "
        f"checkpointing {checkpointing}; attention kernel {values('attention_kernel')} (by model and dtype)",
        f"optimizers: {optimizers} (torch AdamW runs foreach on CUDA: one step temporary the size of all trained "
        "parameters); QLoRA's paged AdamW keeps the states of tensors of >= 1e5 values in CUDA managed memory, "
        "shown as paged_optimizer_states and left out of the peak (neither torch nor NVML's process figure "
        "counts it)",
        "runtime on top of the tensors: CUDA context by optimizer library ("
        + ", ".join(f"{k} {v / 1e6:.0f} MB" for k, v in ctx.items()) + ") and caching-allocator slack by regime ("
        + ", ".join(f"{k} {v / 1e6:.0f} MB" for k, v in slack.items())
        + f", + {CUDA_FIT['allocator_per_dequantized_byte']:g} x the largest dequantised weight with a 4/8-bit "
        f"base), fitted on {CUDA_FIT['source']} (bench.estimate.cuda_fit); at other batch sizes, sequence lengths "
        "and GPUs the slack is carried over unmeasured",
        "not modelled: other processes on the GPU, several GPUs or offload (every cell on one device), NCCL "
        "buffers, workspaces beyond the fitted context, a text task's padding (synthetic tokens are always full)",
    ]


def to_json(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, indent=1, default=str) + "\n"


def to_csv(rows: list[dict[str, Any]]) -> str:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
