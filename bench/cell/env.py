"""Environment of a run: package versions, GPU / driver / CUDA, CPU, git state. No probe at import time."""
from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from bench.record import CELL_START_ENV

PACKAGES = ("torch", "transformers", "peft", "bitsandbytes", "galore-torch", "accelerate", "datasets",
            "evaluate", "hydra-core", "nvidia-ml-py")
REPO_ROOT = Path(__file__).resolve().parents[2]
# OpenMP threads that sleep when idle instead of spinning. Spinning threads (torch's, and in a QLoRA cell those
# of the second OpenMP runtime bitsandbytes' CPU library links) take the cores from whatever else runs when the
# CPU is shared. Measured on this repository's 2-vCPU VM, one MiniLM training step (batch 32 x 64, LoRA r8 on
# q,v): beside one other busy process, QLoRA 8.4 s spinning vs 2.6 s passive, LoRA 6.9 s vs 2.3 s; on the idle
# machine the two were within noise (1.3-1.6 s either way, two runs each). Set before torch loads; a value the
# user exported is kept.
OPENMP_DEFAULTS = {"OMP_WAIT_POLICY": "PASSIVE"}


def set_openmp_defaults() -> None:
    """Called first by bench.run, before torch is imported; cells started from it inherit the setting."""
    for name, value in OPENMP_DEFAULTS.items():
        os.environ.setdefault(name, value)


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_state(root: Path = REPO_ROOT) -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    sha = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"sha": sha, "dirty": bool(status) if status is not None else None}


def cpu_info() -> dict[str, Any]:
    model = platform.processor() or None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    total = None
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        pass
    return {"model": model, "cores": os.cpu_count(), "memory_bytes": total,
            "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None}


def gpu_info() -> dict[str, Any] | None:
    import torch

    if not torch.cuda.is_available():
        return None
    idx = torch.cuda.current_device()
    props = torch.cuda.get_device_properties(idx)
    info: dict[str, Any] = {"name": props.name, "memory_bytes": props.total_memory,
                            "capability": f"{props.major}.{props.minor}", "count": torch.cuda.device_count(),
                            "cuda": torch.version.cuda, "driver": None}
    from bench.trackers import nvml

    handle = nvml.device_handle(idx)
    if handle is not None:
        info["driver"] = nvml.driver_version()
    return info


def collect(config_hash: str) -> dict[str, Any]:
    import torch

    return {
        "packages": package_versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "hostname": platform.node(),
        "cpu": cpu_info(),
        "gpu": gpu_info(),
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),  # None: the runtimes' own default (spinning)
        "cell_start": os.environ.get(CELL_START_ENV, "inline"),  # exec | fork (a sweep's cell) | inline
        "git": git_state(),
        "config_hash": config_hash,
    }
