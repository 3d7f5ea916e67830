"""Trackers measure; they don't train. Each one is usable on its own and cheap when idle; bench.trackers.base
is the interface the cell drives them through."""
from __future__ import annotations


def tracker_classes() -> tuple[type, ...]:
    """Every tracker that fills a record section: a parallel cell merges each rank's sections through these
    (imported here, not at package import, so bench.trackers.nvml alone stays light)."""
    from bench.trackers.energy import EnergyMeter
    from bench.trackers.memory import MemoryTracker
    from bench.trackers.timing import TimingTracker

    return (MemoryTracker, TimingTracker, EnergyMeter)
