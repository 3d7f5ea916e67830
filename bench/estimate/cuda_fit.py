"""Fit the CUDA runtime terms (peak.CUDA_FIT) on GPU records, and check them leaving one model size out.

`python -m bench.estimate.cuda_fit results/gpu-h100` prints the dict peak.CUDA_FIT ships (tests check the two
agree). Per successful CUDA record the prediction gives the keys and the feature, the record the targets:
  context    NVML process peak - torch max reserved, per peak.context_key (the optimizer's library): the
             median of the records with that key (in results/gpu-h100 they are identical to the byte)
  allocator  torch max reserved - torch max allocated: least squares over all records at once,
             slack = allocator_bytes[peak.allocator_key] + k x the largest dequantised weight (one constant per
             training regime, one shared k; the weight is 0 without a 4/8-bit base)
Leave-one-model-size-out (`leave_one_size_out`): for each nominal size, the terms are refitted on the records
of the other sizes only and the held-out records' peaks predicted with them, so a record never predicts itself.
"""
from __future__ import annotations

import statistics
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bench.estimate.peak import allocator_key, context_key, cuda_runtime

if TYPE_CHECKING:
    from bench.estimate.predict import Prediction


@dataclass(frozen=True)
class Point:
    """One CUDA record, reduced to what the fit reads."""
    record: str
    size: str  # nominal model size (1B, 3B, ...): the leave-one-out unit
    context_key: str
    allocator_key: str
    dequantized_bytes: int
    predicted_tensor_bytes: int
    measured_context_bytes: int  # NVML process peak - reserved
    measured_slack_bytes: int  # reserved - allocated
    measured_peak_bytes: int  # the record's headline peak (NVML process peak)

    def predicted_peak(self, fit: dict[str, Any]) -> int:
        runtime = cuda_runtime(self.context_key, self.allocator_key, self.dequantized_bytes, fit)
        return self.predicted_tensor_bytes + sum(runtime.values())


def point(name: str, record: dict, pred: Prediction) -> Point | None:
    """The record's point, or None when it lacks the torch and NVML train-phase peaks (not a CUDA record)."""
    mem = record.get("memory") or {}
    train = (mem.get("phases") or {}).get("train") or {}
    allocated, reserved = train.get("torch_max_allocated"), train.get("torch_max_reserved")
    process, peak = train.get("nvml_process_peak"), mem.get("peak_bytes")
    if mem.get("device") != "cuda" or None in (allocated, reserved, process, peak):
        return None
    cfg = record["config"]
    size = (record.get("model") or {}).get("nominal_size") or cfg["model"].get("nominal_size") or cfg["model"]["name"]
    terms, method = pred.inventory.terms, cfg["method"]
    return Point(record=name, size=str(size), context_key=context_key(terms, method.get("optimizer", "adamw")),
                 allocator_key=allocator_key(terms, int(method.get("base_bits", 16))),
                 dequantized_bytes=int(pred.components.get("largest_dequantized_weight", 0)),
                 predicted_tensor_bytes=pred.peak.tensors, measured_context_bytes=process - reserved,
                 measured_slack_bytes=reserved - allocated, measured_peak_bytes=peak)


def fit(points: list[Point], source: str = "") -> dict[str, Any]:
    """peak.CUDA_FIT's shape from these points only (module docstring); bytes rounded to whole bytes."""
    import numpy as np

    if not points:
        raise ValueError("no CUDA records with torch and NVML peaks to fit")
    contexts = sorted({p.context_key for p in points})
    regimes = sorted({p.allocator_key for p in points})
    context = {k: int(statistics.median(p.measured_context_bytes for p in points if p.context_key == k))
               for k in contexts}
    x = np.array([[1.0 if p.allocator_key == r else 0.0 for r in regimes] + [float(p.dequantized_bytes)]
                  for p in points])
    y = np.array([float(p.measured_slack_bytes) for p in points])
    if not x[:, -1].any():
        x = x[:, :-1]  # no quantised base among the points: k is not identified, left at 0
    coef = np.linalg.lstsq(x, y, rcond=None)[0]
    per_byte = round(float(coef[len(regimes)]), 4) if x.shape[1] > len(regimes) else 0.0
    return {"source": source or f"{len(points)} CUDA records",
            "context_bytes": context,
            "allocator_bytes": {r: int(round(float(c))) for r, c in zip(regimes, coef[:len(regimes)])},
            "allocator_per_dequantized_byte": per_byte}


def leave_one_size_out(points: list[Point]) -> dict[str, dict[str, Any]]:
    """Per record: the held-out size, the fit made without it, and the peak that fit predicts (None when the
    other sizes hold no record of its context key or regime)."""
    out: dict[str, dict[str, Any]] = {}
    for size in sorted({p.size for p in points}):
        rest = [p for p in points if p.size != size]
        held_fit = fit(rest, f"without {size}") if rest else None
        for p in (p for p in points if p.size == size):
            try:
                predicted = p.predicted_peak(held_fit) if held_fit else None
            except KeyError:
                predicted = None
            out[p.record] = {"held_out_size": size, "fit": held_fit, "predicted_peak_bytes": predicted,
                             "error_pct": None if predicted is None
                             else 100.0 * (predicted - p.measured_peak_bytes) / p.measured_peak_bytes}
    return out


def points_from(paths: list[str]) -> list[Point]:
    from bench.estimate.calibrate import config_of, record_paths
    from bench.estimate.predict import predict_cell
    from bench.record import read_record

    found = []
    for path in record_paths(paths):
        record = read_record(path)
        if record.get("status") == "success" and (record.get("memory") or {}).get("device") == "cuda":
            p = point(path.name, record, predict_cell(config_of(record), "cuda"))
            found += [p] if p else []
    return found


def main(argv: list[str] | None = None) -> None:
    import logging
    import os
    import pprint
    import warnings

    from bench.launch.cli import fail

    argv = sys.argv[1:] if argv is None else argv
    if not argv or any(a.startswith("-") for a in argv):
        print("usage: python -m bench.estimate.cuda_fit RECORDS_DIR ... (prints peak.CUDA_FIT refitted)")
        sys.exit(0 if argv and argv[0] in ("-h", "--help") else 2)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    warnings.simplefilter("ignore")
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    try:
        points = points_from(argv)
        result = fit(points, f"{', '.join(argv)}: {len(points)} CUDA records")
    except ValueError as exc:
        fail(exc, prog="bench.estimate.cuda_fit")
    pprint.pprint(result, sort_dicts=False, width=110)


if __name__ == "__main__":
    main()
