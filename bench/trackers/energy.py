"""GPU energy over the measured training steps, from NVML's total-energy counter."""
from __future__ import annotations

from typing import Any

from bench.trackers import nvml


class EnergyMeter:
    def __init__(self, handle: Any | None) -> None:
        self.handle = handle
        self._start_mj: int | None = None
        self._end_mj: int | None = None

    def start(self) -> None:
        self._start_mj = nvml.energy_mj(self.handle)

    def stop(self) -> None:
        self._end_mj = nvml.energy_mj(self.handle)

    def summary(self, measured_steps: int) -> dict[str, Any] | None:
        if self._start_mj is None or self._end_mj is None or measured_steps <= 0:
            return None
        joules = (self._end_mj - self._start_mj) / 1000.0
        return {"joules": joules, "joules_per_step": joules / measured_steps,
                "source": "nvmlDeviceGetTotalEnergyConsumption"}
