import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def bench_cli(*args: str, timeout: float = 600) -> tuple[int, str]:
    """`python -m bench.run ARGS` in a fresh process from the repository root, offline: (exit status,
    stdout + stderr)."""
    proc = subprocess.run([sys.executable, "-m", "bench.run", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return proc.returncode, proc.stdout + proc.stderr


def compose_raw(*overrides: str) -> dict:
    """The plain mapping bench.run would bind, composed by Hydra from conf/."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from bench.launch.cli import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        raw = compose(config_name="config", overrides=list(overrides))
    return OmegaConf.to_container(raw, resolve=True)


@pytest.fixture
def make_cfg(tmp_path):
    """RunConfig from Hydra overrides, writing records under tmp_path."""
    from bench.config import build_run_config

    def make(*overrides: str):
        return build_run_config(compose_raw(f"results_dir={tmp_path}", *overrides))

    return make
