"""Cells from command-line overrides: bench.run's overrides, a comma list sweeping (every combination),
and the blog-shaped grid (fixed method rows x model columns, the user's other overrides on every cell)."""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Iterator

from bench.config import METHOD_CLASSES, ConfigError, build_run_config

if TYPE_CHECKING:
    from bench.config import RunConfig

# (label, bits, overrides): the rows of the widely copied hardware-requirement table
BLOG_ROWS = [("Full (AMP)", 32, ["method=full", "method.precision=mixed"]),
             ("Full", 16, ["method=full", "method.precision=pure"]),
             ("LoRA", 16, ["method=lora"]), ("GaLore", 16, ["method=galore"]),
             ("QLoRA", 8, ["method=qlora", "method.base_bits=8"]), ("QLoRA", 4, ["method=qlora"])]
BLOG_COLUMNS = [("7B", "7b"), ("13B", "13b"), ("30B", "30b"), ("70B", "70b"), ("110B", "110b"),
                ("8x7B", "8x7b"), ("8x22B", "8x22b")]


def split_sweeps(overrides: list[str]) -> list[tuple[str, list[str]]]:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as exc:
        raise ConfigError(f"bad override: {str(exc).splitlines()[0]}") from None
    out = []
    for o in parsed:
        values = list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.get_value_element_as_str()]
        out.append((o.get_key_element(), values))
    return out


def with_sweeper_params(overrides: list[str]) -> list[str]:
    """An experiment's `hydra.sweeper.params` (e.g. +experiment=seed_tables) as leading sweep overrides, so
    the estimate covers the grid `bench.run -m` would run; command-line keys win."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    from bench.launch.cli import CONF_DIR, group_options

    named = [o.split("=", 1)[1] for o in overrides if o.lstrip("+").startswith("experiment=")]
    if not named:
        return overrides
    known = group_options("experiment")
    for name in (n for value in named for n in value.split(",")):
        if name not in known:
            raise ConfigError(f"experiment: unknown experiment {name!r} (choose from {', '.join(known)})")
    try:  # an unknown experiment or key is bad input (one line, exit 2), not a traceback
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            raw = hydra_compose(config_name="config", overrides=overrides, return_hydra_config=True)
        params = OmegaConf.to_container(OmegaConf.select(raw, "hydra.sweeper.params") or {}, resolve=True)
    except Exception as exc:  # noqa: BLE001  hydra raises several unrelated types here
        raise config_error(exc) from None
    given = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
    return [f"{k}={v}" for k, v in params.items() if k not in given] + overrides


def compose(overrides: list[str]) -> RunConfig:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from bench.launch.cli import CONF_DIR

    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            raw = hydra_compose(config_name="config", overrides=overrides)
        return build_run_config(OmegaConf.to_container(raw, resolve=True))
    except (HydraException, OmegaConfBaseException) as exc:
        raise config_error(exc) from None


def compose_many(combos: list[list[str]]) -> list[RunConfig]:
    """compose() of many override lists at once (bench.launch.grid.compose_all: one Hydra compose per
    distinct set of group choices, value overrides applied to a copy)."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from bench.launch.cli import CONF_DIR
    from bench.launch.grid import compose_all

    try:
        return [build_run_config(raw) for raw in compose_all(str(CONF_DIR), combos)]
    except (HydraException, OmegaConfBaseException) as exc:
        raise config_error(exc) from None


def config_error(exc: BaseException) -> ConfigError:
    """Hydra's message, first line, with its cause's first line (the option or key it could not find)."""
    if isinstance(exc, ConfigError):
        return exc
    cause = exc.__cause__
    detail = f": {str(cause).splitlines()[0]}" if cause and str(cause) else ""
    first = (str(exc).splitlines() or [type(exc).__name__])[0].rstrip(".")
    return ConfigError(f"{first}{detail}")


def _method_keys(method: str) -> set[str]:
    return {f.name for f in dataclasses.fields(METHOD_CLASSES[method])}


def blog_overrides(row: list[str], model: str, user: list[str]) -> list[str]:
    """A blog cell's overrides: the row's method, the column's model, then the user's overrides that apply
    (their method= and model= are replaced; method.<key> only where that method has the key)."""
    method = row[0].split("=", 1)[1]
    keep = []
    for override in user:
        key = override.split("=", 1)[0].lstrip("+~")
        if key in ("method", "model"):
            continue
        if key.startswith("method.") and key.split(".", 1)[1] not in _method_keys(method):
            continue
        keep.append(override)
    return [*row, f"model={model}", *keep]


def blog_cells(user: list[str], models: list[tuple[str, str]] | None = None) -> Iterator[dict[str, Any]]:
    """One entry per blog cell: label, bits, column, overrides, and either cfg or a `skip` reason."""
    from bench.launch.cli import group_options

    available = set(group_options("model"))
    for label, bits, row in BLOG_ROWS:
        for column, model in models or BLOG_COLUMNS:
            entry: dict[str, Any] = {"label": label, "bits": bits, "column": column, "model": model}
            if model not in available:
                entry["skip"] = f"conf/model/{model}.yaml not present"
                yield entry
                continue
            entry["overrides"] = blog_overrides(row, model, user)
            yield entry
