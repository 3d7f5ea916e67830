"""The import contracts in pyproject.toml's [tool.importlinter] hold: `lint-imports` from the repository root
exits 0 (report/compare import no torch or run-path code, the cell imports nothing of the sweep, the layers
have no cycles, ...). Part of the default `pytest`, so CI checks them."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _lint_imports() -> str | None:
    beside = Path(sys.executable).with_name("lint-imports")  # the venv's, when PATH lacks it
    return str(beside) if beside.exists() else shutil.which("lint-imports")


@pytest.mark.skipif(_lint_imports() is None,
                    reason="import-linter is not installed (pip install -e '.[dev]' or pip install import-linter)")
def test_import_contracts_hold():
    proc = subprocess.run([_lint_imports()], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout
