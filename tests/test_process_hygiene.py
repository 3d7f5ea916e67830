"""Nothing lost, nothing silently wrong: a killed or interrupted sweep takes its cells with it and records
the running one; a cell is measured by one process at a time; temporary files stay in the experiment folder
and go away; a cell that can't start under its memory cap is oom, with the cause.

Each sweep here gets a tag in its environment (inherited by every process it starts, exec'd or forked) and
a private TMPDIR, so the checks for leftover processes and temporary files see this test's only."""
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest

from conftest import ROOT, bench_cli, compose_raw

QUICK = ["train.steps=3", "train.warmup_steps=1"]
WAIT_S = 300  # a loaded 2-core runner can take a minute to import torch


class Bench:
    """`python -m bench.run ARGS` running in the background, its output collected as it comes."""

    def __init__(self, tmp_path, *args):
        self.tag = f"bench-test-{uuid.uuid4().hex}"
        self.tmp = tmp_path / f"tmp-{self.tag}"
        self.tmp.mkdir()
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TMPDIR": str(self.tmp), "BENCH_TEST_TAG": self.tag}
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.run", *args, *QUICK, f"results_dir={tmp_path}"],
                                     cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines = []
        threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True).start()

    @property
    def out(self):
        return "".join(self.lines)

    def wait_for(self, predicate, what):
        deadline = time.monotonic() + WAIT_S
        while not predicate():
            assert self.proc.poll() is None and time.monotonic() < deadline, f"no {what}:\n{self.out[-3000:]}"
            time.sleep(0.1)

    def processes(self):
        """(pid, command line) of this run's bench processes still alive (zombies have no environment)."""
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/environ", "rb") as fh:
                    mine = self.tag.encode() in fh.read()
                with open(f"/proc/{pid}/cmdline", "rb") as fh:
                    command = fh.read().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if mine and "bench." in command:
                found.append((int(pid), command))
        return found

    def finish(self, timeout=WAIT_S):
        code = self.proc.wait(timeout)
        time.sleep(0.2)  # the reader thread takes the last lines
        return code

    def kill_leftovers(self):
        for pid, _ in self.processes():
            os.kill(pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.kill()

    def bench_temp_files(self):
        return [p.name for p in self.tmp.iterdir() if p.name.startswith(("bench-cell-", "bench-sweep-"))]


@pytest.fixture
def runs():
    started = []
    yield lambda *args: started.append(Bench(*args)) or started[-1]
    for run in started:
        run.kill_leftovers()


def records(folder):
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json")) if not p.name.startswith(".")]


def hidden_leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".bench-") or p.name.endswith(".lock"))


def gone_within(run, seconds=5.0):
    deadline = time.monotonic() + seconds
    while run.processes() and time.monotonic() < deadline:
        time.sleep(0.1)
    return run.processes()


def holders(run, path):
    """How many of the run's processes have `path` open."""
    def has_open(pid):
        try:
            return any(os.readlink(f"/proc/{pid}/fd/{fd}") == os.path.realpath(path)
                       for fd in os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            return False

    return sum(has_open(pid) for pid, _ in run.processes())


def outcomes(out):
    """{cell: [outcome, ...]} from a sweep's progress lines."""
    found = {}
    for cell, outcome in re.findall(r"^bench: \[\d+/\d+\] (.+?) -> (.+?) \([\d.]+ s\)", out, re.M):
        found.setdefault(cell, []).append(outcome)
    return found


@pytest.mark.parametrize("start", ["exec", "fork"])
def test_sigterm_records_the_running_cell_and_sigkill_leaves_no_process(tmp_path, runs, start):
    # at once: a sweep that gets SIGTERM once its cell is measuring, and an isolated cell's bench.run (the
    # same launcher without a sweep's checks, which import torch) that gets SIGKILL
    term = runs(tmp_path, "-m", "fault=hang,none", f"cell_start={start}", "experiment_name=term")
    kill = runs(tmp_path, "fault=hang", "isolate=always", f"cell_start={start}", "experiment_name=kill")
    term.wait_for(lambda: "fault=hang" in term.out, "cell measuring")
    (lock,) = (tmp_path / "term").glob(".*.lock")
    assert holders(term, lock) == 2  # the sweep, and the cell's own process (not the fork server)
    term.proc.send_signal(signal.SIGTERM)
    if start == "exec":  # killed at once: whatever the cell is doing, it goes
        kill.wait_for(lambda: any("bench.launch.worker" in c for _, c in kill.processes()), "cell process")
    else:
        kill.wait_for(lambda: "fault=hang" in kill.out, "forked cell")
    kill.proc.send_signal(signal.SIGKILL)

    assert term.finish() == 128 + signal.SIGTERM, term.out[-3000:]
    assert gone_within(term) == []
    (record,) = records(tmp_path / "term")  # the second cell never started
    assert record["status"] == "failed" and record["config"]["fault"] == "hang"
    assert record["error"] == {"type": "Interrupted", "message": "interrupted by SIGTERM"}
    assert record["memory"] is not None  # written by the cell itself, with what it had measured
    assert "[1/2]" in term.out and "[2/2]" not in term.out and "cells: 1 failed" in term.out
    assert hidden_leftovers(tmp_path / "term") == [] and term.bench_temp_files() == []

    assert kill.finish() == -signal.SIGKILL
    assert gone_within(kill) == []
    for record in records(tmp_path / "kill"):  # the cell recorded itself unless it died still starting
        assert record["error"] == {"type": "Interrupted", "message": "interrupted by SIGTERM"}
    from bench.launch.cell_lock import clean_stale

    assert [p.name for p in clean_stale(tmp_path / "kill")] != []  # the next sweep's clean-up
    assert [n for n in hidden_leftovers(tmp_path / "kill") if not n.endswith(".lock")] == []
    assert kill.bench_temp_files() == []


def test_sigterm_of_a_single_inline_cell_records_it(tmp_path, runs):
    run = runs(tmp_path, "fault=hang", "experiment_name=inline")  # no -m: the cell runs in bench.run itself
    run.wait_for(lambda: "fault=hang" in run.out, "cell measuring")
    run.proc.send_signal(signal.SIGTERM)
    assert run.finish() == 128 + signal.SIGTERM, run.out[-3000:]
    (record,) = records(tmp_path / "inline")
    assert record["status"] == "failed" and record["memory"] is not None
    assert record["error"] == {"type": "Interrupted", "message": "interrupted by SIGTERM"}
    assert hidden_leftovers(tmp_path / "inline") == []


def test_two_sweeps_on_one_folder_measure_each_cell_once(tmp_path, runs):
    """Two sweeps over the same two cells at once: full is measured once (the other sweep finds it running
    or done), though its lock was left by a holder that died (taken over); galore is being measured by
    someone else (this test holds its lock), so neither sweep touches it."""
    from bench.launch.cell_lock import HOST, CellLock, lock_path
    from bench.config import build_run_config
    from bench.launch.launcher import cell_record_path

    def record_path(method):
        return cell_record_path(build_run_config(compose_raw(f"results_dir={tmp_path}", "experiment_name=both",
                                                             f"method={method}", *QUICK)))

    dead = subprocess.Popen(["true"])
    dead.wait()
    folder = record_path("full").parent
    folder.mkdir(parents=True)
    lock_path(record_path("full")).write_text(f"{dead.pid} {HOST} 2026-01-01T00:00:00\n")
    (folder / f".bench-cell-{dead.pid}@{HOST}-abc.json").write_text("{}")  # a killed sweep's leftover
    live = f".bench-sweep-{os.getpid()}@{HOST}-abc.jsonl"
    (folder / live).write_text("")  # a running sweep's: kept
    held = CellLock.take(record_path("galore"))
    try:
        one = runs(tmp_path, "-m", "method=full,galore", "experiment_name=both")
        two = runs(tmp_path, "-m", "method=full,galore", "experiment_name=both")
        assert one.finish() == 0, one.out[-3000:]
        assert two.finish() == 0, two.out[-3000:]
    finally:
        held.release()
    seen = outcomes(one.out)
    for cell, outcome in outcomes(two.out).items():
        seen.setdefault(cell, []).extend(outcome)
    assert seen.pop("galore/tiny/synthetic r128") == [f"skipped: running in pid {os.getpid()}"] * 2
    got = seen.pop("full/tiny/synthetic")
    assert seen == {} and len(got) == 2 and got.count("success") == 1, got
    (other,) = [o for o in got if o != "success"]
    assert other == "skipped: done (success record exists)" or other.startswith("skipped: running in pid ")
    assert [r["config"]["method"]["name"] for r in records(folder)] == ["full"]
    assert hidden_leftovers(folder) == [live]
    assert one.bench_temp_files() == [] and two.bench_temp_files() == []


def test_a_cell_that_cannot_start_under_its_cap_is_oom_with_the_cause(tmp_path):
    code, out = bench_cli("method=full", "isolate=always", "cell_memory_cap_gb=0.5", "experiment_name=cap", *QUICK,
                          f"results_dir={tmp_path}")
    assert code == 1, out[-3000:]
    (record,) = records(tmp_path / "cap")
    assert record["status"] == "oom", record["error"]
    message = record["error"]["message"]
    assert "cell_memory_cap_gb=0.5" in message
    assert re.search(r"MemoryError|failed to map segment|annot allocate memory|zero-fill", message), message


def test_a_cap_without_isolation_is_refused_before_any_work(tmp_path):
    code, out = bench_cli("cell_memory_cap_gb=1", *QUICK, f"results_dir={tmp_path}")
    lines = out.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("bench.run: error: cell_memory_cap_gb"), out
    assert "isolate=always" in lines[0] and not list(tmp_path.rglob("*.json"))
