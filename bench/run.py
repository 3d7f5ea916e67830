"""`python -m bench.run [overrides]`: measure one cell; with -m, a Hydra sweep of cells.

Thin on purpose: check the command line, compose with Hydra, bind to typed configs, run the cell (in a
fresh process when sweeping), print one line per cell. A sweep skips cells whose success record exists
(force=true reruns them) and cells that resolve to a config it already ran, and ends with a summary table.
Exit status: 0 all cells succeeded or were skipped (does not fit), 1 some oom / failed, 2 bad input.
"""
from __future__ import annotations

import sys
import time

from bench import sweep
from bench.cli import CONF_DIR, count_jobs, fail, validate_argv
from bench.config import ConfigError, build_run_config

GB = 1e9
_exit_codes: list[int] = []


def summary_line(record: dict, path: object) -> str:
    parts = [f"{sweep.cell_name(record['cell'])} -> {record['status']}"]
    if record["status"] != "success":
        parts.append(((record.get("error") or {}).get("message") or "").splitlines()[0][:300])
    mem, timing, params = record.get("memory") or {}, record.get("timing") or {}, record.get("params") or {}
    if mem.get("peak_bytes") is not None:
        over = mem.get("peak_over_baseline_bytes")
        parts.append(f"peak {mem['peak_bytes'] / GB:.2f} GB ({mem['peak_source']}"
                     + (f"; +{over / GB:.2f} GB over the pre-load baseline)" if over is not None else ")"))
    if timing:
        parts.append(f"{timing['steps_per_s']:.2f} steps/s, {timing['tokens_per_s']:,.0f} tokens/s")
    if params:
        parts.append(f"trainable {params['trainable']:,} of {params['total']:,} ({params['trainable_pct']:.2f}%)")
    stats = (record.get("repeats") or {}).get("stats") or {}
    if "steps_per_s" in stats:
        st = stats["steps_per_s"]
        parts.append(f"{st['n']} repeats: {st['mean']:.2f} ± {st['stdev']:.2f} steps/s "
                     f"(95% CI {st['ci95'][0]:.2f}-{st['ci95'][1]:.2f})")
    quality = record.get("quality") or {}
    if quality.get("main") is not None:
        parts.append(f"{quality['task']} {quality['main_metric']} {quality['main']:.4f}")
    parts.append(f"record {path}")
    return "bench: " + " | ".join(parts)


def _sweep_context() -> tuple[bool, int | None, bool]:
    """(multirun?, this job's index, cells run in-process by Hydra's basic launcher?)"""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    basic = "BasicLauncher" in str(hc.launcher.get("_target_", ""))
    return multirun, (hc.job.num if multirun else None), basic


def _task(raw) -> None:  # raw: the composed DictConfig
    from omegaconf import OmegaConf

    from bench.config import to_dict
    from bench.launcher import cell_record_path, run_isolated
    from bench.record import config_hash, read_record

    multirun, index, basic = _sweep_context()
    try:
        cfg = build_run_config(OmegaConf.to_container(raw, resolve=True))
    except ConfigError as exc:
        fail(exc)
    path = cell_record_path(cfg)
    if multirun and not cfg.force:
        earlier = sweep.previous(config_hash(to_dict(cfg)))
        record = _existing_record(path, read_record)
        if record is not None and (earlier or record["status"] == "success"):
            why = "done (success record exists)"
            if earlier:
                why = f"same resolved config as {earlier['cell']}" + (
                    " (full fine-tuning has no rank)" if cfg.method.name == "full" else "")
            entry = sweep.entry_for(record, path, 0.0, outcome=f"skipped: {why}")
            entry["status"] = "skipped"
            sweep.append(entry)
            print(sweep.progress_line(entry, index), flush=True)
            return
    started = time.perf_counter()
    multiprocess = cfg.nproc > 1 or cfg.parallel != "none"  # torchrun, through the launcher
    isolated = (cfg.isolate == "always" or (cfg.isolate == "auto" and (multirun and basic or multiprocess))
                or cfg.repeats > 1)
    try:
        if cfg.repeats > 1:
            from bench.repeats import run_repeats

            record, path = run_repeats(cfg)
        elif isolated:
            record, path, _ = run_isolated(cfg)
        else:
            from bench.cell import run_cell

            record, path = run_cell(cfg)
    except ConfigError as exc:
        fail(exc)
    entry = sweep.entry_for(record, path, time.perf_counter() - started)
    sweep.append(entry)
    if not isolated or not multirun or cfg.repeats > 1:
        print(summary_line(record, path), flush=True)
    if multirun:
        print(sweep.progress_line(entry, index), flush=True)
    _exit_codes.append(0 if record["status"] in ("success", "skipped") else 1)


def _existing_record(path, read) -> dict | None:
    """The cell's record from an earlier run, read once; None when there is none (or it is unreadable)."""
    if not path.exists():
        return None
    try:
        return read(path)
    except ValueError:
        return None


def main(argv: list[str] | None = None) -> None:
    import hydra

    argv = sys.argv[1:] if argv is None else argv
    multirun = "-m" in argv or "--multirun" in argv
    try:
        validate_argv(argv)
        ledger = sweep.start_ledger(count_jobs(argv) if multirun else None)
    except ConfigError as exc:
        fail(exc)
    sys.argv = [sys.argv[0], *argv]
    try:
        hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")(_task)()
        entries = sweep.ledger_entries(ledger)
    finally:
        ledger.unlink(missing_ok=True)
    if multirun:
        print("\n" + sweep.summary(entries), flush=True)
        sys.exit(sweep.exit_status(entries))
    sys.exit(max(_exit_codes, default=0))


if __name__ == "__main__":
    main()
