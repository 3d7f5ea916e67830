"""Thin, quiet wrapper over pynvml (nvidia-ml-py). On a machine without NVML every call returns None."""
from __future__ import annotations

import functools
import os
from typing import Any


@functools.lru_cache(maxsize=1)
def _nvml() -> Any | None:
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # NVMLError_LibraryNotFound on CPU machines, NVMLError_DriverNotLoaded, ...
        return None
    return pynvml


def available() -> bool:
    return _nvml() is not None


def device_handle(cuda_index: int = 0) -> Any | None:
    """NVML handle of the GPU torch calls `cuda_index` (CUDA_VISIBLE_DEVICES respected)."""
    nv = _nvml()
    if nv is None:
        return None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    try:
        if visible:
            token = visible.split(",")[cuda_index].strip()
            if token.startswith(("GPU-", "MIG-")):
                return nv.nvmlDeviceGetHandleByUUID(token)
            return nv.nvmlDeviceGetHandleByIndex(int(token))
        return nv.nvmlDeviceGetHandleByIndex(cuda_index)
    except Exception:
        return None


def driver_version() -> str | None:
    nv = _nvml()
    try:
        version = nv.nvmlSystemGetDriverVersion() if nv else None
    except Exception:
        return None
    return version.decode() if isinstance(version, bytes) else version


def device_used_bytes(handle: Any) -> int | None:
    nv = _nvml()
    try:
        return int(nv.nvmlDeviceGetMemoryInfo(handle).used) if nv and handle is not None else None
    except Exception:
        return None


def process_used_bytes(handle: Any, pid: int) -> int | None:
    """GPU memory NVML attributes to `pid` (None where the driver hides it, e.g. across PID namespaces)."""
    nv = _nvml()
    if nv is None or handle is None:
        return None
    try:
        for proc in nv.nvmlDeviceGetComputeRunningProcesses(handle):
            if proc.pid == pid and proc.usedGpuMemory is not None:
                return int(proc.usedGpuMemory)
    except Exception:
        return None
    return None


def other_processes_bytes(handle: Any, pid: int) -> int | None:
    """GPU memory held by processes other than `pid`: a busy GPU spoils a measurement."""
    nv = _nvml()
    if nv is None or handle is None:
        return None
    try:
        return sum(int(p.usedGpuMemory or 0) for p in nv.nvmlDeviceGetComputeRunningProcesses(handle)
                   if p.pid != pid)
    except Exception:
        return None


def energy_mj(handle: Any) -> int | None:
    """Total energy since the driver loaded, millijoules (Volta and newer)."""
    nv = _nvml()
    try:
        return int(nv.nvmlDeviceGetTotalEnergyConsumption(handle)) if nv and handle is not None else None
    except Exception:
        return None
