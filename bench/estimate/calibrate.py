"""Predicted vs measured, per component a record can show, with the error.

CPU records: parameters (exact), the load phase's RSS growth (weights, adapters, imports made while
loading), the whole cell's RSS growth over the pre-load baseline (memory.peak_over_baseline_bytes).
CUDA records: torch_max_allocated (tensors), reserved - allocated (allocator slack), NVML process peak -
reserved (CUDA context), the headline peak; and, where the GPU is in the catalog, MFU from the measured
step time. Error % = (predicted - measured) / measured.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.estimate.flops import time_floor_s
from bench.estimate.gpus import for_device
from bench.record import record_files

if TYPE_CHECKING:
    from bench.estimate.gpus import Gpu
    from bench.estimate.predict import Prediction


def record_paths(paths: list[str]) -> list[Path]:
    found: list[Path] = []
    for p in map(Path, paths):
        found += record_files(p) if p.is_dir() else [p]
    return found


def _row(cell: str, component: str, predicted: float | None, measured: float | None, unit: str = "MB") -> dict:
    scale = 1e6 if unit == "MB" else 1.0
    err = None
    if predicted is not None and measured:
        err = 100.0 * (predicted - measured) / measured
    return {"cell": cell, "component": component, "unit": unit,
            "predicted": None if predicted is None else predicted / scale,
            "measured": None if measured is None else measured / scale, "error_pct": err}


def _gpu_for(record: dict, catalog: dict[str, Gpu]) -> Gpu | None:
    gpu_env = (record.get("env") or {}).get("gpu") or {}
    name = str(gpu_env.get("name", "")) if isinstance(gpu_env, dict) else ""
    return for_device(name, catalog.values())


def compare(record: dict, pred: Prediction, catalog: dict[str, Gpu]) -> list[dict[str, Any]]:
    cell = record["cell"]
    label = f"{cell['method']}/{cell['model']}" + (f" r{cell['rank']}" if cell.get("rank") else "")
    params = record.get("params") or {}
    summary = pred.inventory.summary()
    rows = [_row(label, "params total", summary["total"], params.get("total"), "count"),
            _row(label, "params trainable", summary["trainable"], params.get("trainable"), "count")]
    mem = record.get("memory") or {}
    phases = mem.get("phases") or {}
    runtime = pred.peak.runtime
    if mem.get("device") == "cpu":
        base = (mem.get("baseline") or {}).get("rss_bytes") or 0
        load = phases.get("load") or {}
        load_peak = max(load.get("rss_hwm") or 0, load.get("rss_peak") or 0)
        predicted_load = max(sum(pred.weights.values()), pred.host_load_bytes)
        # RSS at load also holds imports made while loading (galore-torch, bitsandbytes), and pretrained
        # weights read through mmap count only once touched
        rows.append(_row(label, "load phase: weights (RSS also has imports)", predicted_load,
                         load_peak - base if load_peak else None))
        data = phases.get("data") or {}
        if data.get("rss_end") is not None and data.get("rss_start") is not None:
            rows.append(_row(label, "data phase RSS growth (not modelled)", None, data["rss_end"] - data["rss_start"]))
        rows.append(_row(label, "peak over baseline", pred.peak_bytes, mem.get("peak_over_baseline_bytes")))
        rows.append(_row(label, "  of which tensors (predicted only)", pred.peak.tensors, None))
        rows.append(_row(label, "  of which runtime (predicted only)", sum(runtime.values()), None))
    elif mem.get("device") == "cuda":
        train = phases.get("train") or {}
        allocated, reserved = train.get("torch_max_allocated"), train.get("torch_max_reserved")
        process = train.get("nvml_process_peak")
        rows.append(_row(label, "tensors (torch max allocated)", pred.peak.tensors, allocated))
        if allocated is not None and reserved is not None:
            rows.append(_row(label, "allocator slack (reserved - allocated)", runtime.get("allocator_slack"),
                             reserved - allocated))
        if process is not None and reserved is not None:
            rows.append(_row(label, "CUDA context (NVML - reserved)", runtime.get("cuda_context"), process - reserved))
        rows.append(_row(label, "peak", pred.peak_bytes, mem.get("peak_bytes")))
        gpu = _gpu_for(record, catalog)
        timing = record.get("timing") or {}
        floor = time_floor_s(pred.flops, gpu.peak_tflops(2)) if gpu else None
        if floor and timing.get("steps_per_s"):
            measured_step = 1.0 / timing["steps_per_s"]
            mfu = pred.flops["model_flops"] / (measured_step * gpu.peak_tflops(2) * 1e12)
            rows.append(_row(label, f"step time floor on {gpu.name} (s)", floor, measured_step, "s"))
            rows.append({"cell": label, "component": "MFU", "unit": "%", "predicted": None,
                         "measured": 100.0 * mfu, "error_pct": None})
    return rows


def config_of(record: dict) -> Any:
    """The record's RunConfig; top-level keys this checkout no longer has (bookkeeping renamed or dropped
    since the record was written, e.g. experiment -> experiment_name) are left out: they don't change a cell."""
    import dataclasses

    from bench.config import RunConfig, build_run_config

    known = {f.name for f in dataclasses.fields(RunConfig)}
    raw = dict(record["config"])
    if "experiment" in raw and "experiment" not in known and "experiment_name" in known:
        raw.setdefault("experiment_name", raw.pop("experiment"))
    return build_run_config({k: v for k, v in raw.items() if k in known})


def calibrate(paths: list[str]) -> list[dict[str, Any]]:
    from bench.config import ConfigError
    from bench.estimate.gpus import load_catalog
    from bench.estimate.predict import predict_cell
    from bench.record import read_record

    catalog = load_catalog()
    rows: list[dict[str, Any]] = []
    for path in record_paths(paths):
        record = read_record(path)
        if record.get("status") != "success":
            continue
        device = (record.get("memory") or {}).get("device", "cpu")
        try:
            pred = predict_cell(config_of(record), device)
        except (ConfigError, ValueError, KeyError) as exc:  # a record from another schema or checkout
            rows.append({"cell": path.name, "component": f"not predicted: {str(exc).splitlines()[0][:120]}",
                         "unit": "-", "predicted": None, "measured": None, "error_pct": None})
            continue
        rows += compare(record, pred, catalog)
    return rows


def calibration_table(rows: list[dict[str, Any]]) -> str:
    from bench.estimate.tables import markdown

    def fmt(v: float | None, unit: str) -> str:
        if v is None:
            return "-"
        return f"{v:,.0f}" if unit == "count" else f"{v:,.3f}" if unit == "s" else f"{v:,.1f}"

    body = [[r["cell"], r["component"], r["unit"], fmt(r["predicted"], r["unit"]), fmt(r["measured"], r["unit"]),
             "-" if r["error_pct"] is None else f"{r['error_pct']:+.1f}%"] for r in rows]
    return markdown(["cell", "component", "unit", "predicted", "measured", "error"], body)
