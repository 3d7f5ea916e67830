"""The does-not-fit check bench.run makes before loading anything, on bench.estimate's memory model.

`estimate(cfg, meta_model, compute, device)` (it replaced the first-order bench.preflight): keys
(breakdown_bytes, needs_device_bytes, needs_host_bytes, host_available_bytes, device_available_bytes, fits,
reason, model, device), the breakdown being the components present at the predicted training peak, so it
sums to needs_device_bytes; needs_host_bytes is what the host holds on the way (a random-init quantised base
is made one weight at a time, so only a transient).
Also: params (exact, as the run will hold them), peak_phase, components (each at full size), weights_bytes
(by storage), flops, notes, and `time`: the predicted training time against max_cell_minutes
(bench.estimate.throughput; bench.cell.runner skips the cell as TooSlow when time["too_slow"]).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bench.estimate.predict import Prediction, predict

if TYPE_CHECKING:
    import torch

    from bench.config import RunConfig

GB = 1e9
MODEL_NAME = "bench.estimate v1 (saved-tensor activation model, phase peak)"


def breakdown(pred: Prediction) -> dict[str, int]:
    """The six breakdown keys, at the predicted peak; runtime holds context and slack."""
    at = pred.peak.at_peak
    out = {key: int(at.get(key, 0)) for key in ("weights", "cast_copies", "gradients", "optimizer", "activations")}
    out["runtime"] = int(sum(pred.peak.runtime.values()))
    return out


def from_prediction(pred: Prediction, device_available: int | None, host_available: int | None) -> dict[str, Any]:
    need_device = int(pred.peak.total)  # training; host_load: what passes through the host while loading
    host_load = pred.host_load_bytes
    result: dict[str, Any] = {
        "breakdown_bytes": breakdown(pred), "needs_device_bytes": need_device,
        "needs_host_bytes": host_load if pred.device == "cuda" else max(host_load, need_device),
        "host_available_bytes": host_available, "device_available_bytes": device_available,
        "device": pred.device, "model": MODEL_NAME, "params": pred.inventory.summary(),
        "peak_phase": pred.peak.phase, "components": pred.components, "weights_bytes": pred.weights,
        "flops": pred.flops, "notes": pred.notes,
    }
    reasons = []
    if device_available is not None and need_device > device_available:
        reasons.append(f"needs ~{need_device / GB:.1f} GB to train on {pred.device}, "
                       f"have {device_available / GB:.1f} GB")
    host_need = result["needs_host_bytes"]
    if host_available is not None and host_need > host_available and (pred.device == "cuda" or host_load > need_device):
        reasons.append(f"needs ~{host_need / GB:.1f} GB of host memory, have {host_available / GB:.1f} GB "
                       f"(training itself: ~{need_device / GB:.1f} GB)")
    result["fits"] = not reasons
    result["reason"] = "; ".join(reasons) or None
    return result


def host_available_bytes() -> int | None:
    from bench.trackers.memory import proc_kib_field

    return proc_kib_field("/proc/meminfo", "MemAvailable")


def estimate(cfg: RunConfig, meta_model: torch.nn.Module, compute: torch.dtype, device: str) -> dict[str, Any]:
    """The preflight: predicted need vs what the device and host have now, and predicted time vs
    max_cell_minutes (`time`, see bench.estimate.throughput)."""
    import torch

    from bench import methods

    from bench.cell import progress
    from bench.estimate.throughput import matmul_dtype, predict_time

    from bench.estimate.inventory import method_terms
    from bench.methods.interface import ConfigError

    try:
        method_terms(cfg)
    except ConfigError as exc:  # a method without estimator terms still runs, unchecked (methods/interface.py)
        return {"fits": None, "reason": None, "device": device, "model": MODEL_NAME,
                "notes": [f"{exc}: no memory or time check before this cell"]}
    with progress.phase("planning: estimating memory and time"):
        pred = predict(cfg, meta_model, compute, device)
        host = host_available_bytes()
        if device == "cuda":
            device_available: int | None = int(torch.cuda.mem_get_info()[0])
        else:  # training on the host: the device is the host
            device_available = host
        result = from_prediction(pred, device_available, host)
        dtype = matmul_dtype(cfg, compute, methods.get(cfg.method.name).autocast_dtype(cfg, compute))
        quantised = sum(r.numel for r in pred.inventory.rows if r.kind == "quantized")
        result["time"] = predict_time(cfg, pred.flops, quantised, device, dtype)
    return result
