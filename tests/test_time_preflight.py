"""The time preflight (bench.estimate.throughput): a cell predicted to train longer than max_cell_minutes on
this device is skipped as TooSlow before loading anything; a cell that runs keeps its prediction. Also the
progress lines of long phases (bench.cell.progress) and the guard against bitsandbytes' hub kernels
(bench.hub_kernels)."""
from __future__ import annotations

import io
import json
import math
import sys
import time
import types

import pytest

from conftest import bench_cli

SMALL = ("train.steps=3", "train.warmup_steps=1", "train.batch_size=2", "train.seq_len=32", "device=cpu")


def test_probe_is_positive_finite_and_cached():
    from bench.estimate import throughput

    first = throughput.matmul_flops_per_s("cpu", "float32")
    assert first > 0 and math.isfinite(first)
    t = time.perf_counter()
    assert throughput.matmul_flops_per_s("cpu", "float32") == first
    assert time.perf_counter() - t < 0.01 and throughput.matmul_flops_per_s.cache_info().hits >= 1


def test_rule_names_the_hours_and_the_limit_and_zero_disables_it(make_cfg, monkeypatch):
    from bench.estimate import throughput

    monkeypatch.setattr(throughput, "matmul_flops_per_s", lambda device, dtype: 10e9)
    flops = {"hardware_flops": 1e15, "dequant_element_ops": 0, "matmul_params_per_token": 1}
    slow = throughput.predict_time(make_cfg("method=lora", "model=13b"), flops, 0, "cpu", "float32")
    expected = 10 * 1e15 / (10e9 * throughput.CPU_FRACTION)  # train.steps x FLOPs / (probe x fraction)
    assert slow["too_slow"] and slow["predicted_seconds"] == pytest.approx(expected)
    assert slow["source"] == "cpu matmul probe" and slow["limit_minutes"] == 30
    assert slow["reason"].startswith(f"too slow here: ~{expected / 3600:.1f} h for 10 steps on this CPU (probe: "
                                     f"10.0 GFLOP/s float32")
    assert "max_cell_minutes=30" in slow["reason"]
    off = throughput.predict_time(make_cfg("method=lora", "model=13b", "max_cell_minutes=0"), flops, 0, "cpu",
                                  "float32")
    assert not off["too_slow"] and off["reason"] is None and off["predicted_seconds"] == pytest.approx(expected)


def test_a_catalog_gpu_uses_its_peak_times_the_fraction_and_fp32_gets_no_check(make_cfg, monkeypatch):
    import torch

    from bench.estimate import throughput

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "NVIDIA H100 80GB HBM3")
    flops = {"hardware_flops": 1e15, "dequant_element_ops": 0, "matmul_params_per_token": 1}
    cfg = make_cfg("method=lora", "model=13b")
    gpu = throughput.predict_time(cfg, flops, 0, "cuda", "bfloat16")
    assert gpu["source"] == "catalog peak x fraction (H100 SXM 80GB)" and gpu["fraction"] == throughput.GPU_FRACTION
    assert gpu["predicted_seconds"] == pytest.approx(10 * 1e15 / (989e12 * throughput.GPU_FRACTION))
    fp32 = throughput.predict_time(cfg, flops, 0, "cuda", "float32")
    assert fp32["predicted_seconds"] is None and not fp32["too_slow"]


def test_a_tiny_cell_runs_and_keeps_its_prediction_and_a_tiny_limit_skips_it(make_cfg):
    from bench.cell.runner import run_cell

    record, _ = run_cell(make_cfg(*SMALL))
    assert record["status"] == "success", record["error"]
    predicted = record["preflight"]["time"]
    assert predicted["predicted_seconds"] > 0 and predicted["flops_per_step"] > 0 and not predicted["too_slow"]
    assert predicted["source"] == "cpu matmul probe" and predicted["device_flops_per_s"] > 0

    record, _ = run_cell(make_cfg(*SMALL, "max_cell_minutes=1e-7", "experiment_name=tiny-limit"))
    assert record["status"] == "skipped" and record["error"]["type"] == "TooSlow"
    assert record["memory"] is None and record["timing"] is None  # nothing loaded, nothing trained
    assert record["error"]["message"].startswith("too slow here: ~")


def test_qlora_13b_on_this_cpu_is_skipped_within_seconds(tmp_path):
    started = time.perf_counter()
    code, out = bench_cli("method=qlora", "model=13b", f"results_dir={tmp_path}", "device=cpu", timeout=90)
    wall = time.perf_counter() - started
    assert code == 0, out
    (path,) = tmp_path.rglob("*.json")
    record = json.loads(path.read_text())
    assert record["status"] == "skipped" and record["memory"] is None, record["error"]
    # memory may fail too on a busy machine (then DoesNotFit leads and both reasons are given)
    assert record["error"]["type"] in ("TooSlow", "DoesNotFit")
    message = record["error"]["message"]
    assert "too slow here: ~" in message and " h for 10 steps on this CPU" in message
    assert "max_cell_minutes=30" in message
    assert record["preflight"]["time"]["predicted_seconds"] > 30 * 60
    print(f"qlora 13b skipped in {wall:.1f} s: {message}")


def test_progress_lines_for_a_slow_phase_and_silence_for_a_short_one():
    from bench.cell import progress

    stream = io.StringIO()
    with progress.phase("quantising the 4-bit base", quiet_s=0.05, every_s=0.05, stream=stream) as shown:
        shown.update("layer 12/40")
        time.sleep(0.3)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "bench: quantising the 4-bit base: layer 12/40 (0 s)"
    assert 2 <= len(lines) <= 8 and lines[-1] == "bench: quantising the 4-bit base: done in 0 s"

    quiet = io.StringIO()
    with progress.phase("planning", stream=quiet):
        time.sleep(0.01)
    assert quiet.getvalue() == ""


def test_bitsandbytes_hub_kernel_fetch_is_prevented_unless_opted_in(monkeypatch, tmp_path):
    from bench import hub_kernels

    fake = types.ModuleType("kernels")
    fake.get_kernel = lambda repo_id, **kwargs: f"fetched {repo_id}"
    monkeypatch.setitem(sys.modules, "kernels", fake)
    monkeypatch.delenv(hub_kernels.OPT_IN, raising=False)
    monkeypatch.setattr(hub_kernels, "_blocked", [])  # or later cells in this process would report it
    hub_kernels.guard()
    bnb_module = {"__name__": "bitsandbytes.backends.cpu.ops"}  # where bitsandbytes 0.50.2 calls it, at import
    call = 'from kernels import get_kernel\nget_kernel("kernels-community/quantization-bitsandbytes", version=1)'
    with pytest.warns(RuntimeWarning, match="prevented"), pytest.raises(RuntimeError, match="BENCH_ALLOW_HUB"):
        exec(call, dict(bnb_module))
    assert "kernels-community/quantization-bitsandbytes" in hub_kernels.blocked()
    assert fake.get_kernel("someone/else") == "fetched someone/else"  # other callers are left alone
    monkeypatch.setenv(hub_kernels.OPT_IN, "1")
    exec(call.replace("\nget", "\nresult = get"), namespace := dict(bnb_module))
    assert namespace["result"] == "fetched kernels-community/quantization-bitsandbytes"

    # imported after the guard (e.g. by peft -> bitsandbytes): patched by the import hook
    package = tmp_path / "kernels"
    package.mkdir()
    (package / "__init__.py").write_text("def get_kernel(repo_id, **kwargs):\n    return 'fetched'\n")
    monkeypatch.delitem(sys.modules, "kernels")
    monkeypatch.syspath_prepend(str(tmp_path))
    import kernels  # noqa: PLC0415

    assert kernels.__file__.startswith(str(tmp_path)) and getattr(kernels.get_kernel, "_bench_guard", False)
    monkeypatch.delitem(sys.modules, "kernels")
