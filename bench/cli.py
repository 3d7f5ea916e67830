"""Command-line checks done before Hydra runs anything, so bad input is one line and exit status 2.

Hydra reports an unknown config-group option or key as a multi-line message with exit status 1; here
each override is parsed, group options are checked against conf/, and the config is composed and bound
to the typed schema for every value of every sweep override (the other overrides at their first value),
so a sweep with one bad value fails before its first cell runs.
"""
from __future__ import annotations

import itertools
import sys
from pathlib import Path
from typing import NoReturn

from bench.config import ConfigError, build_run_config

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
GROUPS = ("method", "model", "task", "train")


def fail(exc: BaseException, prog: str = "bench.run") -> NoReturn:
    print(f"{prog}: error: {str(exc).splitlines()[0]}", file=sys.stderr, flush=True)
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
    for override in parsed:
        key = override.get_key_element()
        if override.key_or_group.split("/")[0].split(".")[0] == "hydra":
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
    return combos


def validate_argv(argv: list[str]) -> None:
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if any(a in ("--help", "-h", "--hydra-help", "--info", "-i") or a.startswith("--cfg") for a in argv):
        return
    combos = _expand(_overrides(argv))
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for combo in itertools.islice(combos, 200):
            try:
                raw = compose(config_name="config", overrides=combo)
                build_run_config(OmegaConf.to_container(raw, resolve=True))
            except (HydraException, OmegaConfBaseException) as exc:
                cause = exc.__cause__
                detail = f": {str(cause).splitlines()[0]}" if cause else ""
                raise ConfigError(f"{str(exc).splitlines()[0].rstrip('.')}{detail}") from None
