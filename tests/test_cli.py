"""The command line: bad input is one line and exit 2 with no record; does-not-fit is a skipped record."""
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT


def run_main(argv, capsys):
    from bench.run import main

    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return exit_info.value.code, capsys.readouterr()


@pytest.mark.parametrize("argv,needle", [
    (["method=foo"], "method: unknown method 'foo'"),
    (["model=99b"], "model: unknown model '99b'"),
    (["task=nope"], "task: unknown task 'nope'"),
    (["method=lora,foo"], "method: unknown method 'foo'"),
    (["method.rank=0"], "method.rank must be > 0"),
    (["train.steps=2", "train.warmup_steps=2"], "train.steps must exceed train.warmup_steps"),
    (["method=galore", "method.base_bits=4"], "method.base_bits"),
    (["method.rnk=8"], "method.rnk"),
    (["method.target_modules=nothing_here"], "method.target_modules='nothing_here' matches no module"),
    (["method=galore", "method.target_modules=zzz"], "method.target_modules='zzz' matches no linear layer"),
])
def test_bad_input_exits_2_with_one_line_and_no_record(tmp_path, capsys, argv, needle):
    code, out = run_main([*argv, f"results_dir={tmp_path}"], capsys)
    assert code == 2
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bench.run: error: ") and needle in lines[0], out.err
    assert not list(tmp_path.rglob("*.json"))


def test_bad_input_through_the_real_entry_point(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bench.run", "method=lora", "method.rank=-1",
                           f"results_dir={tmp_path}"], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "bench.run: error: method.rank must be > 0 (got -1)"
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not list(tmp_path.rglob("*.json"))


def test_does_not_fit_is_a_skipped_record(tmp_path, capsys, monkeypatch):
    from bench.estimate import preflight

    monkeypatch.setattr(preflight, "host_available_bytes", lambda: 8 * 10**9)
    code, out = run_main(["method=qlora", "model=13b", f"results_dir={tmp_path}"], capsys)
    assert code == 0
    (path,) = tmp_path.rglob("*.json")
    record = json.loads(path.read_text())
    assert record["status"] == "skipped" and record["memory"] is None and record["timing"] is None
    message = record["error"]["message"]
    assert message.startswith("does not fit: needs ~") and "have 8.0 GB" in message
    assert record["preflight"]["needs_host_bytes"] > 8 * 10**9
    assert record["params"]["total"] == 13_266_211_840  # llama2-13b base + r64 all-linear adapters
    assert "-> skipped | does not fit" in out.out


def test_modules_import_and_full_cell_runs_without_optional_packages(tmp_path):
    code = f"""
import sys, pkgutil, importlib
for name in ("bitsandbytes", "galore_torch", "pynvml"):
    sys.modules[name] = None  # import fails as if not installed
import bench
for mod in pkgutil.walk_packages(bench.__path__, "bench."):
    importlib.import_module(mod.name)
from bench.run import main
sys.argv = ["bench.run"]
main(["method=full", "train.steps=3", "train.warmup_steps=1", "train.seq_len=32", "results_dir={tmp_path}"])
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (path,) = tmp_path.rglob("*.json")
    assert json.loads(path.read_text())["status"] == "success"


def test_nvml_is_quietly_absent_on_cpu():
    import torch

    from bench.trackers import nvml

    if torch.cuda.is_available():
        pytest.skip("CPU-only check")
    assert nvml.device_handle(0) is None and nvml.energy_mj(None) is None
