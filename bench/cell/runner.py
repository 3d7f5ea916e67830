"""One measured cell: validate on the meta device, preflight, load, train, and write the record.

Bad input raises ConfigError before anything is written. Everything that goes wrong after that (out of
memory, an exception in training, does-not-fit) is data: the record is written with its status.
"""
from __future__ import annotations

import contextlib
import gc
import time
import warnings
from pathlib import Path
from typing import Any

from bench import methods
from bench.config import RunConfig
from bench.cell.measure import measure
from bench.record import RunRecord, cell_identity, new_record, write_record


def plan(cfg: RunConfig, device: str) -> dict[str, Any]:
    """Build the wrapped model on the meta device: catches bad targets, counts parameters, estimates fit."""
    import torch

    from bench.cell import levers, models
    from bench.estimate.preflight import estimate as estimate_fit
    from bench.tasks.quality import check_data, task_head
    from bench.trackers.params import count_parameters

    method = methods.get(cfg.method.name)
    compute = models.train_dtype(cfg.train.precision, device)
    wdtype = method.weights_dtype(cfg, compute)
    check_data(cfg.task)
    meta_model = method.wrap(models.build_model(cfg, device, wdtype, meta=True, **task_head(cfg.task)), cfg)
    try:
        return {"compute": compute, "weights_dtype": wdtype, "params": count_parameters(meta_model),
                "preflight": estimate_fit(cfg, meta_model, compute, device),
                "model": models.describe(cfg.model, meta_model.config), "levers": levers.setup(cfg, meta_model.config)}
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
            else None, **planned["levers"]}


def gpu_busy_reason(cfg: RunConfig, device: str, cuda_index: int = 0) -> str | None:
    """Other processes holding GPU memory spoil a measurement: warn (stderr) or refuse (a skipped record)."""
    import os
    import sys

    if device != "cuda" or cfg.gpu_busy == "ignore":
        return None
    from bench.trackers import nvml

    held = nvml.other_processes_bytes(nvml.device_handle(cuda_index), os.getpid())
    if held is None or held <= cfg.gpu_busy_threshold_gb * 1e9:
        return None
    message = (f"GPU busy: other processes hold {held / 1e9:.1f} GB (gpu_busy_threshold_gb="
               f"{cfg.gpu_busy_threshold_gb:g}); memory and speed would be measured against them")
    if cfg.gpu_busy == "warn":
        print(f"bench: warning: {message}", file=sys.stderr, flush=True)
        return None
    return message


def over_budget(cfg: RunConfig, record: RunRecord) -> None:
    """cell_memory_budget_gb: a successful cell whose peak over its pre-load baseline exceeds the budget becomes
    `oom` (its measurements kept). The kernel's resident high-water mark is reproducible to ~1 MB between runs
    under bench.fit's malloc settings, where an address-space cap's boundary moved between runs (docs/fit.md)."""
    if cfg.cell_memory_budget_gb <= 0 or record["status"] != "success":
        return
    memory = record.get("memory") or {}
    used = memory.get("peak_over_baseline_bytes")
    what = "peak over the pre-load baseline"
    if used is None:
        used, what = memory.get("peak_bytes"), "peak"
    if used is not None and used > cfg.cell_memory_budget_gb * 1e9:
        record.update(status="oom", error={
            "type": "MemoryBudgetExceeded",
            "message": f"{what} {used / 1e9:.3f} GB ({memory.get('peak_source')}) exceeded "
                       f"cell_memory_budget_gb={cfg.cell_memory_budget_gb:g} (judged after the run)"})


def run_cell(cfg: RunConfig) -> tuple[RunRecord, Path]:
    """Run the cell and write its record. With parallel=fsdp|ddp every rank runs this; only rank 0 writes
    (bench.cell.distributed), the other ranks return their own unwritten record."""
    from bench.cell import distributed, levers
    from bench.cell import models

    device = models.resolve_device(cfg.device)
    cfg.train.check_window(cfg.task.kind, cfg.trackers, device)  # before any work: bad input, no record
    levers.check(cfg, device)
    world = distributed.start(cfg, device)
    try:
        return _run_cell(cfg, device, world)
    finally:
        distributed.close(world)


def _run_cell(cfg: RunConfig, device: str, world: Any) -> tuple[RunRecord, Path]:
    from bench.cell import distributed
    from bench.cell import env

    started = time.perf_counter()
    cell = cell_identity(cfg)
    record = new_record(cell, cfg.experiment_name)
    path = cell.path
    # warnings are kept in the record, not printed
    with warnings.catch_warnings(record=True) as caught, recorded_if_interrupted(record, path, world, started):
        warnings.simplefilter("always")
        planned = plan(cfg, device)  # ConfigError propagates: bad input writes no record
        record.update(model=planned["model"], params=planned["params"], preflight=planned["preflight"],
                      setup=setup(cfg, device, planned))
        record["env"] = env.collect(cell.chash)
        distributed.annotate_preflight(record["preflight"], world, cfg)
        busy = gpu_busy_reason(cfg, device, distributed.cuda_index(world))
        skip = None
        slow = (planned["preflight"].get("time") or {}).get("reason")  # predicted > max_cell_minutes here
        if busy:
            skip = {"type": "GpuBusy", "message": busy}
        elif cfg.preflight and distributed.refuses(world, planned["preflight"]):
            skip = {"type": "DoesNotFit", "message": f"does not fit: {planned['preflight']['reason']}"
                    + (f"; {slow}" if slow else "")}
        elif slow:
            skip = {"type": "TooSlow", "message": slow}
        skip = distributed.agree(world, skip)
        if skip:
            record.update(status="skipped", error=skip)
        else:
            measure(cfg, device, planned, record, world)
            over_budget(cfg, record)
    record["warnings"] = _distinct_warnings(caught)
    record["wall_seconds"] = time.perf_counter() - started
    if world is not None:
        if record["status"] in ("oom", "failed"):
            distributed.fail_now(world, record, path)  # several ranks: writes (if first to fail) and exits
        if not distributed.merge(world, record):
            return record, path
    return record, write_record(record, path)


@contextlib.contextmanager
def recorded_if_interrupted(record: RunRecord, path: Path, world: Any, started: float) -> Any:
    """SIGINT, or SIGTERM (bench.launch.worker.Interrupted), stops the cell: its record says so (failed, what it had
    measured so far), then the interrupt goes on up with `.record` = (record, path), and stops the sweep."""
    try:
        yield
    except KeyboardInterrupt as exc:
        import signal

        from bench.cell import distributed

        name = signal.Signals(getattr(exc, "signum", signal.SIGINT)).name
        record.update(status="failed", error={"type": "Interrupted", "message": f"interrupted by {name}"},
                      warnings=[], wall_seconds=time.perf_counter() - started)
        if distributed.rank(world) == 0:  # one record per cell, as for any other outcome
            write_record(record, path)
        exc.record = (record, path)
        raise


def _distinct_warnings(caught: list[warnings.WarningMessage], limit: int = 20) -> list[str]:
    """What the libraries warned about during the cell (e.g. paged optimizers falling back on CPU)."""
    seen: dict[str, None] = {}
    for w in caught:
        if not issubclass(w.category, (DeprecationWarning, FutureWarning)):
            seen.setdefault(f"{w.category.__name__}: {str(w.message).splitlines()[0][:300]}", None)
    return list(seen)[:limit]
