"""`python -m bench.run [overrides]`: measure one cell (or, with -m, a Hydra sweep of cells).

Thin on purpose: check the command line, compose with Hydra, bind to typed configs, run the cell, print
one summary line. Exit status: 0 success or skipped (does not fit), 1 oom / failed, 2 bad input.
"""
from __future__ import annotations

import sys

from bench.cli import CONF_DIR, fail, validate_argv
from bench.config import ConfigError, build_run_config

GB = 1e9
_exit_codes: list[int] = []


def summary_line(record: dict, path: object) -> str:
    cell = record["cell"]
    name = " / ".join(str(cell[k]) for k in ("method", "model", "task"))
    if cell.get("rank") is not None:
        name += f" r{cell['rank']}"
    parts = [f"{name} -> {record['status']}"]
    if record["status"] != "success":
        parts.append((record.get("error") or {}).get("message", "").splitlines()[0][:300])
    mem, timing, params = record.get("memory") or {}, record.get("timing") or {}, record.get("params") or {}
    if mem.get("peak_bytes") is not None:
        parts.append(f"peak {mem['peak_bytes'] / GB:.2f} GB ({mem['peak_source']}; "
                     f"+{mem['peak_over_baseline_bytes'] / GB:.2f} GB over the pre-load baseline)")
    if timing:
        parts.append(f"{timing['steps_per_s']:.2f} steps/s, {timing['tokens_per_s']:,.0f} tokens/s")
    if params:
        parts.append(f"trainable {params['trainable']:,} of {params['total']:,} ({params['trainable_pct']:.2f}%)")
    parts.append(f"record {path}")
    return "bench: " + " | ".join(parts)


def _task(raw) -> None:  # raw: the composed DictConfig
    from omegaconf import OmegaConf

    from bench.cell import run_cell

    try:
        cfg = build_run_config(OmegaConf.to_container(raw, resolve=True))
        record, path = run_cell(cfg)
    except ConfigError as exc:
        fail(exc)
    print(summary_line(record, path), flush=True)
    _exit_codes.append(0 if record["status"] in ("success", "skipped") else 1)


def main(argv: list[str] | None = None) -> None:
    import hydra

    argv = sys.argv[1:] if argv is None else argv
    try:
        validate_argv(argv)
    except ConfigError as exc:
        fail(exc)
    sys.argv = [sys.argv[0], *argv]
    hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")(_task)()
    sys.exit(max(_exit_codes, default=0))


if __name__ == "__main__":
    main()
