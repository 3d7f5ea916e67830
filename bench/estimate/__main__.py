"""`python -m bench.estimate [overrides] [gpu=a,b] [--blog] [--json PATH] [--csv PATH] [--calibrate PATH ...]`

Predicts, on the meta device (no weights, no GPU), every cell the overrides describe: bench.run's
overrides, where a comma list sweeps (every combination). The target is a CUDA GPU unless `device=cpu`
(a CPU target predicts what bench.run's CPU record reads: RSS growth over the pre-load baseline).
  gpu=h100,a100-80gb   GPUs for the fit table and time floors (conf/gpu/; default: all)
  --blog               Method x model table shaped like the widely copied one (7B ... 8x22B columns)
  --json/--csv PATH    every number of every cell ('-': stdout); a new file or an earlier estimate's output
                       (anything else is refused, not overwritten); checked before any work
  --calibrate PATH...  records or folders of records: predicted vs measured per component, error %; per record
                       the headline peak and, for CUDA records, the peak with the runtime terms refitted
                       without the record's model size (--json: `record`, `predicted_peak_bytes`,
                       `measured_peak_bytes`, `error_pct`, `loo_predicted_peak_bytes`, `loo_error_pct`, ...)
  +experiment=NAME     an experiment's sweep (hydra.sweeper.params) is predicted cell by cell
Bad input (an unknown key, option, flag or experiment; an output path that can't or mustn't be written):
one line naming the key, flag or path, exit status 2, before any cell is built and with nothing written.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any

from bench.config import ConfigError
from bench.outpaths import OutputPathError, check_writable_file, write_text_atomic

PROG = "bench.estimate"


def _earlier_output(path: Path) -> bool:
    """Whether an existing file is empty or holds this command's own --json or --csv output (the only files
    it overwrites): a JSON list of cell rows, or a CSV whose header starts as cell rows do."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    if not text.strip():
        return True
    if path.suffix.lower() != ".csv" and text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except ValueError:
            return False
        return isinstance(rows, list) and all(isinstance(r, dict) and {"method", "model"} <= r.keys() for r in rows)
    return text.startswith("method,model,")


def check_outputs(opts: dict[str, Any]) -> None:
    """--json / --csv checked before any cell is built (OutputPathError names the flag and path)."""
    dests = {flag: opts[flag] for flag in ("json", "csv") if opts[flag] not in (None, "-")}
    for flag, dest in dests.items():
        check_writable_file(dest, f"--{flag}", may_replace=_earlier_output)
    if len(dests) == 2 and Path(dests["json"]).absolute() == Path(dests["csv"]).absolute():
        raise OutputPathError("--csv", dests["csv"], "is the --json file too")


def _write(text: str, dest: str) -> None:
    write_text_atomic(text, dest)
    if dest != "-":  # stdout holds the document alone
        print(f"{PROG}: wrote {dest}")


def parse(argv: list[str]) -> dict[str, Any]:
    opts: dict[str, Any] = {"overrides": [], "gpus": None, "blog": False, "json": None, "csv": None,
                            "calibrate": []}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("--json", "--csv"):
            if i + 1 >= len(argv):
                raise ConfigError(f"{arg} needs a path ('-' for stdout)")
            opts[arg[2:]] = argv[i + 1]
            i += 2
            continue
        if arg == "--calibrate":
            paths = []
            for a in argv[i + 1:]:  # up to the next option or override
                if a.startswith("-") or "=" in a:
                    break
                paths.append(a)
            if not paths:
                raise ConfigError("--calibrate needs record files or folders")
            opts["calibrate"] = paths
            i += 1 + len(paths)
            continue
        if arg == "--blog":
            opts["blog"] = True
        elif arg in ("-m", "--multirun"):  # bench.run's sweep flag: comma lists always sweep here
            pass
        elif arg.startswith("gpu="):
            opts["gpus"] = [g for g in arg.split("=", 1)[1].split(",") if g]
        elif arg.startswith("-"):
            raise ConfigError(f"unknown option {arg!r} (see python -m bench.estimate --help)")
        else:
            opts["overrides"].append(arg)
        i += 1
    return opts


def target_device(cfg: Any) -> str:
    return "cpu" if cfg.device == "cpu" else "cuda"


def run_cells(overrides: list[str], gpus: list) -> list[dict[str, Any]]:
    from bench.launch.cli import validate_argv
    from bench.estimate import sweep
    from bench.estimate.predict import predict_cell
    from bench.estimate.tables import cell_row

    overrides = sweep.with_sweeper_params(overrides)
    sweeps = any("," in o for o in overrides)  # comma lists sweep here (bench.run needs -m for that)
    # every combination composed once, the way the sweep would (bench.launch.grid: structural overrides
    # composed once, value overrides applied to a copy): no Hydra compose per cell
    sweep.split_sweeps(overrides)  # each override parses (bad input: one line naming it, exit 2)
    cfgs = validate_argv(["-m", *overrides] if sweeps else overrides)
    if not cfgs:
        raise ConfigError(f"no cell to estimate from {' '.join(overrides) or 'no overrides'}")
    rows = []
    for cfg in cfgs:
        try:
            pred = predict_cell(cfg, target_device(cfg), gpus[0] if len(gpus) == 1 else None)
        except ConfigError as exc:  # one bad combination of a sweep is a row; a single bad cell is exit 2
            if len(cfgs) == 1:
                raise
            rows.append({"method": cfg.method.name, "model": cfg.model.name, "error": str(exc).splitlines()[0]})
            continue
        rows.append(cell_row(cfg, pred, gpus))
    return rows


def run_blog(overrides: list[str], gpus: list) -> tuple[str, list[dict[str, Any]], list[str]]:
    from bench.estimate import sweep
    from bench.estimate.predict import predict_cell
    from bench.estimate.tables import blog_table, cell_row

    grid: dict[tuple[str, int], dict[str, str]] = {}
    rows, notes = [], []
    entries = list(sweep.blog_cells(overrides))
    composed = iter(sweep.compose_many([e["overrides"] for e in entries if "skip" not in e]))
    for entry in entries:
        cells = grid.setdefault((entry["label"], entry["bits"]), {})
        if "skip" in entry:
            cells[entry["column"]] = "n/a"
            note = f"{entry['column']}: {entry['skip']}"
            notes += [note] if note not in notes else []
            continue
        cfg = next(composed)
        mark = ""
        try:
            try:
                pred = predict_cell(cfg, target_device(cfg))
            except ConfigError as exc:
                if "dropout must be 0" not in str(exc):
                    raise
                cfg = sweep.compose(entry["overrides"] + ["method.dropout=0"])
                pred, mark = predict_cell(cfg, target_device(cfg)), "*"
                note = "*: peft can't apply dropout to fused MoE experts; predicted with method.dropout=0"
                notes += [note] if note not in notes else []
        except ConfigError as exc:  # a combination the method refuses (QLoRA over fused experts): n/a, and why
            cells[entry["column"]] = "n/a"
            note = f"{entry['label']} {entry['bits']}-bit, {entry['column']}: {str(exc).splitlines()[0]}"
            notes += [note] if note not in notes else []
            continue
        cells[entry["column"]] = f"{pred.peak_bytes / 1e9:.0f}GB{mark}"
        rows.append(cell_row(cfg, pred, gpus))
        for n in pred.notes:
            note = f"{cfg.model.name} {cfg.method.name}: {n}"
            notes += [note] if note not in notes else []
    return blog_table(grid, [c for c, _ in sweep.BLOG_COLUMNS]), rows, notes


def main(argv: list[str] | None = None) -> None:
    from bench.launch.cli import fail

    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    warnings.simplefilter("ignore")  # library warnings about the meta model are not the estimate's output
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    try:
        opts = parse(argv)
        check_outputs(opts)
        from bench.estimate.gpus import load_catalog, resolve
        from bench.estimate.tables import cells_table, gpu_fit_table, to_csv, to_json

        catalog = load_catalog()
        gpus = resolve(opts["gpus"], catalog) if opts["gpus"] else list(catalog.values())
        if opts["calibrate"]:
            from bench.estimate.calibrate import calibrate_records, calibration_table, peak_table

            components, rows = calibrate_records(opts["calibrate"])  # --json/--csv: one summary per record
            print(calibration_table(components))
            print()
            print(peak_table(rows))
        elif opts["blog"]:
            from bench.estimate.tables import blog_assumptions

            table, rows, notes = run_blog(opts["overrides"], gpus)
            print(table)
            print("\nAssumptions (every cell):")
            print("\n".join(f"- {a}" for a in blog_assumptions(rows)))
            if notes:
                print("\nNotes:")
                print("\n".join(f"- {n}" for n in notes))
            print()
            print(gpu_fit_table(rows, gpus))
        else:
            rows = run_cells(opts["overrides"], gpus)
            if "-" not in (opts["json"], opts["csv"]):  # machine-readable stdout stays clean
                print(cells_table(rows, gpus[0].key if len(gpus) == 1 else None))
                if any(r.get("target") == "cuda" for r in rows):
                    print()
                    print(gpu_fit_table(rows, gpus))
    except (ConfigError, ValueError) as exc:
        fail(exc, prog=PROG)
    try:
        if opts.get("json"):
            _write(to_json(rows), opts["json"])
        if opts.get("csv"):
            _write(to_csv(rows), opts["csv"])
    except OSError as exc:  # checked up front; this is the disk filling up or the path changing meanwhile
        fail(OutputPathError("--json" if opts.get("json") else "--csv", exc.filename or "?", exc.strerror or "?"),
             prog=PROG)


if __name__ == "__main__":
    main()
