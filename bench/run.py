"""`python -m bench.run [overrides]`: measure one cell; with -m, a Hydra sweep of cells.

Thin on purpose: check the command line, compose with Hydra, bind to typed configs, run the cell (in a
fresh process when sweeping), print one line per cell. A sweep skips cells whose success record exists
(force=true reruns them) and cells that resolve to a config it already ran, and ends with a summary table.
Exit status: 0 all cells succeeded or were skipped (does not fit), 1 some oom / failed, 2 bad input.
"""
from __future__ import annotations

import sys
import time

from bench.launch import precheck

from bench.launch import ledger as sweep
from bench.launch.cli import CONF_DIR, fail, normalize_overrides, validate_argv
from bench.config import ConfigError, build_run_config

GB = 1e9
_exit_codes: list[int] = []


def plus_minus(value: float, ci95: list | None) -> str:
    """' ±3.1%' (the wider side of the 95% interval, relative), ' (no CI)' without one."""
    if not ci95 or ci95[0] is None or not value:
        return " (no CI)"
    if ci95[1] is None:
        return " (95% CI unbounded above)"
    return f" ±{max(ci95[1] - value, value - ci95[0]) / value * 100:.1f}%"


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
        speed = timing["steps_per_s"]
        parts.append(f"{speed:.2f} steps/s{plus_minus(speed, timing.get('steps_per_s_ci95'))}, "
                     f"{timing['tokens_per_s']:,.0f} tokens/s")
    if params:
        parts.append(f"trainable {params['trainable']:,} of {params['total']:,} ({params['trainable_pct']:.2f}%)")
    stats = (record.get("repeats") or {}).get("stats") or {}
    if "steps_per_s" in stats:
        st = stats["steps_per_s"]
        lo, hi = st["ci95"]
        parts.append(f"{st['n']} repeats: {st['mean']:.2f} steps/s{plus_minus(st['mean'], st['ci95'])} "
                     f"(95% CI {lo:.2f}-{'inf' if hi is None else f'{hi:.2f}'}, stdev {st['stdev']:.2f})")
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
    import signal

    from omegaconf import OmegaConf

    from bench.launch import cell_lock
    from bench.launch.worker import raise_on_signals
    from bench.record import cell_identity

    multirun, index, basic = _sweep_context()
    try:
        cfg = build_run_config(OmegaConf.to_container(raw, resolve=True))
    except ConfigError as exc:
        fail(exc)
    multiprocess = cfg.nproc > 1 or cfg.parallel != "none"  # torchrun, through the launcher
    isolated = (cfg.isolate == "always" or (cfg.isolate == "auto" and (multirun and basic or multiprocess))
                or cfg.repeats > 1)
    if cfg.cell_memory_cap_gb > 0 and not isolated:
        fail(ConfigError(f"cell_memory_cap_gb={cfg.cell_memory_cap_gb:g} caps a cell's own process: it needs "
                         f"isolate=always (here the cell would run inside bench.run's process)"))
    cell = cell_identity(cfg)  # labels, hash and record path: computed once, passed down
    path = cell.path
    cell_lock.clean_stale(path.parent)  # temporary files of sweeps that were killed outright
    handlers = raise_on_signals()  # SIGTERM as well as SIGINT: the cell is recorded, then the sweep stops
    made = [p for p in (path.parent, *path.parent.parents) if not p.exists()]  # by the cell's lock, if any
    try:
        _locked_cell(cfg, cell, multirun, index, isolated)
    except KeyboardInterrupt as exc:
        _stop(exc, path, multirun, index)
    except SystemExit as exc:
        if exc.code == 2:  # bad input found while planning: leave no folder behind either
            for folder in made:
                try:
                    folder.rmdir()
                except OSError:
                    break
        raise
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def _locked_cell(cfg, cell, multirun: bool, index: int | None, isolated: bool) -> None:
    """Run the cell holding its lock (bench.launch.cell_lock), taken before looking for its record: a cell another
    process is measuring is skipped, and one it has just finished is found done."""
    from bench.launch import cell_lock
    from bench.launch.launcher import run_isolated
    from bench.record import read_record

    path = cell.path
    lock = cell_lock.CellLock.take(path)
    if lock is None:
        entry = sweep.skipped_entry(cell.labels, cell.chash, path,
                                    f"running in {cell_lock.holder(path)}")
        sweep.append(entry)
        print(sweep.progress_line(entry, index), flush=True)
        _exit_codes.append(0)
        return
    try:
        if multirun and not cfg.force:
            earlier = sweep.previous(cell.chash, path.parent)
            record = _existing_record(path, read_record)
            finished = record is not None and record["status"] == "success" and (  # all of its repeats
                cfg.repeats == 1 or bool(record.get("repeats")))
            if record is not None and (earlier or finished):
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
        try:
            if cfg.repeats > 1:
                from bench.launch.repeats import run_repeats

                record, path = run_repeats(cfg, lock.fd, cell)
            elif isolated:
                record, path, _ = run_isolated(cfg, lock.fd, cell)
            else:
                from bench.cell.runner import run_cell

                record, path = run_cell(cfg)
        except ConfigError as exc:
            fail(exc)
        except KeyboardInterrupt as exc:
            if getattr(exc, "record", None) is None:  # stopped before the cell began (importing torch)
                from bench.launch.launcher import fallback_record
                from bench.record import write_record
                from bench.launch.worker import Interrupted, signal_number

                record = fallback_record(cfg, "failed", "Interrupted", str(Interrupted(signal_number(exc))),
                                         time.perf_counter() - started, recorded_by="bench.run", cell=cell)
                exc.record = (record, write_record(record, path))
            raise
    finally:
        lock.release()
    _report(record, path, time.perf_counter() - started, multirun, index, quiet=isolated and multirun
            and cfg.repeats == 1)


def _report(record: dict, path, seconds: float, multirun: bool, index: int | None, quiet: bool = False) -> None:
    entry = sweep.entry_for(record, path, seconds)
    sweep.append(entry)
    if not quiet:
        print(summary_line(record, path), flush=True)
    if multirun:
        print(sweep.progress_line(entry, index), flush=True)
    _exit_codes.append(0 if record["status"] in ("success", "skipped") else 1)


def _stop(exc: KeyboardInterrupt, path, multirun: bool, index: int | None) -> None:
    """SIGINT / SIGTERM: the running cell has been recorded as failed "interrupted by SIG..." (by the cell,
    or by bench.launch.launcher when it could not); report it and stop: the sweep launches no further cell, and
    bench.run exits 128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM)."""
    import signal

    from bench.launch.worker import signal_number

    if getattr(exc, "record", None) is not None:
        record, where = exc.record
        _report(record, where, record.get("wall_seconds") or 0.0, multirun, index)
    name = signal.Signals(signal_number(exc)).name
    print(f"bench: {name}: stopped" + (", no further cells launched" if multirun else ""), file=sys.stderr,
          flush=True)
    if multirun:
        print("\n" + sweep.summary(sweep.ledger_entries(sweep.ledger_file(path.parent))), flush=True)
    raise SystemExit(128 + signal_number(exc))


def _existing_record(path, read) -> dict | None:
    """The cell's record from an earlier run, read once; None when there is none (or it is unreadable)."""
    if not path.exists():
        return None
    try:
        return read(path)
    except ValueError:
        return None


def main(argv: list[str] | None = None) -> None:
    from bench.cell.env import set_openmp_defaults

    set_openmp_defaults()  # before anything imports torch
    import hydra

    argv = normalize_overrides(sys.argv[1:] if argv is None else argv)
    multirun = "-m" in argv or "--multirun" in argv
    try:
        configs = validate_argv(argv)  # every cell of the grid composed and bound
        precheck.check_grid(configs, build_models=multirun)  # data, sources, models, output folders
        ledger = sweep.start_ledger(len(configs) if multirun else None)
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
