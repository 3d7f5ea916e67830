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
    distinct set of group choices, value overrides applied to a copy). Where the only group choices are
    method= and model= (the blog grid, bench.advise), each method and each model is composed once and the
    model group spliced in: M + N composes instead of M x N (conf/method and conf/model are plain groups that
    set nothing outside their own key; tests/test_estimate_scale.py checks the result equals compose_all's)."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from bench.launch.cli import CONF_DIR
    from bench.launch.grid import compose_all

    try:
        raws = _spliced(str(CONF_DIR), combos)
        if raws is None:
            raws = compose_all(str(CONF_DIR), combos)
        return [build_run_config(raw) for raw in raws]
    except (HydraException, OmegaConfBaseException) as exc:
        raise config_error(exc) from None


def _spliced(conf_dir: str, combos: list[list[str]]) -> list[dict[str, Any]] | None:
    """The plain configs of combos whose structural overrides are method= / model= choices only, composed per
    method and per model and joined; None when any combo has another structural override (+experiment=, a
    group other than these two, hydra.*, an interpolation, a deletion): compose_all then does it all."""
    import copy

    from hydra.core.override_parser.overrides_parser import OverridesParser

    from bench.launch.grid import _set, _structural, compose_all

    parser = OverridesParser.create()
    plans = []
    for combo in combos:
        choice: dict[str, str] = {}
        values = []
        for line in combo:
            override = parser.parse_override(line)
            key = override.key_or_group
            if not _structural(override):
                values.append(override)
            elif key in ("method", "model") and not choice.get(key) and override.is_sweep_override() is False \
                    and not (override.is_add() or override.is_force_add() or override.is_delete()) \
                    and "${" not in line and override.package is None:
                choice[key] = override.value()
            else:
                return None
        plans.append((choice.get("method"), choice.get("model"), values))
    methods = sorted({m for m, _, _ in plans}, key=str)
    models = sorted({n for _, n, _ in plans}, key=str)
    if len(methods) * len(models) <= len(methods) + len(models):
        return None  # nothing to gain
    by_method = dict(zip(methods, compose_all(conf_dir, [[f"method={m}"] if m else [] for m in methods])))
    by_model = dict(zip(models, compose_all(conf_dir, [[f"model={n}"] if n else [] for n in models])))
    out = []
    for method, model, values in plans:
        raw = copy.deepcopy(by_method[method])
        raw["model"] = copy.deepcopy(by_model[model]["model"])
        for override in values:
            _set(raw, override)
        out.append(raw)
    return out


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
