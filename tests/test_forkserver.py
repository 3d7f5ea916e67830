"""cell_start=fork: sweep cells forked from a server that imported the libraries once. The same records and
failure handling as exec'd cells (OOM under the cap, a raising cell, a SIGKILLed cell, a timeout), and the
fallback to exec where the server can't be used (it initialised CUDA, or it never started)."""
import json

from conftest import ROOT, bench_cli

CASES = f"hydra.searchpath=[file://{ROOT}/tests/fixtures/sweep_conf]"


def bench_run(*args, results):
    return bench_cli(*args, f"results_dir={results}", "cell_start=fork")


def records(folder):
    return [json.loads(p.read_text()) for p in sorted(folder.rglob("*.json"))]


def test_forked_cells_fail_as_records_like_exec_cells(tmp_path):
    code, out = bench_run("-m", "+case=ok1,oom,raise,kill", CASES, "experiment_name=fork", "train.steps=3",
                          "train.warmup_steps=1", results=tmp_path)
    assert code == 1, out[-3000:]
    assert "cells start with exec instead" not in out
    by_status = {}
    for r in records(tmp_path):
        key = "oom" if r["config"]["cell_memory_cap_gb"] else r["config"]["fault"]
        by_status[key] = r
    assert by_status["none"]["status"] == "success" and by_status["none"]["env"]["cell_start"] == "fork"
    import torch  # a forked cell computes with the intra-op threads a freshly started process gets

    assert by_status["none"]["env"]["torch_threads"] == torch.get_num_threads()
    assert len(by_status["none"]["timing"]["warmup_step_times_s"]) == 1
    assert by_status["oom"]["status"] == "oom" and by_status["oom"]["env"]["cell_start"] == "fork"
    assert by_status["raise"]["status"] == "failed" and "injected fault" in by_status["raise"]["error"]["message"]
    killed = by_status["sigkill"]
    assert killed["status"] == "failed" and "SIGKILL" in killed["error"]["message"]
    assert killed["env"]["recorded_by"].startswith("bench.launch.launcher")  # the child died: the parent wrote it
    assert "cells: 2 failed, 1 oom, 1 success" in out


def test_a_forked_cell_past_its_timeout_is_killed_and_the_next_cell_still_runs(tmp_path):
    # the timeout applies to both cells: 30 s leaves the 3-step cell room on a loaded 2-core runner (at 10 s it
    # was killed too once the box ran a second suite), while the 100,000-step cell still needs hours
    code, out = bench_run("-m", "train.steps=100000,3", "train.warmup_steps=1", "cell_timeout_s=30",
                          "max_cell_minutes=0", "experiment_name=timeout", results=tmp_path)  # no time preflight skip
    assert code == 1, out[-3000:]
    by_steps = {r["config"]["train"]["steps"]: r for r in records(tmp_path)}
    assert by_steps[100000]["status"] == "failed" and by_steps[100000]["error"]["type"] == "Timeout"
    assert by_steps[3]["status"] == "success" and by_steps[3]["env"]["cell_start"] == "fork"


def test_no_fork_where_preloading_initialised_cuda(monkeypatch, capsys):
    from bench.launch import launcher

    class CudaServer:
        closed = False
        hello = {"ready": True, "cuda_initialized": True}

        def close(self):
            CudaServer.closed = True

    monkeypatch.setattr(launcher, "ForkServer", CudaServer)
    monkeypatch.setattr(launcher, "_fork_server", None)
    monkeypatch.setattr(launcher, "_fork_unusable", None)
    assert launcher.shared_fork_server() is None and CudaServer.closed
    assert launcher.shared_fork_server() is None  # decided once: no second server, no second warning
    err = capsys.readouterr().err
    assert err.count("initialised CUDA") == 1 and "cells start with exec instead" in err


def test_a_server_that_never_starts_falls_back_to_exec(monkeypatch, capsys):
    from bench.launch import forkserver
    from bench.launch import launcher

    monkeypatch.setattr(forkserver.sys, "executable", "/bin/false")  # the server process exits at once
    monkeypatch.setattr(launcher, "_fork_server", None)
    monkeypatch.setattr(launcher, "_fork_unusable", None)
    assert launcher.shared_fork_server() is None
    assert "the fork server did not start" in capsys.readouterr().err
