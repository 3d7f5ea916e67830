"""Learning rates chosen without touching the evaluation split: per method, a small grid of method.lr, each
cell trained by the real harness (`python -m bench.run -m`) and scored on examples held out of the training
file (task.eval_split=holdout, never dev); the best mean per method is written as a Hydra config holding
`lr_by_method`, its grid, every score (with a 95% interval when repeats > 1) and the command that made it.

The choice is the highest mean. When the grid's scores are within noise of each other (stats.best names no
leader) the file says which learning rates tie: the pick among them is then arbitrary, and a later reader
should know it.
"""
from __future__ import annotations

import datetime as dt
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from bench.config import ConfigError
from bench.record import cell_identity, read_record
from bench.stats import Estimate, best, mean_interval

# Half-decade grids around each method's usual fine-tuning range (full / GaLore: 1e-4 and below; LoRA-style
# adapters: about ten times higher).
ADAPTER_GRID = (3e-4, 1e-3, 3e-3)
FULL_GRID = (3e-5, 1e-4, 3e-4)
DEFAULT_GRIDS = {"full": FULL_GRID, "galore": FULL_GRID, "lora": ADAPTER_GRID, "lora_all": ADAPTER_GRID,
                 "dora": ADAPTER_GRID, "qlora": ADAPTER_GRID, "qlora8": ADAPTER_GRID}
DEFAULT_METHODS = ("full", "lora", "qlora", "galore")


class NoScore(RuntimeError):
    """A cell of the grid ended without a held-out score (oom, failed, no record): nothing is written."""


@dataclass(frozen=True)
class Trial:
    method: str
    lr: float
    path: Path


@dataclass(frozen=True)
class Scored:
    method: str
    lr: float
    score: Estimate
    seeds: list[float]
    record: str


def sweep_argv(method: str, grid: Sequence[float], overrides: Sequence[str]) -> list[str]:
    """bench.run's command line for one method's grid, scored on the held-out split."""
    return ["-m", *overrides, f"method={method}", "method.lr=" + ",".join(f"{lr:g}" for lr in grid),
            "task.eval_split=holdout"]


def plan(methods: Sequence[str], grids: dict[str, Sequence[float]], overrides: Sequence[str]) -> list[Trial]:
    """Every cell of the search, composed and checked (ConfigError names the key) before anything runs."""
    from bench.launch.cli import validate_argv

    trials = []
    for method in methods:
        if method not in grids:
            raise ConfigError(f"--grid: no learning-rate grid for method {method!r} (give --grid {method}=LR,LR)")
        for cfg in validate_argv(sweep_argv(method, grids[method], overrides)):
            if cfg.task.kind == "synthetic":
                raise ConfigError("task: a learning-rate search needs a text task with a held-out split")
            if cfg.lr_by_method and method in cfg.lr_by_method:
                raise ConfigError(f"lr_by_method.{method}: set by the search's config, it would replace the grid's "
                                  f"method.lr; drop lr_by_method from the search experiment")
            trials.append(Trial(method, cfg.method.lr, cell_identity(cfg).path))
    return trials


def score(trial: Trial) -> Scored:
    """The held-out score of one finished cell: each seed's main metric, their mean and 95% interval."""
    if not trial.path.is_file():
        raise NoScore(f"{trial.path}: no record (the cell did not write one)")
    record = read_record(trial.path)
    quality = record.get("quality") or {}
    if quality.get("eval_split") != "holdout":
        raise ConfigError(f"{trial.path}: quality.eval_split is {quality.get('eval_split')!r}, not holdout; "
                          f"a learning rate is never chosen on the evaluation split")
    runs = (record.get("repeats") or {}).get("runs")
    if runs:
        seeds = [r["quality_main"] for r in runs if r.get("status") == "success" and r.get("quality_main") is not None]
    else:
        seeds = [quality["main"]] if record["status"] == "success" and quality.get("main") is not None else []
    if not seeds:
        raise NoScore(f"{trial.path}: status {record['status']}, no held-out score")
    return Scored(trial.method, trial.lr, mean_interval([100 * s for s in seeds]), [100 * s for s in seeds],
                  str(trial.path))


def choose(scored: Sequence[Scored]) -> dict[str, dict[str, Any]]:
    """Per method: the chosen lr (highest mean held-out score) and the lrs within noise of it."""
    out: dict[str, dict[str, Any]] = {}
    for method in dict.fromkeys(s.method for s in scored):
        rows = {f"{s.lr:g}": s for s in scored if s.method == method}
        top = max(rows.values(), key=lambda s: s.score.value)
        leader, tied = best({k: s.score for k, s in rows.items()}, higher_is_better=True, kind="delta")
        if not top.score.has_interval:  # one seed: only an exactly equal score ties (no interval to judge by)
            tied = [k for k, s in rows.items() if s.score.value == top.score.value]
        out[method] = {"lr": top.lr, "established": leader is not None,
                       "tied": [float(k) for k in tied if float(k) != top.lr] if leader is None else []}
    return out


def render(scored: Sequence[Scored], chosen: dict[str, dict[str, Any]], command: str, metric: str) -> str:
    """The YAML the quickstart reads (`# @package _global_`: it sets lr_by_method), the evidence as comments."""
    lines = ["# @package _global_",
             f"# Learning rates chosen on examples held out of the training file ({metric}, x100, higher is better);",
             "# the dev split was never scored. Written by bench.lr_search; rerun it rather than editing by hand:",
             f"#   {command}",
             f"# {dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}",
             "#",
             f"# {'method':<8} {'lr':>8}  {'held-out mean':>13}  {'95% CI':>15}  seeds"]
    for s in scored:
        ci = f"{s.score.lo:.1f}-{s.score.hi:.1f}" if s.score.has_interval else "(one seed)"
        mark = "  <- chosen" if s.lr == chosen[s.method]["lr"] else ""
        lines.append(f"# {s.method:<8} {s.lr:>8g}  {s.score.value:>13.1f}  {ci:>15}  "
                     + ", ".join(f"{v:.1f}" for v in s.seeds) + mark)
    lines.append("#")
    for method, c in chosen.items():
        if c["tied"]:
            lines.append(f"# {method}: {c['lr']:g} ties with " + ", ".join(f"{lr:g}" for lr in c["tied"])
                         + " (difference within noise or none): the pick among them is the first highest mean, "
                           "not established")
        if not c["established"] and not any(s.score.has_interval for s in scored if s.method == method):
            lines.append(f"# {method}: one seed per learning rate, no interval: the pick is the higher score"
                         + (", and equal scores tie" if c["tied"] else ""))
        grid = sorted(s.lr for s in scored if s.method == method)
        if len(grid) > 2 and c["lr"] in (grid[0], grid[-1]):
            lines.append(f"# {method}: {c['lr']:g} is the grid's {'largest' if c['lr'] == grid[-1] else 'smallest'}"
                         f" rate: the best may lie beyond it (widen the grid with --grid {method}=...)")
    body = ", ".join(f"{m}: {c['lr']:g}" for m, c in chosen.items())
    lines.append("lr_by_method: {" + body + "}")
    return "\n".join(lines) + "\n"


def run(methods: Sequence[str], grids: dict[str, Sequence[float]], overrides: Sequence[str], out: Path,
        command: str, execute: bool = True, jobs: int = 1) -> dict[str, dict[str, Any]]:
    """Plan, run each method's grid through bench.run (done cells are skipped by its resume; `jobs` methods'
    sweeps at a time, each its own process and cells), score, write."""
    trials = plan(methods, grids, overrides)
    if execute:
        pending = [[sys.executable, "-m", "bench.run", *sweep_argv(m, grids[m], overrides)] for m in methods]
        running: list[tuple[list[str], subprocess.Popen]] = []
        while pending or running:
            while pending and len(running) < max(1, jobs):
                argv = pending.pop(0)
                running.append((argv, subprocess.Popen(argv)))
            argv, proc = running.pop(0)
            if proc.wait() == 2:
                for _, other in running:
                    other.wait()
                raise ConfigError(f"bench.run refused {shlex.join(argv[1:])} (bad input, exit 2)")
    scored = [score(t) for t in trials]
    chosen = choose(scored)
    metric = (read_record(trials[0].path).get("quality") or {}).get("main_metric", "main metric")
    text = render(scored, chosen, command, metric)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text)
    tmp.replace(out)
    return chosen
