"""Compose every cell of a sweep's grid quickly, so all of them can be checked before the first runs.

Hydra's compose() costs about 0.2 s of CPU per call here (it searches and merges every config file
again), which made checking a 1,000-cell grid take minutes. Most of a grid's combinations differ only in
plain values (method.rank=8,16,64; train.seq_len=...), which do not change which files are composed. So
each distinct set of *structural* overrides (config-group choices, +/~ of groups, hydra.*, interpolations)
is composed once, and the value overrides are applied to a plain copy by Hydra's rules for them (an
existing key is set, + adds, ++ sets or adds, a mapping merges into a mapping), at a fraction of the cost.
tests/test_hostile_run.py checks the result against compose() itself.
"""
from __future__ import annotations

import copy
import functools
from typing import Any

GROUPS = ("method", "model", "task", "train")


@functools.lru_cache(maxsize=1)
def _top_level_keys() -> frozenset[str]:
    import dataclasses

    from bench.config import RunConfig

    return frozenset(f.name for f in dataclasses.fields(RunConfig)) - set(GROUPS)


def _structural(override: Any) -> bool:
    """Overrides that may choose config files: a group (method=, +experiment=, +case= from a search path),
    hydra.*, deletions, interpolations. Only dotted keys and bench's own top-level values are plain."""
    key = override.key_or_group
    return ((("." not in key) and key not in _top_level_keys()) or key.split(".")[0] == "hydra" or "/" in key
            or override.package is not None or override.is_delete() or "${" in (override.input_line or ""))


def _set(raw: dict[str, Any], override: Any) -> None:
    """Hydra's rule for a value override, on the plain mapping: `key=v` sets an existing key, `+key=v` adds
    a missing one, `++key=v` sets or adds; a mapping value is merged into a mapping already there."""
    from hydra.errors import ConfigCompositionException

    *parents, leaf = override.key_or_group.split(".")
    node = raw
    for i, part in enumerate(parents):
        if not isinstance(node.get(part), dict):
            if part in node or not (override.is_add() or override.is_force_add()):
                raise ConfigCompositionException(f"Could not override '{override.key_or_group}': no key "
                                                 f"'{'.'.join(parents[:i + 1])}'")
            node[part] = {}
        node = node[part]
    value = override.value()
    exists = leaf in node
    if override.is_add() and exists and node[leaf] is not None and not isinstance(value, (dict, list)):
        raise ConfigCompositionException(f"Could not append to config. An item is already at "
                                         f"'{override.key_or_group}'")
    if not exists and not (override.is_add() or override.is_force_add()):
        raise ConfigCompositionException(f"Could not override '{override.key_or_group}': no such key")
    if isinstance(value, dict) and isinstance(node.get(leaf), dict):
        node[leaf] = _merged(node[leaf], value)
    else:
        node[leaf] = copy.deepcopy(value)


def _merged(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def compose_all(conf_dir: str, combos: list[list[str]]) -> list[dict[str, Any]]:
    """The resolved plain config of each combination (override lists as Hydra's sweeper makes them)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    parser = OverridesParser.create()
    parsed: dict[str, Any] = {}
    bases: dict[tuple[str, ...], dict[str, Any]] = {}
    out = []
    with initialize_config_dir(config_dir=conf_dir, version_base="1.3"):
        for combo in combos:
            for line in combo:
                if line not in parsed:
                    parsed[line] = parser.parse_override(line)
            structure = tuple(line for line in combo if _structural(parsed[line]))
            if structure not in bases:
                bases[structure] = OmegaConf.to_container(compose(config_name="config", overrides=list(structure)),
                                                          resolve=True)
            raw = copy.deepcopy(bases[structure])
            for line in combo:
                if line not in structure:
                    _set(raw, parsed[line])
            out.append(raw)
    return out
