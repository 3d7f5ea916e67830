"""`python -m bench.fit`: the search's bracket logic against a known boundary (no cells), bad input (exit 2,
nothing written), and on CPU the acceptance check with real cells under cell_memory_cap_gb: the length the
search finds trains, and the first failing length above it runs out of memory, in fresh cells run again."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.config import ConfigError
from bench.launch.fit_search import FitOptions, Probe, parse_options, search
from conftest import ROOT


def fit_cli(*args: str) -> tuple[int, str]:
    """`python -m bench.fit ARGS` in a fresh process, offline: (exit status, stdout + stderr)."""
    proc = subprocess.run([sys.executable, "-m", "bench.fit", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return proc.returncode, proc.stdout + proc.stderr


def threshold_probe(limit: int, seen: list[int]):
    def probe(value: int) -> Probe:
        seen.append(value)
        return Probe(value, "success" if value <= limit else "oom", peak_bytes=value * 1000)
    return probe


@pytest.mark.parametrize("boundary,first,resolution", [(200, 128, 0.05), (200, 128, 0.2), (7, 128, 0.05),
                                                       (1000, 1, 0.05), (129, 128, 0.01), (3, 3, 0.5)])
def test_the_bracket_closes_on_the_boundary_within_the_resolution(boundary, first, resolution):
    seen: list[int] = []
    state, stop = search(first, FitOptions(resolution=resolution), 4096, threshold_probe(boundary, seen))
    assert stop == "resolution", stop
    assert state.lo <= boundary < state.hi  # the answer trained; the first failing value did not
    assert state.hi <= state.lo * (1 + resolution) or state.hi - state.lo == 1
    assert len(seen) == len(set(seen)) and len(seen) <= 25, seen  # no value probed twice


def test_the_limit_stops_a_search_where_everything_fits():
    state, stop = search(100, FitOptions(), 512, threshold_probe(10**9, []))
    assert (stop, state.lo, state.hi, [p.value for p in state.probes]) == ("limit", 512, None, [100, 200, 400, 512])


def test_nothing_fits_is_an_answer_of_none():
    state, stop = search(64, FitOptions(), 512, threshold_probe(0, []))
    assert (stop, state.lo, state.hi) == ("smallest fails", None, 1)


def test_a_probe_that_fails_otherwise_than_oom_stops_the_search():
    def probe(value: int) -> Probe:
        return Probe(value, "success" if value < 256 else "failed", error_type="Killed")

    state, stop = search(128, FitOptions(), 4096, probe)
    assert [p.value for p in state.probes] == [128, 256] and state.hi is None
    assert stop.startswith("probe at 256 ended failed (Killed)")


def test_the_time_cap_stops_between_probes_and_keeps_the_bracket():
    ticks = iter(range(0, 10_000, 100))  # each probe "takes" 100 s
    state, stop = search(128, FitOptions(max_minutes=4), 4096, threshold_probe(1000, []), clock=lambda: next(ticks))
    assert stop.startswith("time cap") and len(state.probes) == 3 and state.lo == 512


def test_the_estimate_is_the_second_probe():
    seen: list[int] = []
    state, stop = search(128, FitOptions(resolution=0.05), 65536, threshold_probe(3000, seen),
                         estimate=lambda first: 2900)
    assert seen[:2] == [128, 2900] and stop == "resolution" and state.lo <= 3000 < state.hi


@pytest.mark.parametrize("pairs,key", [({"axis": "tokens"}, "fit.axis"), ({"resolution": "0"}, "fit.resolution"),
                                       ({"max_minutes": "x"}, "fit.max_minutes"), ({"limit": "1.5"}, "fit.limit"),
                                       ({"colour": "1"}, "fit.colour")])
def test_bad_options_name_the_key(pairs, key):
    with pytest.raises(ConfigError, match=re.escape(key)):
        parse_options(pairs)


@pytest.mark.parametrize("args,start", [
    (["fit.axis=tokens", "cell_memory_cap_gb=2"], "bench.fit: error: fit.axis must be one of"),
    (["device=cpu"], "bench.fit: error: cell_memory_budget_gb: bench.fit on a CPU needs a memory budget"),
    (["train.seq_len=64,128", "cell_memory_cap_gb=2"], "bench.fit: error: train.seq_len: bench.fit takes one value"),
    (["method=lora,nosuch", "cell_memory_cap_gb=2"], "bench.fit: error: method: unknown method 'nosuch'"),
    (["task=sst2", "cell_memory_cap_gb=2"], "bench.fit: error: task: fit.axis=seq_len needs task=synthetic"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, args, start):
    code, out = fit_cli(*args, f"results_dir={tmp_path / 'res'}")
    lines = out.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith(start), out
    assert not (tmp_path / "res").exists()


@pytest.fixture
def fork_server(monkeypatch, request):
    """A fork server of the test's own, started under bench.fit's malloc settings (as bench.fit starts its own
    cells) and patient on a loaded machine (the shared one gives up after 300 s)."""
    from bench.launch import fit_probe, launcher

    for name, value in fit_probe.MALLOC_DEFAULTS.items():
        monkeypatch.setenv(name, value)
    try:
        server = launcher.ForkServer(start_timeout_s=1500)
    except launcher.ForkServerGone as exc:
        pytest.skip(f"no fork server here ({exc})")
    monkeypatch.setattr(launcher, "_fork_server", server)
    request.addfinalizer(server.close)
    return server


def test_a_cell_over_its_memory_budget_is_recorded_oom_with_its_measurements():
    from types import SimpleNamespace

    from bench.cell.runner import over_budget

    def judged(budget_gb, over=300e6, status="success"):
        record = {"status": status, "error": None,
                  "memory": {"peak_bytes": 800e6, "peak_over_baseline_bytes": over, "peak_source": "rss_kernel_hwm"}}
        over_budget(SimpleNamespace(cell_memory_budget_gb=budget_gb), record)
        return record

    record = judged(0.25)
    assert record["status"] == "oom" and record["error"]["type"] == "MemoryBudgetExceeded"
    assert record["error"]["message"].startswith("peak over the pre-load baseline 0.300 GB (rss_kernel_hwm) "
                                                 "exceeded cell_memory_budget_gb=0.25")
    assert record["memory"]["peak_bytes"] == 800e6  # the measurements stay
    assert judged(0.3)["status"] == "success"  # at the budget: fits
    assert judged(0.0)["status"] == "success"  # no budget
    assert judged(0.1, status="failed")["status"] == "failed"  # only a success is judged
    assert judged(0.5, over=None)["status"] == "oom"  # no baseline: the whole peak (0.8 GB) is judged


@pytest.mark.slow  # about 9 forked tiny cells: 2-4 minutes on 2 vCPUs
def test_cpu_found_length_trains_and_the_first_failing_length_is_oom_in_fresh_cells(tmp_path, fork_server):
    """Under cell_memory_budget_gb (the resident peak over the pre-load baseline, judged after the run), the
    length bench.fit finds trains and the first failing length above it is oom, in fresh cells run again. The
    budget is set between the peaks measured at 384 and 448 tokens just before (tiny LoRA, batch 4), so the
    search (128, 256, 512 by doubling, then bisection with resolution 0.2) has a boundary to find; what the test
    checks is that the answer holds when run again, which an address-space cap failed to do (docs/fit.md)."""
    from bench.launch import fit_probe, launcher
    from bench.launch.cli import validate_argv
    from bench.record import read_record

    base = ["method=lora", "model=tiny", "train.steps=2", "train.warmup_steps=1", "cell_start=fork",
            f"results_dir={tmp_path}"]
    peaks = {}
    for value in (384, 448):
        (cfg,) = validate_argv([*base, "experiment_name=budget", f"train.seq_len={value}"])
        rec, _, _ = launcher.run_isolated(fit_probe.probe_config(cfg))
        assert rec["status"] == "success", rec.get("error")
        peaks[value] = rec["memory"]["peak_over_baseline_bytes"]
    assert peaks[384] < peaks[448]
    budget = round((peaks[384] + peaks[448]) / 2e9, 4)
    overrides = [*base, "train.seq_len=128", f"cell_memory_budget_gb={budget}", "experiment_name=fit"]
    (cfg,) = validate_argv(overrides)
    record = fit_probe.run_fit(fit_probe.probe_config(cfg), FitOptions(resolution=0.2, limit=512), "test")

    saved = json.loads(Path(record["_path"]).read_text())
    assert saved["kind"] == "fit" and saved["stop_reason"] == "resolution" and saved["converged"], saved
    assert saved["malloc_arena_max"] == "1" and saved["malloc_mmap_threshold"] == "65536"
    assert saved["cell_memory_budget_gb"] == budget and saved["cell_memory_cap_gb"] == 0
    found, failing = saved["answer"], saved["first_failing"]
    assert found is not None and failing is not None and found < failing <= max(found * 1.2, found + 1)
    for probe in saved["probes"]:  # every probe is a real cell's record, its status as the search saw it
        assert read_record(tmp_path / "fit" / probe["record"])["status"] == probe["status"]
    assert {p["status"] for p in saved["probes"]} == {"success", "oom"}

    for value, expected in ((found, "success"), (failing, "oom")):  # fresh cells, another folder
        (again,) = validate_argv([*overrides[:-1], "experiment_name=check", f"train.seq_len={value}"])
        rec, _, _ = launcher.run_isolated(fit_probe.probe_config(again))
        assert rec["status"] == expected, (value, rec["status"], rec.get("error"), rec["memory"])
        if expected == "oom":
            assert rec["error"]["type"] == "MemoryBudgetExceeded"


def test_the_estimated_start_is_the_largest_value_the_estimator_fits():
    """CUDA's start point, predicted on the meta device (no GPU needed): the value's predicted peak fits the
    memory, the next one's does not."""
    from bench.estimate.predict import predict_cell
    from bench.launch import fit_probe
    from bench.launch.cli import validate_argv

    (cfg,) = validate_argv(["method=lora", "model=tiny", "train.batch_size=4"])
    value, note = fit_probe.estimated_limit(cfg, "seq_len", int(8e9), 131072)
    assert value is not None and str(value) in note
    peak = [predict_cell(fit_probe.with_value(cfg, "seq_len", v), "cuda").peak.total for v in (value, value + 1)]
    assert peak[0] <= 8e9 < peak[1]


def test_the_search_record_holds_the_checkpointing_the_cells_ran_with_and_its_budget():
    from bench.launch.fit_search import Search, fit_record

    state = Search(FitOptions(), 4096, [Probe(128, "success", peak_bytes=1), Probe(256, "oom")])
    config = {"train": {"batch_size": 4, "seq_len": 128, "gradient_checkpointing": False},
              "method": {"name": "qlora", "gradient_checkpointing": True}, "experiment_name": "fit"}
    common = dict(cell={"method": "qlora", "model": "tiny"}, config=config, device={"kind": "cpu"}, cap_gb=0.0,
                  command="test", start={}, seconds=1.0)
    record = fit_record(state, "resolution", **common, budget_gb=0.5)
    assert record["fixed"] == {"batch_size": 4, "gradient_checkpointing": True}  # QLoRA's own default is on
    assert record["cell_memory_budget_gb"] == 0.5 and (record["answer"], record["first_failing"]) == (128, 256)
    assert record["config_hash"] != fit_record(state, "resolution", **common)["config_hash"]  # the budget: another search
