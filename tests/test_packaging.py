"""The wheel: it carries every YAML of conf/ (as bench.conf) and every module, and bench runs from it with no
checkout, writing ./results/ in the folder it was started from."""
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (path,) = out.glob("*.whl")
    return path


def test_the_wheel_carries_every_yaml_and_every_module(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    yamls = {f"bench/conf/{p.relative_to(ROOT / 'conf').as_posix()}" for p in (ROOT / "conf").rglob("*.yaml")}
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "bench").rglob("*.py")}
    assert len(yamls) > 50 and yamls <= names, sorted(yamls - names)
    assert modules <= names, sorted(modules - names)
    assert wheel.name.startswith("finetune_bench-")  # "bench" on the index is another project


def test_bench_runs_from_the_installed_wheel_outside_a_checkout(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", "import bench.conf_dir as c; print(c.CONF_DIR)"], cwd=work,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == str(site / "bench" / "conf"), proc.stdout + proc.stderr
    proc = subprocess.run([sys.executable, "-m", "bench.run", "train.steps=3", "train.warmup_steps=1"], cwd=work,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (record,) = (work / "results" / "default").glob("*.json")
    assert '"status": "success"' in record.read_text()
