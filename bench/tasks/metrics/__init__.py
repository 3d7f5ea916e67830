"""Task metrics as local `evaluate` modules, loadable offline: `load("cola").compute(predictions=..., references=...)`.

Two module files, one per benchmark, as on the hub (`glue` and `squad`): glue_metric.py (config_name = task) and
squad_metric.py (config_name = v1 | v2). Both import their arithmetic from scores.py and their keys from specs.py;
evaluate copies those two files with them into its module cache (relative imports), so each module file also
loads on its own. evaluate 0.4.6 loads a local script by path without any trust_remote_code flag and without
network access (HF_HUB_OFFLINE=1 is fine). Importing this package imports neither evaluate nor datasets.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .specs import METRICS, MetricSpec

if TYPE_CHECKING:
    import evaluate

METRICS_DIR = Path(__file__).resolve().parent


def spec(name: str) -> MetricSpec:
    """Module, config, score keys and main key of metric `name` (a key of METRICS), without loading it."""
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r} (choose from {', '.join(METRICS)})")
    return METRICS[name]


def main_key(name: str) -> str:
    return spec(name).main


def higher_is_better(name: str) -> dict[str, bool]:
    return spec(name).higher_is_better


def load(name: str, keep_in_memory: bool = True, **kwargs: Any) -> "evaluate.EvaluationModule":
    """`evaluate.load` on this package's module file for metric `name` (cola ... wnli, mnli_matched,
    mnli_mismatched, squad, squad_v2). The module has `.main` and `.higher_is_better` too.

    keep_in_memory=True (the default here) keeps predictions out of evaluate's on-disk cache; pass False with
    num_process/process_id for distributed evaluation. Other keyword arguments go to evaluate.load.
    """
    import evaluate

    entry = spec(name)
    return evaluate.load(str(METRICS_DIR / entry.module), config_name=entry.config_name,
                         keep_in_memory=keep_in_memory, **kwargs)
