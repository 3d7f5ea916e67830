"""Sweeps: every cell in its own process, failures as records, resume, dedupe, submitit's local executor."""
import json
import os

import pytest

from conftest import ROOT, bench_cli

CASES = f"hydra.searchpath=[file://{ROOT}/tests/fixtures/sweep_conf]"
QUICK = ["train.steps=3", "train.warmup_steps=1"]


def bench_run(*args, results):
    return bench_cli(*args, *QUICK, f"results_dir={results}")


def records(folder):
    return {p.name: json.loads(p.read_text()) for p in sorted(folder.rglob("*.json")) if "logs" not in p.parts}


def test_six_cell_sweep_with_oom_raise_and_sigkill_then_resume(tmp_path):
    args = ["-m", "+case=ok1,ok2,ok3,oom,raise,kill", CASES, "experiment_name=six"]
    code, out = bench_run(*args, results=tmp_path)
    assert code == 1, out[-3000:]
    def case(config):
        if config["cell_memory_cap_gb"]:
            return "oom"
        return config["train"]["seed"] if config["fault"] == "none" else config["fault"]

    by_case = {case(r["config"]): r for r in records(tmp_path).values()}
    assert len(by_case) == 6
    assert [by_case[s]["status"] for s in (1, 2, 3)] == ["success"] * 3
    assert by_case["oom"]["status"] == "oom" and "allocate" in by_case["oom"]["error"]["message"]
    assert by_case["raise"]["status"] == "failed" and "injected fault" in by_case["raise"]["error"]["message"]
    assert by_case["sigkill"]["status"] == "failed" and "SIGKILL" in by_case["sigkill"]["error"]["message"]
    assert "| 6 |" in out and "cells: 2 failed, 1 oom, 3 success" in out
    for i in range(1, 7):
        assert f"[{i}/6]" in out

    code, out = bench_run(*args, results=tmp_path)  # resume: only the failed three run again
    assert code == 1
    progress = [line for line in out.splitlines() if line.startswith("bench: [")]
    assert sum("skipped: done (success record exists)" in line for line in progress) == 3
    assert "cells: 2 failed, 1 oom, 3 skipped" in out


def test_rank_sweep_over_full_is_one_cell(tmp_path):
    code, out = bench_run("-m", "method=full", "method.rank=4,8", "experiment_name=dedupe", results=tmp_path)
    assert code == 0, out[-3000:]
    assert len(records(tmp_path)) == 1
    assert "same resolved config as full/tiny/synthetic (full fine-tuning has no rank)" in out


def test_force_reruns_finished_cells(tmp_path):
    bench_run("-m", "method=lora", "experiment_name=force", results=tmp_path)
    code, out = bench_run("-m", "method=lora", "experiment_name=force", "force=true", results=tmp_path)
    assert code == 0 and "skipped" not in out and "[1/1] lora/tiny/synthetic r8 -> success" in out


@pytest.mark.skipif(__import__("importlib").util.find_spec("hydra_plugins.hydra_submitit_launcher") is None,
                    reason="pip install hydra-submitit-launcher")
def test_submitit_local_executor_runs_two_cells(tmp_path):
    code, out = bench_run("-m", "method=lora,full", "hydra/launcher=submitit_local", "experiment_name=submitit",
                          f"hydra.sweep.dir={tmp_path}/submitit", results=tmp_path)
    assert code == 0, out[-3000:]
    statuses = sorted((r["cell"]["method"], r["status"]) for r in records(tmp_path).values())
    assert statuses == [("full", "success"), ("lora", "success")]
    assert "cells: 2 success" in out


def test_confidence_interval_by_hand():
    from bench.launch.repeats import interval

    got = interval([1.0, 2.0, 3.0])  # mean 2, stdev 1, t(0.975, 2 dof) = 4.303: half width 4.303 / sqrt(3)
    assert got["mean"] == 2.0 and got["stdev"] == 1.0
    assert got["ci95"] == pytest.approx([2.0 - 2.48434, 2.0 + 2.48434], abs=1e-4)
    assert interval([5.0])["ci95"] == [5.0, 5.0]


def test_each_repeat_keeps_its_own_quality_curve():
    from bench.launch.repeats import headline

    curve = [{"step": 0, "main": 0.5}, {"step": 8, "main": 0.7}, {"step": 16, "main": 0.8}]
    record = {"status": "success", "quality": {"main": 0.8, "curve": curve, "target": 0.75, "steps_to_target": 16}}
    run = headline(record)
    assert run["quality_curve"] == [[0, 0.5], [8, 0.7], [16, 0.8]] and run["steps_to_target"] == 16
    assert "quality_curve" not in headline({"status": "success", "quality": {"main": 0.8}})  # no curve, no key
    assert "steps_to_target" not in headline({"status": "success", "quality": {"main": 0.8, "curve": curve}})


def test_repeats_keep_every_run_and_their_spread(tmp_path):
    from bench.stats import combine_runs

    code, out = bench_run("repeats=2", "experiment_name=rep", results=tmp_path)
    assert code == 0, out[-3000:]
    (record,) = records(tmp_path).values()
    rep = record["repeats"]
    assert rep["n"] == 2 and rep["succeeded"] == 2 and len(rep["runs"]) == 2
    speeds = [run["steps_per_s"] for run in rep["runs"]]
    assert [run["seed"] for run in rep["runs"]] == [0, 1]  # each repeat its own seed
    assert all(len(run["step_times_s"]) == 2 for run in rep["runs"])  # enough to recompute every interval
    steps = rep["stats"]["steps_per_s"]  # one estimate from both runs' step times (bench.stats.combine_runs)
    combined = combine_runs([run["step_times_s"] for run in rep["runs"]])
    assert steps["mean"] == pytest.approx(combined.value) and steps["method"] == combined.method
    assert min(speeds) <= steps["mean"] <= max(speeds)
    assert steps["ci95"][0] < steps["mean"] < (steps["ci95"][1] or float("inf"))
    tokens = rep["stats"]["tokens_per_s"]
    assert tokens["mean"] == pytest.approx(steps["mean"] * record["timing"]["tokens_per_step"])
    assert record["timing"]["steps_per_s"] in speeds  # the representative is a run that happened
    assert "2 repeats:" in out


def test_stopped_repeats_resume_at_the_first_missing_one(tmp_path, monkeypatch):
    """A sweep stopped after repeat 0 (its record left as the cell's record) runs only repeats 1 and 2 next time,
    keeping each finished repeat under logs/repeats/ (repeat 0 before repeat 1 overwrites the cell's record)."""
    import dataclasses

    from bench.launch import launcher
    from bench.launch.cli import validate_argv
    from bench.launch.repeats import kept_repeat_path, run_repeats
    from bench.record import cell_identity, new_record, write_record

    (cfg,) = validate_argv(["method=lora", "repeats=3", f"results_dir={tmp_path}", "experiment_name=resume"])
    cell = cell_identity(cfg)

    def repeat_record(index, status="success"):
        record = new_record(cell, "resume")
        record.update(status=status, config={**cell.config, "repeat": index}, timing={"steps_per_s": 1.0 + index})
        return write_record(record, cell.path) and record

    repeat_record(0)  # what a sweep stopped after its first repeat leaves
    ran = []

    def fake_run_isolated(cfg_i, pass_fd=None, cell_i=None):
        if cell_i == cell:
            assert kept_repeat_path(cell.path, 0).exists()  # saved before the cell's record is overwritten
        ran.append(cfg_i.repeat)
        return repeat_record(cfg_i.repeat), cell.path, 0

    monkeypatch.setattr(launcher, "run_isolated", fake_run_isolated)
    merged, _ = run_repeats(cfg, None, cell)
    assert ran == [1, 2] and [run["seed"] for run in merged["repeats"]["runs"]] == [0, 1, 2]
    assert merged["repeats"]["succeeded"] == 3
    assert sorted(p.name for p in kept_repeat_path(cell.path, 0).parent.iterdir()) == [
        kept_repeat_path(cell.path, i).name for i in range(3)]

    ran.clear()  # force=true remeasures every repeat, kept ones included
    merged, _ = run_repeats(dataclasses.replace(cfg, force=True), None, cell)
    assert ran == [0, 1, 2] and merged["repeats"]["succeeded"] == 3

    ran.clear()  # a record of another config (its hash) or a failed repeat is not reused
    for i in range(3):
        kept_repeat_path(cell.path, i).unlink()
    other = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=cfg.train.steps + 1))
    repeat_record(0, status="failed")
    run_repeats(other, None, cell_identity(other))
    assert ran == [0, 1, 2]
