"""The tracker interface and the one record skeleton (CPU, no training): every tracker fills a record key,
the group drives them in order, ranks merge per tracker, and every process that writes a record from
scratch writes the same keys."""
from __future__ import annotations

import contextlib

from bench.record import RunRecord, cell_identity, cell_name, config_hash, new_record, record_path
from bench.trackers import tracker_classes
from bench.trackers.base import Tracker, Trackers
from bench.trackers.memory import MemoryTracker
from bench.trackers.timing import TimingTracker


class Spy(Tracker):
    section = "energy"

    def __init__(self, log: list[str], name: str) -> None:
        self.log, self.name = log, name

    def start(self) -> None:
        self.log.append(f"start {self.name}")

    @contextlib.contextmanager
    def phase(self, name: str):
        self.log.append(f"enter {self.name} {name}")
        yield
        self.log.append(f"exit {self.name} {name}")

    def stop(self) -> None:
        self.log.append(f"stop {self.name}")

    def result(self) -> dict:
        return {"by": self.name}


def test_group_nests_phases_stops_in_reverse_and_fills_sections():
    log: list[str] = []
    group = Trackers([Spy(log, "a"), Spy(log, "b")])
    group.start()
    with group.phase("train"):
        log.append("work")
    group.stop()
    assert log == ["start a", "start b", "enter a train", "enter b train", "work", "exit b train",
                   "exit a train", "stop b", "stop a"]
    record: dict = {}
    group.fill(record)
    assert record == {"energy": {"by": "b"}}


def test_every_tracker_fills_a_record_key_and_the_skeleton_has_it():
    sections = [cls.section for cls in tracker_classes()]
    assert sorted(sections) == ["energy", "memory", "timing"]
    assert set(sections) <= set(RunRecord.__annotations__)


def test_timing_tracker_is_empty_until_training_ends():
    timing = TimingTracker(warmup_steps=2)
    assert timing.result() is None  # a failed cell keeps the skeleton's null
    trained = type("Trained", (), dict(step_times=[0.5, 0.25, 0.25], warmup_step_times=[1.0, 0.9],
                                       measured_steps=3, measured_seconds=1.0, measured_samples=12,
                                       measured_tokens=1536, train_seconds=2.9))()
    timing.trained(trained)
    out = timing.result()
    assert out["steps_per_s"] == 3.0 and out["samples_per_step"] == 4 and out["tokens_per_step"] == 512
    assert out["train_seconds_with_warmup"] == 2.9 and out["warmup_step_times_s"] == [1.0, 0.9]


def test_ranks_merge_per_tracker():
    low, high = {"peak_bytes": 5, "source": "a"}, {"peak_bytes": 9, "source": "b"}
    assert MemoryTracker.merge_ranks([low, high]) == {**high, "rank": 1}
    assert MemoryTracker.merge_ranks([None, None]) is None  # trackers off: rank 0's, as it is
    t0 = {"steps_per_s": 2.0, "samples_per_step": 4, "tokens_per_step": 100}
    t1 = {"steps_per_s": 1.0, "samples_per_step": 4, "tokens_per_step": 120}
    merged = TimingTracker.merge_ranks([t0, t1])
    assert merged["steps_per_s"] == 2.0 and merged["samples_per_s"] == 16.0 and merged["tokens_per_s"] == 440.0
    assert TimingTracker.merge_ranks([t0, None]) is t0  # a rank without timing: rank 0's alone
    assert Tracker.merge_ranks([{"joules": 1.0}, {"joules": 2.0}]) == {"joules": 1.0}


def test_one_skeleton_for_every_writer(make_cfg):
    from bench.launch.launcher import cell_record_path, fallback_record

    cfg = make_cfg("method=lora", "experiment_name=skel")
    cell = cell_identity(cfg)
    from bench.config import to_dict

    assert cell.config == to_dict(cfg) and cell.chash == config_hash(cell.config)
    assert cell.path == record_path(cfg.results_dir, "skel", cell.labels, cell.chash) == cell_record_path(cfg)
    fresh = new_record(cell, cfg.experiment_name)
    assert set(fresh) == set(RunRecord.__annotations__) - {"repeats"}  # repeats: added by bench.launch.repeats
    fallback = fallback_record(cfg, "failed", "Killed", "gone", 1.5, cell=cell)
    assert list(fallback) == list(fresh)
    assert fallback["error"] == {"type": "Killed", "message": "gone"} and fallback["wall_seconds"] == 1.5
    assert fallback_record(cfg, "oom", "MemoryError", "x", 0.0)["config_hash"] == cell.chash
    assert cell_name(cell.labels) == f"lora/{cfg.model.name}/{cfg.task.name} r{cfg.method.rank}"
