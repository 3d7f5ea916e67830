"""One measured cell: validate on the meta device, preflight, load, train, and write the record.

Bad input raises ConfigError before anything is written. Everything that goes wrong after that (out of
memory, an exception in training, does-not-fit) is data: the record is written with its status.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import gc
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

from bench import methods
from bench.config import ConfigError, RunConfig, to_dict
from bench.record import SCHEMA_VERSION, RunRecord, config_hash, record_path, write_record


def _is_oom(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("out of memory" in text.lower()
                                              or "can't allocate memory" in text)


def cell_labels(cfg: RunConfig) -> dict[str, Any]:
    return {"method": cfg.method.name, "model": cfg.model.name, "task": cfg.task.name,
            "rank": getattr(cfg.method, "rank", None), "bits": cfg.method.base_bits,
            "optimizer": cfg.method.optimizer}


def plan(cfg: RunConfig, device: str) -> dict[str, Any]:
    """Build the wrapped model on the meta device: catches bad targets, counts parameters, estimates fit."""
    import torch

    from bench import models, preflight
    from bench.trackers.params import count_parameters

    method = methods.get(cfg.method.name)
    compute = models.train_dtype(cfg.train.precision, device)
    wdtype = method.weights_dtype(cfg, compute)
    meta_model = method.wrap(models.build_model(cfg, device, wdtype, meta=True), cfg)
    try:
        return {"compute": compute, "weights_dtype": wdtype, "params": count_parameters(meta_model),
                "preflight": preflight.estimate(cfg, meta_model, compute, device),
                "model": models.describe(cfg.model, meta_model.config)}
    finally:
        del meta_model
        gc.collect()
        if device == "cuda":
            torch.cuda.empty_cache()


def setup(cfg: RunConfig, device: str, planned: dict[str, Any]) -> dict[str, Any]:
    """What the run actually does with the config on this device (dtypes, checkpointing)."""
    method = methods.get(cfg.method.name)
    autocast = method.autocast_dtype(cfg, planned["compute"])
    checkpointing = cfg.train.gradient_checkpointing or bool(getattr(cfg.method, "gradient_checkpointing", False))
    return {"device": device, "compute_dtype": str(planned["compute"]).removeprefix("torch."),
            "weights_dtype": str(planned["weights_dtype"]).removeprefix("torch."),
            "autocast_dtype": str(autocast).removeprefix("torch.") if autocast else None,
            "gradient_checkpointing": checkpointing, "batch_size": cfg.train.batch_size,
            "seq_len": cfg.train.seq_len, "grad_accum": cfg.train.grad_accum,
            "quantized_compute_dtype": getattr(cfg.method, "compute_dtype", None) if cfg.method.base_bits < 16
            else None}


def run_cell(cfg: RunConfig) -> tuple[RunRecord, Path]:
    from bench import env, models

    started = time.perf_counter()
    device = models.resolve_device(cfg.device)
    config = to_dict(cfg)
    chash = config_hash(config)
    cell = cell_labels(cfg)
    record: RunRecord = {
        "schema_version": SCHEMA_VERSION, "status": "failed", "error": None,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "experiment": cfg.experiment, "cell": cell, "config": config, "config_hash": chash,
        "model": None, "setup": None, "params": None, "preflight": None, "memory": None, "timing": None,
        "energy": None,
        "losses": [], "env": {}, "wall_seconds": 0.0,
    }
    path = record_path(cfg.results_dir, cfg.experiment, cell, chash)
    with warnings.catch_warnings(record=True) as caught:  # kept in the record, not printed
        warnings.simplefilter("always")
        planned = plan(cfg, device)  # ConfigError propagates: bad input writes no record
        record.update(model=planned["model"], params=planned["params"], preflight=planned["preflight"],
                      setup=setup(cfg, device, planned))
        record["env"] = env.collect(chash)
        if cfg.preflight and not planned["preflight"]["fits"]:
            record.update(status="skipped", error={"type": "DoesNotFit",
                                                   "message": f"does not fit: {planned['preflight']['reason']}"})
        else:
            _measure(cfg, device, planned, record)
    record["warnings"] = _distinct_warnings(caught)
    record["wall_seconds"] = time.perf_counter() - started
    return record, write_record(record, path)


def _distinct_warnings(caught: list[warnings.WarningMessage], limit: int = 20) -> list[str]:
    """What the libraries warned about during the cell (e.g. paged optimizers falling back on CPU)."""
    seen: dict[str, None] = {}
    for w in caught:
        if not issubclass(w.category, (DeprecationWarning, FutureWarning)):
            seen.setdefault(f"{w.category.__name__}: {str(w.message).splitlines()[0][:300]}", None)
    return list(seen)[:limit]


def _measure(cfg: RunConfig, device: str, planned: dict[str, Any], record: RunRecord) -> None:
    import torch

    from bench import models
    from bench.tasks import synthetic
    from bench.train import train_steps
    from bench.trackers.energy import EnergyMeter
    from bench.trackers.memory import MemoryTracker
    from bench.trackers.params import count_parameters
    from bench.trackers.timing import summarize

    method = methods.get(cfg.method.name)
    t = cfg.train
    memory = (MemoryTracker(device, cfg.sample_interval_ms, rss_interval_ms=cfg.rss_sample_interval_ms)
              if cfg.trackers else None)
    energy = EnergyMeter(memory.handle) if memory and device == "cuda" else None
    phase = memory.phase if memory else (lambda name: contextlib.nullcontext())
    torch.manual_seed(t.seed)
    if memory:
        memory.start()
    try:
        with phase("load"):
            model = models.build_model(cfg, device, planned["weights_dtype"])
            model = method.wrap(model, cfg)
            optimizer = method.make_optimizer(model, cfg)
        record["params"] = count_parameters(model)
        data = synthetic.batches(model.config.vocab_size, t.batch_size, t.seq_len, device, t.seed)
        with phase("train"):
            result = train_steps(model, optimizer, data, steps=t.steps, warmup_steps=t.warmup_steps,
                                 grad_accum=t.grad_accum, device=device,
                                 autocast_dtype=method.autocast_dtype(cfg, planned["compute"]),
                                 per_step_timing=cfg.trackers,
                                 on_measure_start=energy.resume if energy else None,
                                 on_measure_end=energy.pause if energy else None)
        record["losses"] = result.losses
        samples = t.batch_size * t.grad_accum
        record["timing"] = summarize(result.step_times, t.warmup_steps, samples, samples * t.seq_len,
                                     result.measured_steps, result.measured_seconds)
        record["energy"] = energy.summary(result.measured_steps) if energy else None
        record["status"] = "success"
    except ConfigError:
        raise
    except Exception as exc:  # failure is data
        record["status"] = "oom" if _is_oom(exc) else "failed"
        record["error"] = {"type": type(exc).__name__, "message": str(exc)[:2000],
                           "traceback": traceback.format_exc(limit=8)[-4000:]}
    finally:
        if memory:
            memory.stop()
            record["memory"] = memory.summary()

