"""GPU energy over the measured training steps, from NVML's total-energy counter. Training may run in
segments (evaluation in between): the step loop calls resume/pause around its measured steps, so only they
count."""
from __future__ import annotations

from typing import Any

from bench.trackers import nvml
from bench.trackers.base import Tracker


class EnergyMeter(Tracker):
    section = "energy"

    def __init__(self, handle: Any | None) -> None:
        self.handle = handle
        self.measured_steps = 0
        self._since_mj: int | None = None
        self._total_mj = 0
        self._ok = handle is not None

    def resume(self) -> None:
        self._since_mj = nvml.energy_mj(self.handle)
        self._ok = self._ok and self._since_mj is not None

    def pause(self) -> None:
        now = nvml.energy_mj(self.handle)
        if now is None or self._since_mj is None:
            self._ok = False
            return
        self._total_mj += now - self._since_mj
        self._since_mj = None

    def trained(self, result: Any) -> None:
        self.measured_steps = result.measured_steps

    def result(self) -> dict[str, Any] | None:
        if not self._ok or self.measured_steps <= 0:
            return None
        joules = self._total_mj / 1000.0
        return {"joules": joules, "joules_per_step": joules / self.measured_steps,
                "source": "nvmlDeviceGetTotalEnergyConsumption"}
