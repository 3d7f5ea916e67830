"""CPU: every timing block carries its intervals, every rate from one estimate; the measured window stops for
the reason it records; the events clock chains step boundaries; repeats combine their step times."""
import itertools
import math
import random
from types import SimpleNamespace

import pytest
import torch

from bench import stats
from bench.config import ConfigError, TrainConfig
from bench.trackers.timing import StepTimer, TimingTracker, summarize

TIMES = [0.50, 0.52, 0.49, 0.61, 0.50, 0.48, 0.51, 0.50, 0.53, 0.50, 0.49, 1.90, 0.50, 0.52, 0.50, 0.51]


def test_summary_rates_and_intervals_come_from_one_estimate():
    t = summarize(TIMES, warmup_steps=2, samples_per_step=8, tokens_per_step=1024)
    rate = stats.rate_interval(TIMES)
    assert t["steps_per_s"] == pytest.approx(len(TIMES) / sum(TIMES)) == pytest.approx(rate.value)
    assert t["steps_per_s_ci95"] == pytest.approx([rate.lo, rate.hi])
    for name, per_step in (("samples_per_s", 8), ("tokens_per_s", 1024)):
        assert t[name] == pytest.approx(t["steps_per_s"] * per_step)
        assert t[f"{name}_ci95"] == pytest.approx([x * per_step for x in t["steps_per_s_ci95"]])
    lo, hi = t["steps_per_s_ci95"]
    assert lo < t["steps_per_s"] < hi
    assert t["rate_ci_method"].startswith("batch means: 4 contiguous batches of 4 steps")
    assert t["outlier_steps"]["indices"] == [3, 11] and t["outlier_steps"]["count"] == 2
    assert t["measured_steps"] == 16 and t["step_times_s"] == TIMES  # shown, not dropped
    assert t["stop_reason"] == "fixed steps" and t["step_clock"] == "sync"


def test_no_interval_without_enough_step_times():
    short = summarize([0.5, 0.55, 0.6], 1, 4, 512)
    assert short["steps_per_s_ci95"] is None and short["tokens_per_s_ci95"] is None
    assert short["rate_ci_method"] is None and short["outlier_steps"]["count"] == 0
    off = summarize([], 1, 4, 512, measured_steps=10, measured_seconds=5.0)  # trackers off: total time only
    assert off["steps_per_s"] == 2.0 and off["tokens_per_s"] == 1024.0
    assert off["steps_per_s_ci95"] is None and off["outlier_steps"] is None and off["step_clock"] is None


def test_rank_merge_scales_rates_and_intervals_by_the_global_batch():
    rank0 = summarize(TIMES, 2, 4, 512, stop_reason="ci target 50.0% met after 16 steps (±3.0%)")
    rank1 = summarize([t * 1.1 for t in TIMES], 2, 4, 512)
    merged = TimingTracker.merge_ranks([rank0, rank1])
    assert merged["samples_per_step"] == 8 and merged["tokens_per_step"] == 1024
    assert merged["steps_per_s"] == rank0["steps_per_s"]  # rank 0's clock
    assert merged["tokens_per_s_ci95"] == pytest.approx([x * 1024 for x in rank0["steps_per_s_ci95"]])
    assert merged["samples_per_s"] == pytest.approx(rank0["steps_per_s"] * 8)
    assert merged["stop_reason"] == rank0["stop_reason"]


class FakeEvent:
    """A CUDA event stand-in: record() reads a scripted stream clock (ms)."""
    clock = iter(())

    def record(self):
        self.t = next(FakeEvent.clock)

    def elapsed_time(self, other):
        return other.t - self.t


def test_events_clock_chains_boundaries_and_syncs_once_per_segment():
    FakeEvent.clock = iter([0.0, 100.0, 250.0, 300.0, 1000.0, 1040.0, 1100.0])
    syncs = []
    timer = StepTimer(lambda: syncs.append(1), events=FakeEvent)
    for measured in (False, True, True):  # segment 1: a warm-up step and two measured ones
        timer.begin()
        timer.end(measured)
    assert timer.step_times == [] and not syncs  # nothing read, no host sync per step
    timer.flush()
    assert len(syncs) == 1
    assert timer.warmup_times == [0.1] and timer.step_times == pytest.approx([0.15, 0.05])
    for _ in range(2):  # segment 2 starts from a fresh boundary (evaluation between segments is not timed)
        timer.begin()
        timer.end(True)
    timer.flush()
    assert len(syncs) == 2 and timer.step_times == pytest.approx([0.15, 0.05, 0.04, 0.06])
    assert timer.clock == "events" and StepTimer(lambda: None).clock == "sync"


class Toy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Linear(4, 1)

    def forward(self, input_ids, **_):
        return SimpleNamespace(loss=self.w(input_ids.float()).pow(2).mean())


class ScriptedTimer(StepTimer):
    """Real loop, scripted step times: the stop rule is tested, not this machine's load."""

    def __init__(self, times):
        super().__init__(lambda: None)
        self._times = iter(times)

    def end(self, measured=True):
        (self.step_times if measured else self.warmup_times).append(next(self._times))


def toy_loop(times):
    from bench.cell.step_loop import StepLoop

    model = Toy()
    loop = StepLoop(model, torch.optim.SGD(model.parameters(), lr=0.01),
                    itertools.repeat({"input_ids": torch.ones(2, 4)}), warmup_steps=1, grad_accum=1, device="cpu",
                    autocast_dtype=None)
    loop.timer = ScriptedTimer(times)
    return loop


def noisy(n, seed=0):
    rng = random.Random(seed)
    return [abs(rng.gauss(0.01, 0.004)) + 1e-4 for _ in range(n)]


def test_window_met_at_the_minimum_with_a_wide_target():
    loop = toy_loop([0.01] * 4 + [0.0100, 0.0101, 0.0099, 0.0100] * 10)
    loop.run(9)  # 1 warm-up + 8 measured
    reason = loop.measure_until_ci(0.5, max_seconds=60, max_steps=0)
    assert reason.startswith("ci target 50.0% met after 8 steps") and loop.step == 9
    assert loop.result().stop_reason == reason


def test_window_runs_on_until_the_target_is_met():
    times = noisy(2000)
    loop = toy_loop(times)
    loop.run(9)
    reason = loop.measure_until_ci(0.05, max_seconds=0, max_steps=0)
    n = len(loop.timer.step_times)
    assert reason.startswith(f"ci target 5.0% met after {n} steps") and n > 8
    assert stats.rate_interval(loop.timer.step_times).rel_half_width <= 0.05
    assert stats.rate_interval(loop.timer.step_times[:8]).rel_half_width > 0.05  # it had to run on


def test_window_stops_at_the_step_cap():
    loop = toy_loop(noisy(500))
    loop.run(9)
    reason = loop.measure_until_ci(1e-6, max_seconds=0, max_steps=30)
    assert reason.startswith("step cap 30 steps") and "target 0.0%" in reason
    assert len(loop.timer.step_times) == 30


def test_window_stops_at_the_time_cap():
    loop = toy_loop(noisy(100000))
    loop.run(9)
    reason = loop.measure_until_ci(1e-6, max_seconds=0.3, max_steps=0)
    assert reason.startswith("time cap 0.3 s after") and loop.measured_seconds >= 0.3


def test_fixed_steps_without_a_target():
    loop = toy_loop(noisy(20))
    loop.run(9)
    assert loop.measure_until_ci(0.0, 60, 0) == "fixed steps" and loop.step == 9


def test_window_config_is_checked_naming_the_key():
    for kwargs, key in (({"until_ci": -0.1}, "train.until_ci"), ({"until_ci": 1.0}, "train.until_ci"),
                        ({"step_clock": "tsc"}, "train.step_clock"), ({"max_measure_s": -1}, "train.max_measure_s"),
                        ({"until_ci": 0.02, "max_measure_s": 0, "max_measure_steps": 0}, "train.until_ci"),
                        ({"until_ci": 0.02, "max_measure_steps": 3}, "train.max_measure_steps")):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            TrainConfig(**kwargs).validate()
    TrainConfig(until_ci=0.02).validate()
    with pytest.raises(ConfigError, match=r"train\.until_ci: quality runs train a fixed train\.steps"):
        TrainConfig(until_ci=0.02).check_window("glue", True, "cpu")
    with pytest.raises(ConfigError, match=r"train\.until_ci needs per-step times"):
        TrainConfig(until_ci=0.02).check_window("synthetic", False, "cpu")
    with pytest.raises(ConfigError, match=r"train\.step_clock=events needs CUDA"):
        TrainConfig(step_clock="events").check_window("synthetic", True, "cpu")
    TrainConfig(until_ci=0.02).check_window("synthetic", True, "cpu")
    TrainConfig(step_clock="events").check_window("synthetic", True, "cuda")


def test_window_keys_are_hashed_only_away_from_their_defaults(make_cfg):
    from bench.config import to_dict
    from bench.record import config_hash

    config = to_dict(make_cfg())
    before = {**config, "train": {k: v for k, v in config["train"].items()
                                  if k not in ("until_ci", "max_measure_s", "max_measure_steps", "step_clock")}}
    assert config_hash(config) == config_hash(before)  # records written before these keys keep their hash
    assert config_hash(to_dict(make_cfg("train.until_ci=0.02"))) != config_hash(config)
    assert config_hash(to_dict(make_cfg("train.step_clock=events"))) != config_hash(config)


def test_repeat_stats_combine_step_times_and_keep_one_estimate():
    from bench.launch.repeats import repeat_stats

    runs = [summarize([t * f for t in TIMES], 2, 4, 512) for f in (1.0, 1.05, 0.97)]
    ok = [{"status": "success", "timing": t, "memory": {"peak_bytes": p}, "quality": {"main": q}}
          for t, p, q in zip(runs, (100, 102, 98), (80.0, 81.0, 79.5))]
    got = repeat_stats(ok)
    combined = stats.combine_runs([r["step_times_s"] for r in runs])
    steps = got["steps_per_s"]
    assert steps["mean"] == pytest.approx(combined.value) and steps["ci95"] == pytest.approx([combined.lo, combined.hi])
    assert steps["method"] == combined.method and steps["n"] == 3
    assert got["tokens_per_s"]["mean"] == pytest.approx(steps["mean"] * 512)
    assert got["tokens_per_s"]["ci95"] == pytest.approx([x * 512 for x in steps["ci95"]])
    assert got["samples_per_s"]["ci95"] == pytest.approx([x * 4 for x in steps["ci95"]])
    assert got["quality_main"]["mean"] == pytest.approx(80.1667, abs=1e-4)
    assert got["quality_main"]["method"].startswith("t interval of the mean of 3")
    assert math.isclose(got["peak_bytes"]["mean"], 100.0)
    assert set(steps) >= {"n", "mean", "stdev", "ci95", "rel_ci95_half_width", "method"}


def test_tiny_cpu_cell_records_its_intervals_and_why_the_window_stopped(make_cfg):
    from bench.cell.runner import run_cell
    from bench.run import summary_line

    small = ("model=tiny", "method=lora", "train.batch_size=1", "train.seq_len=16", "train.warmup_steps=1")
    wide, path = run_cell(make_cfg(*small, "experiment_name=wide", "train.steps=9", "train.until_ci=0.99",
                                   "train.max_measure_s=0", "train.max_measure_steps=24"))
    t = wide["timing"]
    assert wide["status"] == "success", wide["error"]
    # a quiet machine meets a ±99% target after the 8 fixed steps; a loaded one may run on, never past the cap
    width = stats.rate_interval(t["step_times_s"]).rel_half_width
    if t["stop_reason"].startswith("ci target 99.0% met after"):
        assert width <= 0.99 and t["stop_reason"].startswith(f"ci target 99.0% met after {t['measured_steps']} steps")
    else:
        assert t["stop_reason"].startswith("step cap 24 steps") and t["measured_steps"] == 24 and width > 0.99
    assert 8 <= t["measured_steps"] == len(t["step_times_s"]) <= 24
    lo, hi = t["steps_per_s_ci95"]
    assert lo < t["steps_per_s"] < hi and t["tokens_per_s_ci95"] == pytest.approx([lo * 16, hi * 16])
    assert t["rate_ci_method"].startswith("batch means") and t["step_clock"] == "sync"
    assert len(wide["losses"]) == 1 + t["measured_steps"]
    assert " steps/s ±" in summary_line(wide, path)

    capped, _ = run_cell(make_cfg(*small, "experiment_name=capped", "train.steps=5", "train.until_ci=0.0001",
                                  "train.max_measure_s=0", "train.max_measure_steps=12"))
    t = capped["timing"]
    assert t["stop_reason"].startswith("step cap 12 steps") and t["measured_steps"] == 12
    assert len(t["step_times_s"]) == 12 and len(capped["losses"]) == 13
    assert t["steps_per_s"] == pytest.approx(12 / sum(t["step_times_s"]))
