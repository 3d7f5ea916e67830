"""Trackers on CPU: per-phase peaks really are per phase, and the sampler stops."""
import torch

from bench.trackers.memory import MemoryTracker


def test_cpu_phase_peaks_are_reset_between_phases():
    tracker = MemoryTracker("cpu", rss_interval_ms=5)
    tracker.start()
    with tracker.phase("big"):
        block = torch.ones(300 * 2**20 // 4)  # 300 MiB, touched
        del block
    with tracker.phase("small"):
        block = torch.ones(20 * 2**20 // 4)
        del block
    tracker.stop()
    assert not tracker._thread.is_alive()
    big, small = tracker.phases["big"], tracker.phases["small"]
    assert big["rss_hwm"] - big["rss_start"] >= 290 * 2**20
    assert small["rss_hwm"] < big["rss_hwm"] - 200 * 2**20  # the high-water mark was reset at phase start
    summary = tracker.result()
    assert summary["peak_source"] == "rss_kernel_hwm"
    assert summary["peak_bytes"] == max(big["rss_hwm"], big["rss_peak"])
    assert summary["peak_over_baseline_bytes"] == summary["peak_bytes"] - tracker.baseline["rss_bytes"]
    assert big["samples"] >= 2  # a reading at both ends of even a short phase


def test_reentered_phase_accumulates_segments():
    tracker = MemoryTracker("cpu", rss_interval_ms=5)
    tracker.start()
    with tracker.phase("train"):
        block = torch.ones(200 * 2**20 // 4)
        del block
    first = dict(tracker.phases["train"])
    with tracker.phase("eval"):
        pass
    with tracker.phase("train"):
        pass
    tracker.stop()
    train = tracker.phases["train"]
    assert train["segments"] == 2 and train["samples"] >= first["samples"] + 2
    assert train["seconds"] >= first["seconds"]
    assert train["rss_hwm"] == first["rss_hwm"] and train["rss_start"] == first["rss_start"]
    assert set(tracker.phases) == {"train", "eval"}


def test_energy_meter_without_nvml_reports_nothing():
    from bench.trackers.energy import EnergyMeter

    meter = EnergyMeter(None)
    meter.resume()
    meter.pause()
    meter.trained(type("Trained", (), {"measured_steps": 10})())
    assert meter.result() is None
