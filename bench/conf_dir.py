"""Where the YAML configs are: the checkout's top-level conf/ when bench runs from a checkout (editable
install or the repository root), else the copy the wheel carries as the package `bench.conf` (pyproject.toml
maps conf/ there at build time), found through importlib.resources."""
from __future__ import annotations

import importlib.resources
from pathlib import Path

CHECKOUT_CONF = Path(__file__).resolve().parent.parent / "conf"


def conf_dir() -> Path:
    if (CHECKOUT_CONF / "config.yaml").is_file():
        return CHECKOUT_CONF
    packaged = Path(str(importlib.resources.files("bench") / "conf"))  # bench.conf has no __init__
    if not (packaged / "config.yaml").is_file():
        raise FileNotFoundError(f"bench's configs are missing: neither {CHECKOUT_CONF} nor {packaged} holds "
                                f"config.yaml (reinstall bench)")
    return packaged


CONF_DIR = conf_dir()
