"""Predicted vs measured, per component a record can show, with the error.

CPU records: parameters (exact), the load phase's RSS growth (weights, adapters, imports made while
loading), the whole cell's RSS growth over the pre-load baseline (memory.peak_over_baseline_bytes).
CUDA records: torch_max_allocated (tensors), reserved - allocated (allocator slack), NVML process peak -
reserved (CUDA context), bitsandbytes' paged optimizer states (managed memory: predicted only, counted by
neither), the headline peak; and, where the GPU is in the catalog, MFU from the measured step time.
Error % = (predicted - measured) / measured.

`calibrate_records` also gives one summary per record (`record`, `predicted_peak_bytes`, `measured_peak_bytes`,
`error_pct`, ...) and, for CUDA records, the leave-one-model-size-out check of the fitted runtime terms
(bench.estimate.cuda_fit): `loo_predicted_peak_bytes`, `loo_error_pct`, `held_out_size`.
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
    """ValueError names a path that does not exist or a folder without records."""
    found: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise ValueError(f"--calibrate: {p}: no such file or folder")
        files = record_files(p) if p.is_dir() else [p]
        if not files:
            raise ValueError(f"--calibrate: {p}: no record files (*.json) in this folder")
        found += files
    return found


def label_of(record: dict) -> str:
    """method/model, rank, precision (full's pure / mixed too), batch x sequence length, checkpointing."""
    cell = record["cell"]
    label = f"{cell['method']}/{cell['model']}" + (f" r{cell['rank']}" if cell.get("rank") else "")
    cfg = record.get("config") or {}
    train, method, setup = cfg.get("train") or {}, cfg.get("method") or {}, record.get("setup") or {}
    if train:
        precision = str(train.get("precision", "?")) + (f" {method['precision']}" if method.get("precision") else "")
        seq = setup.get("seq_len") or train.get("seq_len")
        label += f" {precision} b{train.get('batch_size')}x{seq}" + (" ckpt" if train.get("gradient_checkpointing")
                                                                     else "")
    return label


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
    label = label_of(record)
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
        if pred.peak.managed:
            rows.append(_row(label, "paged optimizer states (managed memory, outside the peak)",
                             sum(pred.peak.managed.values()), None))
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


def summary(name: str, record: dict, pred: Prediction | None, error: str | None = None) -> dict[str, Any]:
    """One record's headline peak, predicted vs measured (CUDA: NVML process peak; CPU: RSS over baseline)."""
    mem = record.get("memory") or {}
    measured = mem.get("peak_bytes") if mem.get("device") == "cuda" else mem.get("peak_over_baseline_bytes")
    predicted = pred.peak_bytes if pred else None
    out: dict[str, Any] = {"record": name, "method": record["cell"]["method"], "model": record["cell"]["model"],
                           "label": label_of(record), "device": mem.get("device"),
                           "predicted_peak_bytes": predicted, "measured_peak_bytes": measured,
                           "error_pct": 100.0 * (predicted - measured) / measured if predicted and measured else None}
    if pred is not None and pred.device == "cuda":
        out["predicted_components_bytes"] = {"tensors": pred.peak.tensors, **pred.peak.runtime, **pred.peak.managed}
    if error:
        out["error"] = error
    return out


def calibrate_records(paths: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(component rows, one summary per successful record with the leave-one-size-out check)."""
    from bench.config import ConfigError
    from bench.estimate import cuda_fit
    from bench.estimate.gpus import load_catalog
    from bench.estimate.predict import predict_cell
    from bench.record import read_record

    catalog = load_catalog()
    rows: list[dict[str, Any]] = []
    summaries: list[dict[str, Any]] = []
    points: list[cuda_fit.Point] = []
    for path in record_paths(paths):
        record = read_record(path)
        if record.get("status") != "success":
            continue
        device = (record.get("memory") or {}).get("device", "cpu")
        try:
            pred = predict_cell(config_of(record), device)
        except (ConfigError, ValueError, KeyError) as exc:  # a record from another schema or checkout
            why = str(exc).splitlines()[0][:120]
            rows.append({"cell": path.name, "component": f"not predicted: {why}",
                         "unit": "-", "predicted": None, "measured": None, "error_pct": None})
            summaries.append(summary(path.name, record, None, why))
            continue
        rows += compare(record, pred, catalog)
        summaries.append(summary(path.name, record, pred))
        point = cuda_fit.point(path.name, record, pred) if device == "cuda" else None
        points += [point] if point else []
    held_out = cuda_fit.leave_one_size_out(points)
    for s in summaries:
        loo = held_out.get(s["record"])
        if loo:
            s.update(held_out_size=loo["held_out_size"], loo_predicted_peak_bytes=loo["predicted_peak_bytes"],
                     loo_error_pct=loo["error_pct"], loo_fit=loo["fit"])
    return rows, summaries


def calibrate(paths: list[str]) -> list[dict[str, Any]]:
    return calibrate_records(paths)[0]


def peak_table(summaries: list[dict[str, Any]]) -> str:
    """Per record: predicted vs measured peak, and the peak predicted with the size held out of the fit."""
    from bench.estimate.tables import markdown

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{v:+.1f}%"

    def mb(v: int | None) -> str:
        return "-" if v is None else f"{v / 1e6:,.0f}"

    body = [[s["label"], mb(s["predicted_peak_bytes"]), mb(s["measured_peak_bytes"]), pct(s["error_pct"]),
             s.get("held_out_size", "-"), mb(s.get("loo_predicted_peak_bytes")), pct(s.get("loo_error_pct"))]
            for s in summaries]
    errors = [abs(s["error_pct"]) for s in summaries if s["error_pct"] is not None]
    loo = [abs(s["loo_error_pct"]) for s in summaries if s.get("loo_error_pct") is not None]
    lines = [markdown(["cell", "predicted peak MB", "measured peak MB", "error", "held-out size",
                       "held-out fit MB", "held-out error"], body)]
    if errors:
        lines.append(f"\n{sum(e <= 5 for e in errors)}/{len(errors)} records within +-5% (max |error| "
                     f"{max(errors):.1f}%)" + (f"; leave-one-model-size-out: {sum(e <= 5 for e in loo)}/{len(loo)} "
                                               f"within +-5% (max |error| {max(loo):.1f}%)" if loo else ""))
    return "\n".join(lines)


def calibration_table(rows: list[dict[str, Any]]) -> str:
    from bench.estimate.tables import markdown

    def fmt(v: float | None, unit: str) -> str:
        if v is None:
            return "-"
        return f"{v:,.0f}" if unit == "count" else f"{v:,.3f}" if unit == "s" else f"{v:,.1f}"

    body = [[r["cell"], r["component"], r["unit"], fmt(r["predicted"], r["unit"]), fmt(r["measured"], r["unit"]),
             "-" if r["error_pct"] is None else f"{r['error_pct']:+.1f}%"] for r in rows]
    return markdown(["cell", "component", "unit", "predicted", "measured", "error"], body)
