"""Command-line checks done before Hydra runs anything, so bad input is one line and exit status 2.

Hydra reports an unknown config-group option or key as a multi-line message with exit status 1; here
each override is parsed, group options are checked against conf/, and the config is composed and bound
to the typed schema for every value of every sweep override (the other overrides at their first value),
so a sweep with one bad value fails before its first cell runs.
"""
from __future__ import annotations

import sys
from typing import NoReturn

from bench.conf_dir import CONF_DIR  # noqa: F401  (re-exported: bench.run, estimate and the tests use it)
from bench.config import ConfigError, build_run_config

GROUPS = ("method", "model", "task", "train")


def fail(exc: BaseException, prog: str = "bench.run") -> NoReturn:
    line = (str(exc).splitlines() or [type(exc).__name__])[0]
    if len(line) > 600:  # some library messages list every option they know (12,000 characters)
        line = line[:600] + " ..."
    print(f"{prog}: error: {line}", file=sys.stderr, flush=True)
    sys.exit(2)


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def _overrides(argv: list[str]) -> list[str]:
    return [a for a in argv if not a.startswith("-") and "=" in a]


def _expand(overrides: list[str]) -> list[list[str]]:
    """Override lists to compose: first values of all sweeps, then each other value of each sweep."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as exc:
        raise ConfigError(f"bad override: {str(exc).splitlines()[0]}") from None
    choices: list[tuple[str, list[str]]] = []
    hydra_overrides = []  # hydra.searchpath and the like: passed through as given
    for override in parsed:
        key = override.get_key_element()
        if override.key_or_group.split("/")[0].split(".")[0] == "hydra":
            if not override.is_sweep_override():
                hydra_overrides.append(override.input_line)
            continue
        if override.is_sweep_override():
            values = list(override.sweep_string_iterator())
        else:
            values = [override.get_value_element_as_str()] if not override.is_delete() else [""]
        group = override.key_or_group
        if group in GROUPS and not override.is_delete():
            options = group_options(group)
            for value in values:
                if value not in options:
                    raise ConfigError(f"{group}: unknown {group} {value!r} (choose from {', '.join(options)})")
        choices.append((key, values))
    base = [f"{k}={v[0]}" if not k.startswith("~") else k for k, v in choices]
    combos = [base]
    for i, (key, values) in enumerate(choices):
        for value in values[1:]:
            combo = list(base)
            combo[i] = f"{key}={value}"
            combos.append(combo)
    return [hydra_overrides + combo for combo in combos]


def _one_line(exc: BaseException) -> ConfigError:
    cause = exc.__cause__
    detail = f": {str(cause).splitlines()[0]}" if cause else ""
    return ConfigError(f"{str(exc).splitlines()[0].rstrip('.')}{detail}")


def sweep_overrides(argv: list[str]) -> list[str]:
    """The overrides a multirun sweeps: an experiment's hydra.sweeper.params, then the command line's
    (a command-line override of the same key wins, as in Hydra's basic sweeper)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    overrides = _overrides(argv)
    parser = OverridesParser.create()
    try:
        fixed = [o.input_line for o in parser.parse_overrides(overrides) if not o.is_sweep_override()
                 and o.key_or_group.split(".")[0] != "hydra" or o.key_or_group == "hydra.searchpath"]
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            params = compose(config_name="config", overrides=fixed, return_hydra_config=True).hydra.sweeper.params
    except (HydraException, OmegaConfBaseException) as exc:
        raise _one_line(exc) from None
    merged = {key: f"{key}={value}" for key, value in (params or {}).items()}
    for override in overrides:
        merged[override.split("=", 1)[0].lstrip("+")] = override
    return list(merged.values())


# Hydra's own flags that bench.run passes through; anything else starting with "-" is refused in one line.
HYDRA_FLAGS = ("-m", "--multirun", "-h", "--help", "--hydra-help", "-i", "--info", "-c", "--cfg", "-p",
               "--package", "--resolve", "-cp", "--config-path", "-cn", "--config-name", "-cd", "--config-dir",
               "--version", "-sc", "--shell-completion", "--experimental-rerun")
MAX_GRID = 100_000  # cells one command line may expand to (each is composed and checked before launch)


def check_flags(argv: list[str]) -> None:
    for arg in argv:
        if arg.startswith("-") and "=" not in arg and arg not in HYDRA_FLAGS:
            raise ConfigError(f"{arg}: unknown option (bench.run takes overrides key=value, and -m for a sweep)")


def _schema_keys() -> set[str]:
    """Config keys bench's typed schema knows, spelled as overrides (model.tokenizer, lr_by_method, ...)."""
    import dataclasses

    from bench.config import METHOD_CLASSES, ModelConfig, RunConfig, TaskConfig, TrainConfig

    keys = {f.name for f in dataclasses.fields(RunConfig)} - set(GROUPS)
    for group, classes in (("model", [ModelConfig]), ("task", [TaskConfig]), ("train", [TrainConfig]),
                           ("method", list(METHOD_CLASSES.values()))):
        keys |= {f"{group}.{f.name}" for cls in classes for f in dataclasses.fields(cls)}
    return keys


def normalize_overrides(argv: list[str]) -> list[str]:
    """`model.tokenizer=X` as the README writes it, for keys of bench's schema that a config file may leave
    out (Hydra's struct mode refuses a plain override of a key the composed config lacks): such an override
    becomes `++key=X` (add or set). model.arch.* are free architecture keys and are treated the same way."""
    known = _schema_keys()
    out = []
    for arg in argv:
        key = arg.split("=", 1)[0]
        if "=" in arg and not arg.startswith(("+", "~", "-")) and (key in known or key.startswith("model.arch.")):
            arg = "++" + arg
        out.append(arg)
    return out


def grid(argv: list[str]) -> list[list[str]]:
    """Every combination a command line runs, as override lists (one list without -m)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    multirun = "-m" in argv or "--multirun" in argv
    overrides = sweep_overrides(argv) if multirun else _overrides(argv)
    _expand(overrides)  # names an unknown group option (one line) before anything is composed
    if not multirun:
        return [overrides]
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as exc:
        raise ConfigError(f"bad override: {str(exc).splitlines()[0]}") from None
    total = 1
    for override in parsed:
        total *= len(list(override.sweep_string_iterator())) if override.is_sweep_override() else 1
    if total > MAX_GRID:
        raise ConfigError(f"-m: the sweep expands to {total:,} cells (at most {MAX_GRID:,})")
    return [combo for batch in BasicSweeper.split_arguments(parsed, None) for combo in batch]


def validate_argv(argv: list[str]) -> list:
    """Compose and bind every combination; returns their RunConfigs ([] for --help / --cfg)."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from bench.launch.grid import compose_all

    check_flags(argv)
    if any(a in ("--help", "-h", "--hydra-help", "--info", "-i", "--version") or a.startswith("--cfg")
           or a in ("-c", "-sc", "--shell-completion") for a in argv):
        return []
    combos = grid(argv)
    try:
        raws = compose_all(str(CONF_DIR), combos)
    except (HydraException, OmegaConfBaseException) as exc:
        raise _one_line(exc) from None
    configs, seen = [], {}
    for raw in raws:
        key = repr(raw)
        if key not in seen:
            seen[key] = build_run_config(raw)
        configs.append(seen[key])
    return configs
