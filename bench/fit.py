"""`python -m bench.fit method=lora,qlora model=tiny [overrides] [fit.axis=seq_len|batch_size] [fit.resolution=0.05]
[fit.max_minutes=30] [fit.limit=N]`: per method x model, the largest train.seq_len (or train.batch_size)
that trains on this device without running out of memory, measured by real cells (bench.launch.fit_search).

    python -m bench.fit method=lora,qlora model=tiny cell_memory_budget_gb=0.3   # a CPU: the budget is the device

Overrides are bench.run's; method= and model= take comma lists. Probes train 2 steps (1 warm-up) unless
train.steps / train.warmup_steps are given; records go to results/<experiment_name>/ (default `fit`), each
search's record to results/<experiment_name>/logs/fit-*.json (docs/fit.md). Prints one table. Exit status:
0 every search converged, 1 one stopped early (time cap, a probe that failed otherwise than OOM), 2 bad
input (one line naming the key; nothing run, nothing written), 128 + N stopped by signal N.
"""
from __future__ import annotations

import shlex
import signal
import sys

LIST_KEYS = ("method", "model")
PROBE_DEFAULTS = {"experiment_name": "fit", "train.steps": "2", "train.warmup_steps": "1"}


def split_argv(argv: list[str]) -> tuple[dict[str, str], dict[str, list[str]], list[str]]:
    """(fit.* options, method / model lists, other overrides); ConfigError names a bad argument."""
    from bench.config import ConfigError

    options: dict[str, str] = {}
    lists: dict[str, list[str]] = {"method": ["lora"], "model": ["tiny"]}
    rest: list[str] = []
    for arg in argv:
        if arg.startswith("-") or "=" not in arg:
            raise ConfigError(f"{arg}: unknown argument (bench.fit takes overrides key=value; method= and model= "
                              f"take comma lists)")
        key, value = arg.split("=", 1)
        if key.startswith("fit."):
            options[key[4:]] = value
        elif key.lstrip("+") in LIST_KEYS:
            lists[key.lstrip("+")] = [v.strip() for v in value.split(",")]
            if not all(lists[key.lstrip("+")]):
                raise ConfigError(f"{key}: empty name in {value!r}")
        elif "," in value and not value.startswith(("[", "{", "'", '"')):
            raise ConfigError(f"{key}: bench.fit takes one value of {key} (only method= and model= take lists)")
        else:
            rest.append(arg)
    given = {a.split("=", 1)[0].lstrip("+") for a in rest}
    if "experiment" in given:  # +experiment=NAME names its own folder
        given.add("experiment_name")
    rest = [f"{k}={v}" for k, v in PROBE_DEFAULTS.items() if k not in given] + rest
    return options, lists, rest


def plan(argv: list[str]) -> tuple[list, object]:
    """Every search's config, checked (ConfigError: bad input) before anything runs or is written."""
    from bench.launch import fit_probe, precheck
    from bench.launch.cli import normalize_overrides, validate_argv
    from bench.launch.fit_search import parse_options

    options_raw, lists, rest = split_argv(argv)
    options = parse_options(options_raw)
    configs = []
    for method in lists["method"]:
        for model in lists["model"]:
            (cfg,) = validate_argv(normalize_overrides([f"method={method}", f"model={model}", *rest]))
            cfg = fit_probe.probe_config(cfg)
            fit_probe.check(cfg, options, fit_probe.device_kind(cfg))
            configs.append(cfg)
    precheck.check_grid(configs, build_models=True)  # data, sources, the model on meta; then the folder
    return configs, options


def main(argv: list[str] | None = None) -> int:
    from bench.config import ConfigError
    from bench.launch import fit_probe
    from bench.launch.cli import fail
    from bench.launch.fit_search import table
    from bench.launch.worker import raise_on_signals

    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    try:
        configs, options = plan(argv)
    except ConfigError as exc:
        fail(exc, "bench.fit")
    command = shlex.join(["python", "-m", "bench.fit", *argv])
    handlers = raise_on_signals()  # SIGTERM as well as SIGINT: the probe is recorded, then the search
    records = []
    try:
        for cfg in configs:  # a Ctrl-C inside a probe ends that search, recorded
            try:
                records.append(fit_probe.run_fit(cfg, options, command))
            except ConfigError as exc:  # a probe's cell is running in another process
                fail(exc, "bench.fit")
            print(f"bench.fit: record {records[-1]['_path']}", flush=True)
            if records[-1]["stop_reason"].startswith("interrupted"):
                break
    except KeyboardInterrupt as exc:
        print(f"bench.fit: {exc or 'interrupted'}: stopped between probes", file=sys.stderr, flush=True)
        return 128 + int(getattr(exc, "signum", signal.SIGINT))
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    print("\n" + table(records), flush=True)
    if records and records[-1]["stop_reason"].startswith("interrupted"):
        name = records[-1]["stop_reason"].removeprefix("interrupted (interrupted by ").rstrip(")")
        return 128 + int(getattr(signal.Signals, name, signal.SIGINT))
    return 0 if all(r["converged"] for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
