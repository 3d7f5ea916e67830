"""The real cells of `python -m bench.fit`: each probe is the cell at one train.seq_len (or batch size), run
in a fresh process by bench.launch.launcher (its lock held, its own record written, OOM recorded as `oom`),
with the estimator's does-not-fit check off (preflight=false): a probe measures, it does not predict.

On a CPU the cell's process runs under cell_memory_cap_gb (RLIMIT_AS, an address-space cap), which stands
in for a smaller device; an allocation past it raises inside the cell, which records `oom`. Address space is
not resident memory: torch and its libraries map several hundred MB they never touch, so the cap has to sit
that much above the resident peak the record shows (docs/fit.md). Without a cap a CPU search is refused:
running the host itself out of memory ends in the kernel's OOM killer, not in a record. Under the cap the
cells run with MALLOC_ARENA_MAX=1 (unless set): glibc otherwise gives threads that happen to contend for
malloc an arena of their own, each reserving 64 MB of address space, so where the cap bites would move with
thread scheduling by 64 MB steps (a length that trained once ran out of memory when run again). And with
MALLOC_MMAP_THRESHOLD_=65536 (unless set): glibc's threshold otherwise grows as blocks are freed, so whether a
tensor's memory goes back to the system, and so the peak, depended on the cell's history. Measured here on tiny
LoRA (batch 4, 128-512 tokens, forked cells): resident peaks over three runs of each length spread by up to
40 MB without the two settings, by at most 1 MB with them.
"""
from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any

from bench.config import ConfigError, RunConfig, build_run_config, to_dict
from bench.launch import fit_search
from bench.launch.fit_search import FitOptions, Probe
from bench.record import cell_identity, write_record

ARENA_ENV = "MALLOC_ARENA_MAX"
MMAP_ENV = "MALLOC_MMAP_THRESHOLD_"
MALLOC_DEFAULTS = {ARENA_ENV: "1", MMAP_ENV: "65536"}  # a CPU search's cells (module docstring)

def device_kind(cfg: RunConfig) -> str:
    """cpu or cuda, without importing torch here (NVML sees a GPU, or the config says so)."""
    if cfg.device != "auto":
        return cfg.device
    from bench.trackers import nvml

    return "cuda" if nvml.available() and nvml.device_handle(0) is not None else "cpu"


def check(cfg: RunConfig, options: FitOptions, kind: str) -> None:
    """What makes a search meaningless or unsafe: ConfigError names the key (exit 2, nothing run)."""
    if kind == "cpu" and cfg.cell_memory_cap_gb <= 0 and cfg.cell_memory_budget_gb <= 0:
        raise ConfigError("cell_memory_budget_gb: bench.fit on a CPU needs a memory budget (e.g. "
                          "cell_memory_budget_gb=0.5) or cap (cell_memory_cap_gb=4); the host's own limit ends in "
                          "the OOM killer, not in an oom record")
    if options.axis == "seq_len" and cfg.task.kind != "synthetic":
        raise ConfigError(f"task: fit.axis=seq_len needs task=synthetic (task {cfg.task.name} pads to its data's "
                          f"lengths, up to task.max_length); use fit.axis=batch_size for a text task")
    if cfg.repeats > 1 or cfg.nproc > 1 or cfg.parallel != "none":
        raise ConfigError("repeats / nproc / parallel: bench.fit probes one single-process cell at a time")


def limit_for(cfg: RunConfig, options: FitOptions) -> int:
    if options.limit is not None:
        return options.limit
    if options.axis == "seq_len":
        return int((cfg.model.arch or {}).get("max_position_embeddings") or fit_search.DEFAULT_LIMITS["seq_len"])
    return fit_search.DEFAULT_LIMITS["batch_size"]


def with_value(cfg: RunConfig, axis: str, value: int) -> RunConfig:
    raw = to_dict(cfg)
    raw["train"] = {**raw["train"], axis: value}
    return build_run_config(raw)


def run_probe(cfg: RunConfig, axis: str, value: int) -> Probe:
    """One real cell at `axis`=value; its record, read back as a Probe."""
    from bench.launch import cell_lock
    from bench.launch.launcher import run_isolated

    probe_cfg = with_value(cfg, axis, value)
    cell = cell_identity(probe_cfg)
    lock = cell_lock.CellLock.take(cell.path)
    if lock is None:
        raise ConfigError(f"{cell.path}: this cell is running in {cell_lock.holder(cell.path)}")
    started = time.perf_counter()
    try:
        record, path, _ = run_isolated(probe_cfg, lock.fd, cell)
    except KeyboardInterrupt as exc:  # the cell recorded itself as interrupted: keep it as the last probe
        record, path = getattr(exc, "record", None) or ({"status": "failed"}, cell.path)
        exc.probes = [to_probe(record, path, value, time.perf_counter() - started)]
        raise
    finally:
        lock.release()
    probe = to_probe(record, path, value, time.perf_counter() - started)
    peak = "" if probe.peak_bytes is None else f", peak {probe.peak_bytes / 1e9:.2f} GB ({probe.peak_source})"
    print(f"bench.fit: {cell.labels['method']}/{cell.labels['model']} {axis}={value}: {probe.status}{peak}"
          + (f" [{probe.error_type}: {(probe.error or '')[:120]}]" if probe.status != "success" else ""), flush=True)
    return probe


def to_probe(record: dict[str, Any], path: Path, value: int, seconds: float) -> Probe:
    memory, error = record.get("memory") or {}, record.get("error") or {}
    message = (error.get("message") or "").strip().splitlines()
    return Probe(value, record.get("status", "failed"), memory.get("peak_bytes"), memory.get("peak_source"),
                 error.get("type"), message[0][:300] if message else None, round(seconds, 2), Path(path).name)


def device_of(records_dir: Path, probe: Probe, kind: str) -> dict[str, Any]:
    """What the first probe's record says about the device: kind, name, memory."""
    from bench.record import read_record

    try:
        env = read_record(records_dir / probe.record).get("env") or {}
    except (ValueError, TypeError):
        env = {}
    gpu, cpu = env.get("gpu") or {}, env.get("cpu") or {}
    if kind == "cuda":
        return {"kind": "cuda", "name": gpu.get("name"), "memory_bytes": gpu.get("memory_bytes")}
    return {"kind": "cpu", "name": cpu.get("model"), "memory_bytes": cpu.get("memory_bytes")}


def estimated_limit(cfg: RunConfig, axis: str, capacity: int, limit: int) -> tuple[int | None, str]:
    """The estimator's largest value whose predicted peak fits `capacity` bytes (CUDA), and how it was had."""
    try:
        from bench.estimate.predict import predict_cell

        def fits(value: int) -> bool:
            return predict_cell(with_value(cfg, axis, value), "cuda").peak.total <= capacity

        if not fits(1):
            return None, "the estimator predicts that even 1 does not fit"
        lo, hi = 1, limit + 1
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if fits(mid) else (lo, mid)
        return lo, f"bench.estimate predicts {axis}={lo} fits {capacity / 1e9:.1f} GB"
    except Exception as exc:  # noqa: BLE001 - a method the estimator does not model: the estimate only chose
        return None, f"not predicted ({(str(exc).splitlines() or [type(exc).__name__])[0][:160]}): doubling"


def run_fit(cfg: RunConfig, options: FitOptions, command: str) -> dict[str, Any]:
    """Search one method x model, write its record atomically; returns the record (with `_path`)."""
    kind = device_kind(cfg)
    check(cfg, options, kind)
    limit = limit_for(cfg, options)
    folder = Path(cfg.results_dir) / cfg.experiment_name
    first = getattr(cfg.train, options.axis)
    start: dict[str, Any] = {"value": min(first, limit), "from": f"train.{options.axis}",
                             "estimate": None, "note": None}
    if kind == "cpu":
        start["note"] = "doubling: the estimator does not model a CPU memory cap or budget"
        for name, value in MALLOC_DEFAULTS.items():  # before the first cell (and the fork server) starts
            os.environ.setdefault(name, value)

    def estimate(probe: Probe) -> int | None:
        if kind != "cuda":
            return None
        capacity = device_of(folder, probe, kind).get("memory_bytes") if probe.record else None
        if not capacity:
            start["note"] = "no GPU memory in the first probe's record: doubling"
            return None
        start["estimate"], start["note"] = estimated_limit(cfg, options.axis, int(capacity), limit)
        return start["estimate"]

    started = time.perf_counter()
    state, stop = fit_search.search(first, options, limit, lambda v: run_probe(cfg, options.axis, v), estimate)
    identity = cell_identity(cfg)
    device = device_of(folder, state.probes[0], kind) if state.probes and state.probes[0].record else {"kind": kind}
    record = fit_search.fit_record(state, stop, cell=identity.labels, config=identity.config, device=device,
                                   cap_gb=cfg.cell_memory_cap_gb, command=command, start=start,
                                   seconds=time.perf_counter() - started, budget_gb=cfg.cell_memory_budget_gb)
    record["malloc_arena_max"] = os.environ.get(ARENA_ENV)
    record["malloc_mmap_threshold"] = os.environ.get(MMAP_ENV)
    path = fit_search.fit_record_path(cfg.results_dir, cfg.experiment_name, identity.labels, options.axis,
                                      record["config_hash"])
    write_record(record, path)  # atomic: temporary file, fsync, rename
    return {**record, "_path": str(path)}


def probe_config(cfg: RunConfig) -> RunConfig:
    """The searched config as probes run it: the estimator's check off (a probe measures), isolated."""
    return dataclasses.replace(cfg, preflight=False, isolate="always", force=True)
