"""Peak memory, split by phase (load / train / eval), with the baseline taken before the model loads.

CUDA: a background thread samples NVML every `interval_ms` (this process's GPU memory and the device's
used memory) and each phase also keeps torch's max_memory_allocated / max_memory_reserved.
CPU: the kernel's own high-water mark (VmHWM), reset at each phase start through /proc/self/clear_refs,
gives the exact peak resident set of each phase at no cost to the loop; the thread also samples the
resident set (default every 100 ms: on a 2-core box a 10 ms sampler measurably slows a loop whose
OpenMP threads fill both cores, while the GPU case has cores to spare).
The thread sleeps on an Event between samples.
"""
from __future__ import annotations

import contextlib
import os
import resource
import threading
import time
from typing import Any, Iterator

from bench.trackers import nvml
from bench.trackers.base import Tracker

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


def rss_max_kernel() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def proc_kib_field(path: str, field: str) -> int | None:
    """A `Field:   123 kB` line of a /proc file, in bytes (None off Linux)."""
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def rss_hwm_bytes() -> int | None:
    """Peak resident set since the process started or since the last reset_rss_hwm()."""
    return proc_kib_field("/proc/self/status", "VmHWM")


def reset_rss_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # 5: reset the peak-RSS counter only
        return True
    except OSError:
        return False


class MemoryTracker(Tracker):
    section = "memory"

    def __init__(self, device: str, interval_ms: float = 10.0, cuda_index: int = 0,
                 rss_interval_ms: float = 100.0) -> None:
        self.device = device
        self.interval_s = (interval_ms if device == "cuda" else rss_interval_ms) / 1000.0
        self.cuda_index = cuda_index
        self.pid = os.getpid()
        self.handle = nvml.device_handle(cuda_index) if device == "cuda" else None
        self.baseline: dict[str, int | None] = {}
        self.phases: dict[str, dict[str, Any]] = {}
        self._peaks: dict[str, int] = {}
        self._samples = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- sampling ---------------------------------------------------------------------------------
    def _read(self) -> dict[str, int | None]:
        if self.device == "cuda":
            return {"nvml_process": nvml.process_used_bytes(self.handle, self.pid),
                    "nvml_device": nvml.device_used_bytes(self.handle)}
        return {"rss": rss_bytes()}

    def _sample(self) -> None:
        peaks = self._peaks  # the current phase's dict; a phase switch swaps the reference
        for key, value in self._read().items():
            if value is not None and value > peaks.get(key, -1):
                peaks[key] = value
        self._samples += 1

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def start(self) -> None:
        """Record the baseline (call before the model loads) and start the sampler thread."""
        reading = self._read()
        self.baseline = {f"{k}_bytes": v for k, v in reading.items()}
        if self.device == "cuda":
            import torch

            self.baseline["torch_allocated_bytes"] = torch.cuda.memory_allocated(self.cuda_index)
            self.baseline["other_processes_bytes"] = nvml.other_processes_bytes(self.handle, self.pid)
        self._thread = threading.Thread(target=self._loop, name="bench-memory-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # -- phases -----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Track one phase. Re-entering a phase name (train, eval, train, ...) accumulates into it: peaks are
        the max over its segments, seconds and samples add up."""
        cuda = self.device == "cuda"
        if cuda:
            import torch

            torch.cuda.synchronize(self.cuda_index)
            torch.cuda.reset_peak_memory_stats(self.cuda_index)
        self._peaks = {}
        self._samples = 0
        started = time.perf_counter()
        rss_start = rss_bytes()
        hwm_reset = reset_rss_hwm() if not cuda else False
        self._sample()
        try:
            yield
        finally:
            if cuda:
                torch.cuda.synchronize(self.cuda_index)
            self._sample()  # a phase shorter than one interval still gets a reading at both ends
            peaks = self._peaks
            entry: dict[str, Any] = {"samples": self._samples, "seconds": time.perf_counter() - started}
            if cuda:
                entry.update(nvml_process_peak=peaks.get("nvml_process"),
                             nvml_device_peak=peaks.get("nvml_device"),
                             torch_max_allocated=torch.cuda.max_memory_allocated(self.cuda_index),
                             torch_max_reserved=torch.cuda.max_memory_reserved(self.cuda_index))
            else:
                entry.update(rss_peak=peaks.get("rss"), rss_start=rss_start, rss_end=rss_bytes(),
                             rss_hwm=rss_hwm_bytes() if hwm_reset else None)
            self.phases[name] = _merge(self.phases.get(name), entry)

    # -- result -----------------------------------------------------------------------------------
    def result(self) -> dict[str, Any]:
        peak, source = self._headline()
        base_key = {"nvml_process": "nvml_process_bytes", "rss_sampled": "rss_bytes", "rss_kernel_hwm": "rss_bytes",
                    "torch_max_reserved": "torch_allocated_bytes"}.get(source)
        base = (self.baseline.get(base_key) or 0) if base_key else 0
        return {"device": self.device, "sample_interval_ms": self.interval_s * 1000.0,
                "baseline": self.baseline, "phases": self.phases, "peak_bytes": peak, "peak_source": source,
                "peak_over_baseline_bytes": peak - base if peak is not None else None,
                "rss_max_kernel": rss_max_kernel()}

    @classmethod
    def merge_ranks(cls, sections: list[dict[str, Any] | None]) -> dict[str, Any] | None:
        """The block of the rank with the highest peak, with its rank: the rank that runs out first decides
        whether the cell fits. Without peaks (trackers off) rank 0's, as it is."""
        measured = [(rank, s) for rank, s in enumerate(sections) if s and s.get("peak_bytes") is not None]
        if not measured:
            return sections[0]
        rank, top = max(measured, key=lambda item: item[1]["peak_bytes"])
        return {**top, "rank": rank}

    def _headline(self) -> tuple[int | None, str]:
        def best(key: str) -> int | None:
            values = [p.get(key) for p in self.phases.values() if p.get(key) is not None]
            return max(values) if values else None

        if self.device == "cuda":
            if (value := best("nvml_process_peak")) is not None:
                return value, "nvml_process"
            device_peak, base = best("nvml_device_peak"), self.baseline.get("nvml_device_bytes")
            if device_peak is not None and base is not None:
                return device_peak - base, "nvml_device_minus_baseline"
            return best("torch_max_reserved"), "torch_max_reserved"
        hwm, sampled = best("rss_hwm"), best("rss_peak")
        if hwm is not None:  # the kernel syncs RSS counters lazily: a sample can top VmHWM by a few pages
            return max(hwm, sampled or 0), "rss_kernel_hwm"
        return sampled, "rss_sampled"


def _merge(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    if old is None:
        return new
    merged = dict(new)
    for key, value in new.items():
        before = old.get(key)
        if key in ("samples", "seconds"):
            merged[key] = before + value
        elif key == "rss_start":
            merged[key] = before
        elif key != "rss_end" and before is not None:
            merged[key] = before if value is None else max(before, value)
    merged["segments"] = old.get("segments", 1) + 1
    return merged
