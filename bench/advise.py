"""`python -m bench.advise model=M gpu=G [train.seq_len=N] [goal=speed|memory] [method=a,b] [tokens=N]
[ranks=8,16,64] [top=N] [--results DIR ...] [--json FILE]`

The configurations that fit one GPU, predicted offline on the meta device (no GPU, no weights), ranked for
the goal; each with its predicted peak and headroom, its expected speed (measured on that GPU where a record
in --results has the cell, else the FLOP floor over the utilisation bench measured for the method on the
nearest GPU, labelled), what it gives up, and the bench.run command that measures it. Says when nothing fits.
  model=M            conf/model/ option (size aliases 7b, 8b, 13b, ...)
  gpu=G              conf/gpu/ option, or <N>gb: a generic GPU with N GB (no speed)
  train.seq_len=N    tokens per sequence (default 2048)
  goal=speed|memory  speed: each configuration at its largest micro-batch that fits, highest expected tokens/s
                     first (default); memory: at micro-batch 1 (accumulating to tokens=), lowest peak first
  method=a,b         limit to these methods (full lora dora qlora qlora8 galore; adam_mini apollo apollo_mini
                     q_galore are reported as not modelled)
  tokens=N           target tokens per optimizer step, reached by micro-batch x grad_accum (default 16384)
  ranks=8,16,64      adapter ranks to try (LoRA, DoRA, QLoRA)
  top=N              rows printed (default 10; 0: all); --json always has every row
  --results DIR...   record folders read for speed (default results/)
  --json FILE        every row, fitting or not ('-': stdout); a new file or this command's earlier output
Bad input: one line naming the key, exit 2, nothing written.
"""
from __future__ import annotations

import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from bench.config import ConfigError
from bench.outpaths import write_text_atomic

PROG = "bench.advise"
KEYS = ("model", "gpu", "train.seq_len", "goal", "method", "tokens", "ranks", "top")


def _positive(key: str, value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise ConfigError(f"{key} must be an integer (got {value!r})") from None
    if n <= 0 and key != "top":
        raise ConfigError(f"{key} must be > 0 (got {n})")
    if n < 0:
        raise ConfigError(f"{key} must be >= 0 (got {n})")
    return n


def parse(argv: list[str]) -> dict[str, Any]:
    from bench.advise_rank import NOT_MODELLED_TRY, SPACE
    from bench.launch.cli import group_options

    opts: dict[str, Any] = {"seq_len": 2048, "goal": "speed", "methods": None, "tokens": 16384, "ranks": (8, 16, 64),
                            "top": 10, "results": ["results"], "json": None}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("--json", "--results"):
            values = [a for a in argv[i + 1:i + 2]] if arg == "--json" else []
            if arg == "--results":
                for a in argv[i + 1:]:
                    if a.startswith("-") or "=" in a:
                        break
                    values.append(a)
            if not values:
                raise ConfigError(f"{arg} needs {'a path' if arg == '--json' else 'record folders'}")
            opts[arg[2:]] = values[0] if arg == "--json" else values
            i += 1 + len(values)
            continue
        key, eq, value = arg.partition("=")
        if arg.startswith("-") or not eq or key not in KEYS:
            raise ConfigError(f"unknown argument {arg!r} (keys: {', '.join(KEYS)}; see python -m bench.advise --help)")
        if key == "model":
            if value not in group_options("model"):
                raise ConfigError(f"model: unknown model {value!r} (choose from {', '.join(group_options('model'))})")
            opts["model"] = value
        elif key == "gpu":
            opts["gpu"] = value
        elif key == "goal":
            if value not in ("speed", "memory"):
                raise ConfigError(f"goal must be speed or memory (got {value!r})")
            opts["goal"] = value
        elif key == "method":
            names = [v for v in value.split(",") if v]
            known = [*SPACE, *NOT_MODELLED_TRY]
            bad = [n for n in names if n not in known]
            if bad or not names:
                raise ConfigError(f"method: {bad[0] if bad else value!r} is not one advise ranks "
                                  f"(choose from {', '.join(known)})")
            opts["methods"] = names
        elif key == "ranks":
            opts["ranks"] = tuple(_positive("ranks", v) for v in value.split(","))
        else:
            opts[{"train.seq_len": "seq_len"}.get(key, key)] = _positive(key, value)
        i += 1
    for key in ("model", "gpu"):
        if key not in opts:
            raise ConfigError(f"{key}: required (e.g. python -m bench.advise model=8b gpu=rtx4090)")
    return opts


def _earlier_output(path: Path) -> bool:
    try:
        text = path.read_text(encoding="utf-8")
        return not text.strip() or json.loads(text).get("tool") == PROG
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        return False


def write_json(doc: dict[str, Any], dest: str) -> None:
    text = json.dumps(doc, indent=1) + "\n"
    write_text_atomic(text, dest)  # '-' is stdout, the document alone
    if dest != "-":
        print(f"{PROG}: wrote {dest}")


def main(argv: list[str] | None = None) -> None:
    from bench.launch.cli import fail
    from bench.outpaths import OutputPathError, check_writable_file

    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    warnings.simplefilter("ignore")
    try:
        opts = parse(argv)
        if opts["json"] not in (None, "-"):
            check_writable_file(opts["json"], "--json", may_replace=_earlier_output)
        for folder in opts["results"]:
            if not Path(folder).is_dir():
                raise ConfigError(f"--results: {folder}: no such folder")
        from bench.advise_rank import advise, gpu_from_key, rank_rows
        from bench.advise_show import document, text_report
        from bench.advise_speed import load_measured

        gpu = gpu_from_key(opts["gpu"])
        start = time.perf_counter()
        measured = load_measured(opts["results"])
        rows, refused = advise(opts["model"], gpu, opts["seq_len"], opts["tokens"], opts["methods"], measured,
                               opts["ranks"], opts["goal"])
        ranked = rank_rows(rows, opts["goal"])
        took = time.perf_counter() - start
    except (ConfigError, ValueError, OutputPathError) as exc:
        fail(exc, prog=PROG)
    doc = document(opts, gpu, rows, ranked, refused, took)
    if opts["json"] != "-":
        print(text_report(doc, opts["top"]))
    if opts["json"]:
        try:
            write_json(doc, opts["json"])
        except OSError as exc:
            fail(OutputPathError("--json", exc.filename or opts["json"], exc.strerror or "?"), prog=PROG)


if __name__ == "__main__":
    main()
